//! (a) A change and its audit event commit or roll back together.

use audit::{AppendAuditError, AuditLog, AuditSink, ChainId, TenantScope, verify_chain};
use audit_store::{
    AuditedTx, ChainStateError, CommitError, TxAuditSink, append_event, verify_chain_in_db,
};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, TransactionTrait, Value};
use uuid::Uuid;

use crate::harness::{TestDb, append_n, event, load_chain};

/// The business write: a row in `users`.
async fn insert_user<C: ConnectionTrait>(conn: &C, id: Uuid) {
    let now = time::OffsetDateTime::now_utc();
    let insert = Query::insert()
        .into_table(Alias::new("users"))
        .columns(
            [
                "id",
                "email",
                "first_name",
                "last_name",
                "password_hash",
                "status",
                "is_platform_admin",
                "version",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values([
            Expr::val(Value::Uuid(Some(id))),
            Expr::val(format!("{}@example.org", id.simple())),
            Expr::val("Ada"),
            Expr::val("Lovelace"),
            Expr::val("x"),
            Expr::val("active"),
            Expr::val(false),
            Expr::val(1_i64),
            Expr::val(now),
            Expr::val(now),
        ])
        .unwrap()
        .to_owned();
    conn.execute(&insert).await.expect("insert user");
}

async fn user_exists(db: &TestDb, id: Uuid) -> bool {
    let q = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(Alias::new("users"))
        .and_where(Expr::col(Alias::new("id")).eq(Value::Uuid(Some(id))))
        .to_owned();
    let row = db.db.primary().query_one(&q).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap() == 1
}

async fn event_exists(db: &TestDb, chain: ChainId, id: Uuid) -> bool {
    db.log().get(chain, id).await.unwrap().is_some()
}

/// A failure injected into the unit of work.
#[derive(Debug)]
struct Injected;

async fn change_with_failure(
    db: &TestDb,
    scope: TenantScope,
    user: Uuid,
    event_id: Uuid,
    fail_after_business: bool,
    fail_after_audit: bool,
) -> Result<(), Injected> {
    let tx = AuditedTx::begin(&db.db).await.expect("begin");
    insert_user(tx.conn(), user).await;
    if fail_after_business {
        return Err(Injected); // `tx` dropped: rolled back
    }
    tx.record(event(scope, "user.create", &user.to_string()).with_id(event_id))
        .await
        .expect("record");
    if fail_after_audit {
        return Err(Injected);
    }
    tx.commit().await.expect("commit");
    Ok(())
}

pub async fn change_and_event_commit_or_roll_back_together(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let log = db.log();

    // Failure after the business write, before the audit write.
    let (u1, e1) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(
        change_with_failure(db, scope, u1, e1, true, false)
            .await
            .is_err()
    );
    assert!(!user_exists(db, u1).await);
    assert!(!event_exists(db, chain, e1).await);
    assert_eq!(log.chain_head(chain).await.unwrap(), None);

    // Failure after the audit write: both disappear, and the head does not move.
    let (u2, e2) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(
        change_with_failure(db, scope, u2, e2, false, true)
            .await
            .is_err()
    );
    assert!(!user_exists(db, u2).await);
    assert!(!event_exists(db, chain, e2).await);
    assert_eq!(log.chain_head(chain).await.unwrap(), None);

    // Success: both are stored; the rolled-back seq 1 is reused.
    let (u3, e3) = (Uuid::now_v7(), Uuid::now_v7());
    change_with_failure(db, scope, u3, e3, false, false)
        .await
        .unwrap();
    assert!(user_exists(db, u3).await);
    let stored = log.get(chain, e3).await.unwrap().expect("event stored");
    assert_eq!(stored.seq, 1);
    assert_eq!(log.chain_head(chain).await.unwrap(), Some(stored.head()));

    // A second failure after the audit write, on a non-empty chain.
    let (u4, e4) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(
        change_with_failure(db, scope, u4, e4, false, true)
            .await
            .is_err()
    );
    assert!(!user_exists(db, u4).await);
    assert!(!event_exists(db, chain, e4).await);
    assert_eq!(log.chain_head(chain).await.unwrap(), Some(stored.head()));

    let (u5, e5) = (Uuid::now_v7(), Uuid::now_v7());
    change_with_failure(db, scope, u5, e5, false, false)
        .await
        .unwrap();
    let events = load_chain(&log, chain).await;
    assert_eq!(events.iter().map(|e| e.id()).collect::<Vec<_>>(), [e3, e5]);
    assert!(verify_chain(&events, chain).is_intact());
    let report = verify_chain_in_db(&db.db, chain, &[], &NoSigner)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 2);
}

pub async fn commit_requires_an_event(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());

    // Forgetting the audit event: commit refuses and rolls the change back.
    let user = Uuid::now_v7();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    insert_user(tx.conn(), user).await;
    assert!(matches!(
        tx.commit().await,
        Err(CommitError::NothingRecorded)
    ));
    assert!(!user_exists(db, user).await);

    // A failed append poisons the unit of work even if another one succeeds.
    let user = Uuid::now_v7();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    insert_user(tx.conn(), user).await;
    let too_long = event(scope, "user.create", &"x".repeat(200));
    assert!(tx.record(too_long).await.is_err());
    tx.record(event(scope, "user.create", "ok")).await.unwrap();
    assert!(matches!(tx.commit().await, Err(CommitError::AuditFailed)));
    assert!(!user_exists(db, user).await);
    assert_eq!(db.log().chain_head(scope.chain_id()).await.unwrap(), None);

    // The explicit escape hatch.
    let user = Uuid::now_v7();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    insert_user(tx.conn(), user).await;
    tx.commit_unaudited("test: no audit needed").await.unwrap();
    assert!(user_exists(db, user).await);

    // Explicit rollback after recording.
    let user = Uuid::now_v7();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    insert_user(tx.conn(), user).await;
    tx.record(event(scope, "user.create", "rolled-back"))
        .await
        .unwrap();
    assert_eq!(tx.recorded().len(), 1);
    tx.rollback().await.unwrap();
    assert!(!user_exists(db, user).await);
    assert_eq!(db.log().chain_head(scope.chain_id()).await.unwrap(), None);
}

/// A domain service that only knows the port.
async fn domain_service(sink: &impl AuditSink, scope: TenantScope, what: &str) -> Uuid {
    sink.append(event(scope, "organization.rename", what))
        .await
        .expect("append through the port")
        .id()
}

pub async fn domain_services_write_through_the_port(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();

    // Through the unit of work.
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    let a = domain_service(&tx.sink(), scope, "a").await;
    let b = domain_service(&tx.sink(), scope, "b").await;
    let recorded = tx.commit().await.unwrap();
    assert_eq!(recorded.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);

    // Through a caller-owned transaction (commit and rollback).
    let own = db.db.primary().begin().await.unwrap();
    let c = domain_service(&TxAuditSink::new(&own), scope, "c").await;
    own.commit().await.unwrap();
    let own = db.db.primary().begin().await.unwrap();
    let d = domain_service(&TxAuditSink::new(&own), scope, "d").await;
    let raw = append_event(&own, event(scope, "organization.rename", "e"))
        .await
        .unwrap();
    assert_eq!(raw.seq, 5);
    own.rollback().await.unwrap();

    let events = load_chain(&db.log(), chain).await;
    assert_eq!(events.iter().map(|e| e.id()).collect::<Vec<_>>(), [a, b, c]);
    assert!(!events.iter().any(|e| e.id() == d || e.id() == raw.id()));
    assert!(verify_chain(&events, chain).is_intact());
}

fn chain_state(err: &AppendAuditError) -> Option<&ChainStateError> {
    match err {
        AppendAuditError::Storage(source) => source.downcast_ref(),
        _ => None,
    }
}

pub async fn inconsistent_state_is_refused_not_forked(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    let first = append_n(&db.db, scope, 3).await;

    // Re-using an event id.
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    let err = tx
        .record(event(scope, "user.create", "dup").with_id(first[0].id()))
        .await
        .unwrap_err();
    assert_eq!(
        chain_state(&err),
        Some(&ChainStateError::DuplicateId(first[0].id()))
    );
    assert!(matches!(tx.commit().await, Err(CommitError::AuditFailed)));

    // A head row moved back by SQL: the next append refuses instead of overwriting.
    db.db
        .primary()
        .execute_unprepared(&format!(
            "UPDATE audit_chain_heads SET seq = 1, hash = '{}' WHERE chain_id = '{chain}'",
            first[0].hash
        ))
        .await
        .unwrap();
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    let err = tx
        .record(event(scope, "user.create", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        chain_state(&err),
        Some(&ChainStateError::HeadOutOfSync { chain, seq: 2 })
    );
    drop(tx);
    let events = load_chain(&db.log(), chain).await;
    assert_eq!(events, first);
}

/// A signer for verification without digests (never consulted).
pub struct NoSigner;

impl audit::DigestSigner for NoSigner {
    fn sign(&self, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn verify(&self, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn key_id(&self) -> String {
        "none".to_owned()
    }
}

crate::both_backends!(
    change_and_event_commit_or_roll_back_together,
    commit_requires_an_event,
    domain_services_write_through_the_port,
    inconsistent_state_is_refused_not_forked,
);
