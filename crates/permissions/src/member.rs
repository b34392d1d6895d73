//! What the check needs to know about a member: status, role, and direct grants.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::{KeySet, PermissionKey};
use crate::role::BuiltinRole;

/// The state of a membership. Only [`MemberStatus::Active`] members hold permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// A full member.
    Active,
    /// Invited, not yet joined.
    Invited,
    /// Suspended by an admin.
    Suspended,
    /// Removed from the org.
    Removed,
}

/// The role a member holds in an org: a built-in role, or a custom role that counts as one
/// and may carry extra keys.
///
/// `repr(C)`, the fields the check reads first (see [`MemberContext`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[repr(C)]
pub struct RoleRef {
    /// The built-in role whose rank this role has.
    pub counts_as: BuiltinRole,
    /// Keys the role always holds, whatever their minimum role (never when disabled).
    #[serde(default)]
    pub extra_keys: KeySet,
    /// The role's name (`"board_member"`, or a custom name such as `"Treasurer"`).
    pub name: String,
}

impl RoleRef {
    /// A built-in role: named after itself, no extra keys.
    #[must_use]
    pub fn builtin(role: BuiltinRole) -> Self {
        Self {
            name: role.as_str().to_owned(),
            counts_as: role,
            extra_keys: KeySet::new(),
        }
    }

    /// A custom role.
    #[must_use]
    pub fn custom(name: impl Into<String>, counts_as: BuiltinRole, extra_keys: KeySet) -> Self {
        Self {
            name: name.into(),
            counts_as,
            extra_keys,
        }
    }
}

/// A key granted directly to one member, optionally from a start time and until an expiry
/// time: active when `starts_at <= now < expires_at` (a missing bound is no bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The key granted.
    pub key: PermissionKey,
    /// When the grant starts counting; `None` for "from its creation" (RFC 3339 in JSON,
    /// omitted when absent so values written without it read the same).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<OffsetDateTime>,
    /// When the grant stops counting; `None` for a permanent grant. A grant is active while
    /// `now < expires_at` (RFC 3339 in JSON).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Why it was granted.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Grant {
    /// A grant of `key` active from now on, without start, expiry or reason.
    #[must_use]
    pub const fn permanent(key: PermissionKey) -> Self {
        Self {
            key,
            starts_at: None,
            expires_at: None,
            reason: None,
        }
    }

    /// Whether the grant counts at `now`: `starts_at <= now < expires_at`.
    #[must_use]
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.starts_at.is_none_or(|starts_at| starts_at <= now)
            && self.expires_at.is_none_or(|expires_at| now < expires_at)
    }

    /// Whether the grant has a time bound (a start or an expiry).
    #[must_use]
    pub const fn is_timed(&self) -> bool {
        self.starts_at.is_some() || self.expires_at.is_some()
    }
}

/// A member's direct grants, with the sets the check's fast path reads: the keys held by a
/// permanent grant (no start, no expiry), and the keys that have at least one timed grant.
///
/// One pointer inline, null without grants: most members have none, so their
/// [`MemberContext`] stays one cache line and the check reads nothing else; for a member
/// with grants the check reads the two key sets behind the pointer, and scans only the
/// timed grants of a key that has some. Timed grants keep their window as instants in
/// nanoseconds since the epoch, so the scan compares integers.
///
/// Serialized as the plain list of grants.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Grant>", into = "Vec<Grant>")]
pub struct Grants {
    /// `None` when there is no grant.
    list: Option<Box<GrantList>>,
}

/// The grants behind [`Grants`]: the check's two key sets first, then the grants in the
/// order given and the windows of the timed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GrantList {
    permanent: KeySet,
    timed: KeySet,
    all: Vec<Grant>,
    windows: Box<[Window]>,
}

/// A timed grant's window `[start, end)` in nanoseconds since the Unix epoch (a missing
/// bound is `i128::MIN` or `i128::MAX`): active when `start <= now < end`, the same instants
/// as comparing the `OffsetDateTime`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    key: PermissionKey,
    start: i128,
    end: i128,
}

impl Window {
    fn of(grant: &Grant) -> Self {
        Self {
            key: grant.key,
            start: grant
                .starts_at
                .map_or(i128::MIN, OffsetDateTime::unix_timestamp_nanos),
            end: grant
                .expires_at
                .map_or(i128::MAX, OffsetDateTime::unix_timestamp_nanos),
        }
    }
}

impl Grants {
    /// Indexes `grants`.
    #[must_use]
    pub fn new(grants: Vec<Grant>) -> Self {
        let mut permanent = KeySet::new();
        let mut timed = KeySet::new();
        for grant in &grants {
            if grant.is_timed() {
                timed.insert(grant.key);
            } else {
                permanent.insert(grant.key);
            }
        }
        let list = (!grants.is_empty()).then(|| {
            let windows = grants
                .iter()
                .filter(|grant| grant.is_timed())
                .map(Window::of)
                .collect();
            Box::new(GrantList {
                permanent,
                timed,
                all: grants,
                windows,
            })
        });
        Self { list }
    }

    /// The grants, in the order given.
    #[must_use]
    pub fn as_slice(&self) -> &[Grant] {
        self.list.as_deref().map_or(&[], |list| list.all.as_slice())
    }

    /// The keys held by a grant without start or expiry.
    #[must_use]
    pub fn permanent(&self) -> KeySet {
        self.list
            .as_deref()
            .map_or(KeySet::new(), |list| list.permanent)
    }

    /// The keys with at least one timed grant (a start or an expiry).
    #[must_use]
    pub fn timed(&self) -> KeySet {
        self.list
            .as_deref()
            .map_or(KeySet::new(), |list| list.timed)
    }

    /// `(permanent(), timed())`, reading the list once.
    #[inline]
    pub(crate) fn key_sets(&self) -> (KeySet, KeySet) {
        self.list
            .as_deref()
            .map_or((KeySet::new(), KeySet::new()), |list| {
                (list.permanent, list.timed)
            })
    }

    /// Whether an active grant of `key` exists at `now` (`starts_at <= now < expires_at`).
    /// Without a timed grant for the key this is one bit test; otherwise it scans the
    /// member's timed grants.
    #[must_use]
    #[inline]
    pub fn holds(&self, key: PermissionKey, now: OffsetDateTime) -> bool {
        let (permanent, timed) = self.key_sets();
        permanent.contains(key) || (timed.contains(key) && self.holds_timed(key, now))
    }

    /// Whether a timed grant of `key` is active at `now`: the scan behind [`Grants::holds`].
    #[inline(never)]
    pub(crate) fn holds_timed(&self, key: PermissionKey, now: OffsetDateTime) -> bool {
        let Some(list) = self.list.as_deref() else {
            return false;
        };
        let now = now.unix_timestamp_nanos();
        list.windows
            .iter()
            .any(|window| window.key == key && window.start <= now && now < window.end)
    }

    /// The grants of `key`, in the order given.
    pub fn of_key(&self, key: PermissionKey) -> impl Iterator<Item = &Grant> + '_ {
        self.as_slice().iter().filter(move |grant| grant.key == key)
    }

    /// The number of grants.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is no grant.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.list.is_none()
    }
}

impl From<Vec<Grant>> for Grants {
    fn from(grants: Vec<Grant>) -> Self {
        Self::new(grants)
    }
}

impl From<Grants> for Vec<Grant> {
    fn from(grants: Grants) -> Self {
        grants.list.map_or_else(Self::new, |list| list.all)
    }
}

impl FromIterator<Grant> for Grants {
    fn from_iter<I: IntoIterator<Item = Grant>>(grants: I) -> Self {
        Self::new(grants.into_iter().collect())
    }
}

/// One user as a member of one org: everything [`check`](crate::check()) reads besides the
/// org's table.
///
/// `repr(C)`, 64 bytes, laid out for the check: what it reads (status, user active, the
/// grants pointer, the role's rank and extra keys) sits in the first 24 bytes, so a check
/// reads one cache line of the member (plus the grants' key sets, for the few members with
/// grants); the role's name and the user id follow. See `docs/decisions.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[repr(C)]
pub struct MemberContext {
    /// The membership's status in this org.
    pub status: MemberStatus,
    /// Whether the user account is usable (false when disabled or soft-deleted).
    pub user_active: bool,
    /// Direct grants to this member in this org.
    #[serde(default)]
    pub grants: Grants,
    /// The member's one role in this org.
    pub role: RoleRef,
    /// The user.
    pub user_id: Uuid,
}

impl MemberContext {
    /// An active member of an active user, with the given role and no grants.
    #[must_use]
    pub fn active(user_id: Uuid, role: RoleRef) -> Self {
        Self {
            user_id,
            status: MemberStatus::Active,
            user_active: true,
            role,
            grants: Grants::default(),
        }
    }

    /// This member with `grants` as their direct grants.
    #[must_use]
    pub fn with_grants(mut self, grants: impl Into<Grants>) -> Self {
        self.grants = grants.into();
        self
    }

    /// This member with `status`.
    #[must_use]
    pub const fn with_status(mut self, status: MemberStatus) -> Self {
        self.status = status;
        self
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn grants_index_permanent_and_expiring_keys() {
        let now = datetime!(2025-01-01 12:00 UTC);
        let grants = Grants::new(vec![
            Grant {
                reason: Some("treasurer stand-in".to_owned()),
                ..Grant::permanent(PermissionKey::BudgetApprove)
            },
            Grant {
                expires_at: Some(now),
                ..Grant::permanent(PermissionKey::EventsDelete)
            },
            Grant {
                expires_at: Some(datetime!(2025-01-02 0:00 UTC)),
                ..Grant::permanent(PermissionKey::UsersInvite)
            },
            Grant {
                starts_at: Some(datetime!(2025-01-01 12:00:01 UTC)),
                ..Grant::permanent(PermissionKey::UsersRemove)
            },
            Grant {
                starts_at: Some(now),
                expires_at: Some(datetime!(2025-01-01 12:00:01 UTC)),
                ..Grant::permanent(PermissionKey::FundraisingManage)
            },
        ]);
        assert_eq!(
            grants.permanent().iter().collect::<Vec<_>>(),
            [PermissionKey::BudgetApprove]
        );
        assert!(grants.holds(PermissionKey::BudgetApprove, now));
        assert!(
            !grants.holds(PermissionKey::EventsDelete, now),
            "expires exactly now"
        );
        assert!(grants.holds(
            PermissionKey::EventsDelete,
            datetime!(2025-01-01 11:59:59 UTC)
        ));
        assert!(grants.holds(PermissionKey::UsersInvite, now));
        assert!(
            !grants.holds(PermissionKey::UsersRemove, now),
            "starts later"
        );
        assert!(grants.holds(
            PermissionKey::UsersRemove,
            datetime!(2025-01-01 12:00:01 UTC)
        ));
        assert!(
            grants.holds(PermissionKey::FundraisingManage, now),
            "starts exactly now"
        );
        assert!(!grants.holds(
            PermissionKey::FundraisingManage,
            datetime!(2025-01-01 11:59:59 UTC)
        ));
        assert!(!grants.holds(PermissionKey::CommunicationsSend, now));
        assert_eq!(grants.of_key(PermissionKey::EventsDelete).count(), 1);
        assert_eq!(grants.len(), 5);
    }

    #[test]
    fn timed_windows_compare_instants_like_the_grant() {
        use time::{Duration, UtcOffset};
        let now = datetime!(2025-01-01 12:00 UTC);
        let plus_two = UtcOffset::from_hms(2, 0, 0).expect("offset");
        let nanosecond = Duration::nanoseconds(1);
        let instants = [
            now - nanosecond,
            now,
            now + nanosecond,
            now.to_offset(plus_two),
            (now + nanosecond).to_offset(plus_two),
            (now - Duration::hours(2)).to_offset(plus_two),
        ];
        for starts_at in instants.iter().copied().map(Some).chain([None]) {
            for expires_at in instants.iter().copied().map(Some).chain([None]) {
                let grant = Grant {
                    starts_at,
                    expires_at,
                    ..Grant::permanent(PermissionKey::EventsEdit)
                };
                for at in instants {
                    let grants = Grants::new(vec![grant.clone()]);
                    assert_eq!(
                        grants.holds(PermissionKey::EventsEdit, at),
                        grant.is_active_at(at),
                        "{grant:?} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn what_the_check_reads_comes_first() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<MemberContext>(), 64);
        assert_eq!(size_of::<Grants>(), 8);
        for offset in [
            offset_of!(MemberContext, status),
            offset_of!(MemberContext, user_active),
            offset_of!(MemberContext, grants.list),
            offset_of!(MemberContext, role.counts_as),
            offset_of!(MemberContext, role.extra_keys),
        ] {
            assert!(offset < 24, "a field the check reads at offset {offset}");
        }
        assert!(Grants::default().is_empty());
        assert_eq!(Grants::new(Vec::new()), Grants::default());
    }

    #[test]
    fn member_round_trips_through_json() {
        let json = serde_json::json!({
            "user_id": "00000000-0000-0000-0000-000000000001",
            "status": "active",
            "user_active": true,
            "role": {"name": "Treasurer", "counts_as": "committee_lead", "extra_keys": ["budget.approve"]},
            "grants": [
                {"key": "events.delete", "expires_at": "2025-06-01T00:00:00Z", "reason": "spring fair"},
                {"key": "events.edit", "starts_at": "2025-05-01T00:00:00Z", "expires_at": null},
                {"key": "users.invite"}
            ]
        });
        let member: MemberContext = serde_json::from_value(json).expect("deserialize");
        assert_eq!(member.role.counts_as, BuiltinRole::CommitteeLead);
        assert!(
            member
                .role
                .extra_keys
                .contains(PermissionKey::BudgetApprove)
        );
        assert_eq!(
            member.grants.permanent().iter().collect::<Vec<_>>(),
            [PermissionKey::UsersInvite]
        );
        let text = serde_json::to_string(&member).expect("serialize");
        let back: MemberContext = serde_json::from_str(&text).expect("deserialize again");
        assert_eq!(back, member);
    }
}
