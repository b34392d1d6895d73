//! Stored rows convert back to exactly the sealed events, so hashes recompute on both
//! backends.

use audit::action::activity;
use audit::{
    Action, Actor, AuditLog, ChainId, ChangeType, NewAuditEvent, RequestMeta, TenantScope,
};
use audit_store::{AuditedTx, verify_chain_in_db};
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use crate::atomicity::NoSigner;
use crate::harness::{TestDb, load_chain};

fn tricky_values() -> Vec<Option<serde_json::Value>> {
    vec![
        None,
        Some(serde_json::Value::Null),
        Some(json!({"z": 1, "a": {"y": [3, 2, 1], "b": null}, "ünïcödé 🔑": "ü\"\\\n\t\u{1}"})),
        Some(json!([
            0.1,
            0.30000000000000004,
            1e300,
            -2.5e-310,
            100.0,
            -0.0,
            1.7976931348623157e308
        ])),
        Some(json!({"max": u64::MAX, "min": i64::MIN, "big_float": 9007199254740993.0_f64})),
        Some(json!("just a string")),
        Some(json!(true)),
        Some(json!({})),
        Some(json!([])),
        Some(json!({"empty": "", "nested": {"deeper": {"deepest": [[], {}, [null]]}}})),
    ]
}

pub async fn loaded_events_equal_sealed_events(db: &TestDb) {
    let org = Uuid::now_v7();
    let district = Uuid::now_v7();
    let scopes = [
        TenantScope::org_in_district(org, district),
        TenantScope::district(district),
        TenantScope::PLATFORM,
    ];
    let meta = RequestMeta {
        ip: Some("2001:db8::1".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux) ü".into()),
        request_id: Some("req-0123456789".into()),
    };
    let mut sealed = Vec::new();
    for scope in scopes {
        let values = tricky_values();
        for (i, value) in values.iter().enumerate() {
            let actor = [
                Actor::User(Uuid::now_v7()),
                Actor::ApiKey(Uuid::now_v7()),
                Actor::System,
            ][i % 3];
            let mut new = if i % 2 == 0 {
                NewAuditEvent::audit(
                    scope,
                    actor,
                    Action::new("permission.update").unwrap(),
                    "permission_setting",
                    format!("budget.approve.{i}"),
                    ChangeType::ALL[i % 5],
                )
                .with_request(&meta)
            } else {
                NewAuditEvent::activity(scope, actor, activity::SIGN_IN, "user", "u")
            };
            new.old_value.clone_from(value);
            new.new_value = values[(i + 3) % values.len()].clone();
            // Non-UTC offsets and sub-microsecond parts are normalised on the way in.
            new.occurred_at = match i % 3 {
                0 => datetime!(2025-06-30 23:59:59.999999999 -07:00),
                1 => datetime!(1999-01-01 00:00:00 UTC),
                _ => time::OffsetDateTime::now_utc(),
            };
            let tx = AuditedTx::begin(&db.db).await.unwrap();
            let event = tx.record(new.clone()).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                event.body.occurred_at,
                audit::truncate_to_micros(new.occurred_at)
            );
            assert_eq!(event.body.occurred_at.offset(), time::UtcOffset::UTC);
            sealed.push(event);
        }
    }

    let log = db.log();
    for chain in [
        ChainId::Org(org),
        ChainId::District(district),
        ChainId::Platform,
    ] {
        let stored = load_chain(&log, chain).await;
        let expected: Vec<_> = sealed
            .iter()
            .filter(|e| e.chain() == chain)
            .cloned()
            .collect();
        assert_eq!(stored.len(), expected.len());
        for (loaded, original) in stored.iter().zip(&expected) {
            assert_eq!(
                loaded.compute_hash(),
                loaded.hash,
                "hash recomputes: {loaded:?}"
            );
            // The chain is read as stored (personal fields sealed), single events opened.
            assert_eq!(loaded, &original.clone().closed(), "exact round trip");
            assert_eq!(
                log.get(chain, loaded.id()).await.unwrap().as_ref(),
                Some(original)
            );
        }
        let report = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
            .await
            .unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checked, expected.len() as u64);
        assert_eq!(log.chain_head(chain).await.unwrap(), report.head);
    }
}

crate::both_backends!(loaded_events_equal_sealed_events);
