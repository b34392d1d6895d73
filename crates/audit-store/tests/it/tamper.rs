//! (c) Editing or deleting a stored row is reported exactly.

use audit::{BreakKind, ChainId, TenantScope};
use audit_store::{VerifyDbError, verify_chain_in_db, verify_chain_in_log};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::atomicity::NoSigner;
use crate::harness::{TestDb, append_n, load_chain};

async fn sql(db: &TestDb, statement: &str) -> u64 {
    db.db
        .primary()
        .execute_unprepared(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
        .rows_affected()
}

fn chain_sql(chain: ChainId) -> String {
    format!("'{chain}'")
}

pub async fn edited_row_is_reported_exactly(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let events = append_n(&db.db, scope, 10).await;
    let bystander = TenantScope::org(Uuid::now_v7());
    append_n(&db.db, bystander, 3).await;

    let intact = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap();
    assert!(intact.is_intact());
    assert_eq!(intact.checked, 10);

    let n = sql(
        db,
        &format!(
            "UPDATE audit_events SET new_value = '{{\"i\": 4, \"enabled\": false}}' \
             WHERE chain_id = {} AND seq = 5",
            chain_sql(chain)
        ),
    )
    .await;
    assert_eq!(n, 1);

    for report in [
        verify_chain_in_db(&db.db, chain, &[], &NoSigner)
            .await
            .unwrap(),
        verify_chain_in_log(&db.log(), chain, &[], &NoSigner, 3)
            .await
            .unwrap(),
    ] {
        let broken = report.first_break.expect("edit detected");
        assert_eq!(broken.seq, 5);
        assert_eq!(broken.event_id, Some(events[4].id()));
        assert!(
            matches!(broken.kind, BreakKind::HashMismatch { stored, .. } if stored == events[4].hash),
            "{broken:?}"
        );
        assert_eq!(report.checked, 4);
        assert_eq!(report.head, Some(events[3].head()));
    }
    // Other chains are unaffected.
    let other = verify_chain_in_db(&db.db, bystander.chain_id(), &[], &NoSigner)
        .await
        .unwrap();
    assert!(other.is_intact());

    // An edit that makes the row undecodable is reported as that row.
    sql(
        db,
        &format!(
            "UPDATE audit_events SET change_type = 'HACKED' WHERE chain_id = {} AND seq = 2",
            chain_sql(chain)
        ),
    )
    .await;
    match verify_chain_in_db(&db.db, chain, &[], &NoSigner).await {
        Err(VerifyDbError::CorruptRow(row)) => {
            assert_eq!(row.location.seq, Some(2));
            assert_eq!(row.location.id, Some(events[1].id()));
            assert_eq!(row.column, "change_type");
        }
        other => panic!("expected a corrupt row, got {other:?}"),
    }
}

pub async fn deleted_row_is_reported_as_gap(db: &TestDb) {
    let scope = TenantScope::district(Uuid::now_v7());
    let chain = scope.chain_id();
    let events = append_n(&db.db, scope, 10).await;

    sql(
        db,
        &format!(
            "DELETE FROM audit_events WHERE chain_id = {} AND seq = 7",
            chain_sql(chain)
        ),
    )
    .await;
    let report = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap();
    let broken = report.first_break.expect("deletion detected");
    assert_eq!(broken.kind, BreakKind::SeqGap { expected: 7 });
    assert_eq!((broken.seq, broken.position()), (8, 7));
    assert_eq!(broken.event_id, Some(events[7].id()));
    assert_eq!(report.checked, 6);

    // Deleting the first event.
    sql(
        db,
        &format!(
            "DELETE FROM audit_events WHERE chain_id = {} AND seq = 1",
            chain_sql(chain)
        ),
    )
    .await;
    let broken = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap()
        .first_break
        .expect("deletion detected");
    assert_eq!(broken.kind, BreakKind::SeqGap { expected: 1 });
    assert_eq!(broken.event_id, Some(events[1].id()));

    // Moving an event to another tenant's chain.
    let victim = TenantScope::org(Uuid::now_v7());
    let victim_events = append_n(&db.db, victim, 2).await;
    sql(
        db,
        &format!(
            "UPDATE audit_events SET chain_id = {}, seq = 3 WHERE chain_id = {} AND seq = 9",
            chain_sql(victim.chain_id()),
            chain_sql(chain)
        ),
    )
    .await;
    let broken = verify_chain_in_db(&db.db, victim.chain_id(), &[], &NoSigner)
        .await
        .unwrap()
        .first_break
        .expect("foreign event detected");
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.event_id, Some(events[8].id()));
    assert!(matches!(broken.kind, BreakKind::WrongChain { .. }));
    assert_eq!(load_chain(&db.log(), victim.chain_id()).await.len(), 3);
    assert_eq!(victim_events.len(), 2);
}

crate::both_backends!(
    edited_row_is_reported_exactly,
    deleted_row_is_reported_as_gap
);
