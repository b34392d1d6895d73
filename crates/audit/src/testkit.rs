//! Deterministic fixtures shared by the unit tests.

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::action::Action;
use crate::chain::ChainBuilder;
use crate::digest::DigestSigner;
use crate::event::{Actor, AuditEvent, ChangeType, NewAuditEvent};
use crate::hash::Hash32;
use crate::scope::{ChainId, TenantScope};

pub(crate) const ORG: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00aa);
pub(crate) const DISTRICT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00dd);
pub(crate) const T0: OffsetDateTime = datetime!(2025-01-01 00:00 UTC);

const ACTIONS: [&str; 3] = [
    "permission.update",
    "member.role_change",
    "permission.reset",
];

/// The `n`-th event of `org`'s fixture chain: distinct ids, one hour apart.
pub(crate) fn event_n(org: Uuid, n: u64) -> NewAuditEvent {
    let i = usize::try_from(n).unwrap_or(0);
    let change = [ChangeType::Update, ChangeType::Create, ChangeType::Reset][i % 3];
    NewAuditEvent::audit(
        TenantScope::org_in_district(org, DISTRICT),
        Actor::User(Uuid::from_u128(u128::from(n % 4))),
        Action::new(ACTIONS[i % 3]).expect("valid action"),
        "permission_setting",
        format!("budget.key{n}"),
        change,
    )
    .with_id(Uuid::from_u128(org.as_u128() ^ (u128::from(n) << 64)))
    .with_old_value(json!({"min_role": "volunteer", "enabled": true, "n": n}))
    .with_new_value(json!({"enabled": n.is_multiple_of(2), "min_role": "board_member"}))
    .with_ip("192.0.2.7")
    .with_user_agent("test-agent/1.0")
    .with_request_id(format!("req-{n}"))
    .at(T0 + Duration::hours(i64::try_from(n).unwrap_or(0)) + Duration::microseconds(7))
}

/// A sealed chain of `len` events for `org`.
pub(crate) fn chain_of(org: Uuid, len: u64) -> Vec<AuditEvent> {
    let mut builder = ChainBuilder::new(ChainId::Org(org));
    (1..=len)
        .map(|n| builder.seal(event_n(org, n)).expect("fixture seals"))
        .collect()
}

/// A test signer: `signature = sha256(secret || bytes)` (not secure, deterministic).
pub(crate) struct FakeSigner {
    secret: Vec<u8>,
}

impl FakeSigner {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }
}

impl DigestSigner for FakeSigner {
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        Hash32::of(&[self.secret.as_slice(), bytes].concat())
            .0
            .to_vec()
    }

    fn verify(&self, bytes: &[u8], signature: &[u8]) -> bool {
        self.sign(bytes) == signature
    }

    fn key_id(&self) -> String {
        format!("fake:{}", String::from_utf8_lossy(&self.secret))
    }
}
