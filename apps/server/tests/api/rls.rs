//! PostgreSQL row-level security: the second wall behind the app's own tenant scoping
//! (migration 000007). Every API test already runs as a plain role bound by it; these
//! tests show what the wall does on its own.

use actix_web::http::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};

use crate::helpers::{Backend, TestContext, send};
use crate::permissions::org_with_volunteer;

/// A fresh PostgreSQL context with two orgs (A and B, an admin and a volunteer each,
/// and an API key in A); `None` when PostgreSQL is not configured (outside CI).
async fn two_orgs() -> Option<(TestContext, String, String)> {
    let ctx = TestContext::new(Backend::Postgres).await?;
    let app = ctx.service().await;
    let (a, admin_a, _, _) = org_with_volunteer(&app, "rlsa").await;
    let (b, _, _, _) = org_with_volunteer(&app, "rlsb").await;
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/v2/orgs/{a}/api-keys"),
        Some(&admin_a),
        Some(
            serde_json::json!({"name": "k", "permissions": ["users.view"], "expires_in_days": 30}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    drop(app);
    Some((ctx, a, b))
}

async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

async fn connect(url: &str) -> DatabaseConnection {
    Database::connect(url).await.expect("connect")
}

#[actix_web::test]
async fn without_a_tenant_every_tenant_table_is_empty() {
    let Some((ctx, _, _)) = two_orgs().await else {
        return;
    };
    let (app_url, superuser_url) = ctx.postgres_urls().expect("postgres");
    // The app's role, on a connection that set no scope at all.
    let bare = connect(&app_url).await;
    let tables = migration::TENANT_TABLES
        .iter()
        .chain(migration::JOB_TABLES)
        .chain(migration::MAIL_TABLES)
        .chain(migration::AUDIT_KEY_TABLES)
        .chain(migration::PRIVACY_TABLES)
        .chain(migration::PERSONAL_EXPORT_TABLES)
        .chain(migration::MEMBER_RETENTION_TABLES)
        .chain(migration::NOTIFICATION_TABLES)
        .chain(migration::WEBHOOK_TABLES)
        .map(|(t, _, _)| *t)
        .chain(migration::SCHOOL_TABLES.iter().copied());
    for table in tables {
        assert_eq!(
            count(&bare, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} shows rows without a tenant"
        );
    }
    // The rows are there: the superuser (exempt from RLS) sees them.
    let root = connect(&superuser_url).await;
    assert_eq!(count(&root, "SELECT count(*) FROM memberships").await, 4);
    assert!(count(&root, "SELECT count(*) FROM audit_events").await > 0);
    // And every table that holds a tenant id is in the list, with RLS enabled and forced.
    let unprotected = count(
        &root,
        "SELECT count(DISTINCT c.oid) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           JOIN pg_attribute a ON a.attrelid = c.oid
                AND a.attname IN ('org_id', 'district_id', 'school_id')
          WHERE c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .await;
    assert_eq!(unprotected, 0, "a tenant table without forced RLS");
    bare.close().await.ok();
    root.close().await.ok();
}

#[actix_web::test]
async fn a_tenant_transaction_sees_and_writes_only_its_org() {
    let Some((ctx, a, b)) = two_orgs().await else {
        return;
    };
    let (app_url, _) = ctx.postgres_urls().expect("postgres");
    let conn = connect(&app_url).await;
    let txn = conn.begin().await.expect("begin");
    txn.execute_unprepared(&format!("SELECT set_config('ptoc.org_id', '{a}', true)"))
        .await
        .expect("set the tenant");
    // Queries without any WHERE clause see org A's rows only.
    assert_eq!(count(&txn, "SELECT count(*) FROM memberships").await, 2);
    assert_eq!(
        count(
            &txn,
            &format!("SELECT count(*) FROM memberships WHERE org_id <> '{a}'")
        )
        .await,
        0
    );
    assert_eq!(count(&txn, "SELECT count(*) FROM organizations").await, 1);
    assert_eq!(count(&txn, "SELECT count(*) FROM api_keys").await, 1);
    // An unscoped UPDATE touches only A's rows…
    let updated = txn
        .execute_unprepared("UPDATE memberships SET committee = 'tenant-a'")
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(updated, 2);
    // …and a write into org B is refused by the policy.
    let err = txn
        .execute_unprepared(&format!(
            "UPDATE memberships SET org_id = '{b}' WHERE org_id = '{a}'"
        ))
        .await
        .expect_err("moving rows to another tenant is refused");
    assert!(
        err.to_string().contains("row-level security"),
        "unexpected error: {err}"
    );
    txn.rollback().await.expect("rollback");

    // The app's own connections start in the system scope (cross-tenant work).
    let app_conn = ctx.state.db.primary();
    assert_eq!(count(app_conn, "SELECT count(*) FROM memberships").await, 4);
    // And the app's tenant-scoped unit of work is confined like the transaction above.
    let scoped = ctx
        .state
        .db
        .begin_for_org(uuid::Uuid::parse_str(&b).expect("uuid"))
        .await
        .expect("tenant transaction");
    assert_eq!(count(&scoped, "SELECT count(*) FROM memberships").await, 2);
    assert_eq!(
        count(
            &scoped,
            &format!("SELECT count(*) FROM memberships WHERE org_id = '{a}'")
        )
        .await,
        0
    );
    scoped.rollback().await.expect("rollback");
    conn.close().await.ok();
}
