//! Per-org retention periods (`audit_retention`) and the record of archived segments
//! (`audit_archives`: one signed manifest per archive file; the latest per chain is the
//! cut the live chain is verified from).

use std::collections::BTreeMap;

use audit::{
    Action, Actor, BoxError, ChainId, ChangeType, NewAuditEvent, RequestMeta, RetentionPolicy,
    SignedManifest, TenantScope,
};
use persistence::{Database, StorageError};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, DeriveIden, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{seq_value, time_expr};
use crate::tx::{AuditedTx, CommitError};

/// `audit_retention`.
#[derive(DeriveIden, Clone, Copy)]
enum AuditRetention {
    Table,
    OrgId,
    Days,
    UpdatedAt,
    Version,
}

/// `audit_archives`.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum AuditArchives {
    Table,
    ChainId,
    LastSeq,
    FirstSeq,
    HeadHash,
    Manifest,
    CreatedAt,
}

/// The action recorded when an org's retention period changes.
pub const RETENTION_UPDATE: Action = audit::EventType::AuditRetentionUpdate.action();

fn db_err(err: DbErr) -> BoxError {
    Box::new(StorageError::from(err))
}

/// The retention period of `org`: its stored setting, else the default (400 days).
///
/// # Errors
/// If the database fails or the stored value is out of range.
pub async fn retention_of<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
) -> Result<RetentionPolicy, BoxError> {
    let query = Query::select()
        .column(AuditRetention::Days)
        .from(AuditRetention::Table)
        .and_where(Expr::col(AuditRetention::OrgId).eq(Value::Uuid(Some(org))))
        .to_owned();
    match conn.query_one(&query).await.map_err(db_err)? {
        None => Ok(RetentionPolicy::default()),
        Some(row) => policy_from(row.try_get("", "days").map_err(db_err)?),
    }
}

/// The retention period of `org` with its version: 0 while never set (the default
/// applies), then one more with every change.
///
/// # Errors
/// If the database fails or the stored value is out of range.
pub async fn versioned_retention_of<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
) -> Result<(RetentionPolicy, i64), BoxError> {
    let query = Query::select()
        .columns([AuditRetention::Days, AuditRetention::Version])
        .from(AuditRetention::Table)
        .and_where(Expr::col(AuditRetention::OrgId).eq(Value::Uuid(Some(org))))
        .to_owned();
    match conn.query_one(&query).await.map_err(db_err)? {
        None => Ok((RetentionPolicy::default(), 0)),
        Some(row) => Ok((
            policy_from(row.try_get("", "days").map_err(db_err)?)?,
            row.try_get("", "version").map_err(db_err)?,
        )),
    }
}

fn policy_from(days: i32) -> Result<RetentionPolicy, BoxError> {
    let days = u32::try_from(days).map_err(|_| format!("negative retention {days}"))?;
    Ok(RetentionPolicy::new(days)?)
}

/// Every org's stored retention period (orgs without a row use the default).
///
/// # Errors
/// If the database fails or a stored value is out of range.
pub async fn retention_policies<C: ConnectionTrait>(
    conn: &C,
) -> Result<BTreeMap<Uuid, RetentionPolicy>, BoxError> {
    let query = Query::select()
        .columns([AuditRetention::OrgId, AuditRetention::Days])
        .from(AuditRetention::Table)
        .to_owned();
    let mut out = BTreeMap::new();
    for row in conn.query_all(&query).await.map_err(db_err)? {
        let org: Uuid = row.try_get("", "org_id").map_err(db_err)?;
        out.insert(org, policy_from(row.try_get("", "days").map_err(db_err)?)?);
    }
    Ok(out)
}

/// Why the retention period could not be changed (nothing was stored).
#[derive(Debug, thiserror::Error)]
pub enum SetRetentionError {
    /// The database failed.
    #[error("storing the retention period failed")]
    Storage(#[source] BoxError),
    /// The unit of work could not commit.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The setting is no longer at the version the caller read.
    #[error("the retention period changed since it was read (now version {current})")]
    VersionMismatch {
        /// Its version now.
        current: i64,
    },
}

/// Sets `org`'s retention period if it is still at `expected_version` (0: never set),
/// audited (`audit.retention_update`, old and new days) in the same transaction.
/// Returns the previous policy and the new version.
///
/// # Errors
/// [`SetRetentionError`] (`VersionMismatch` when another change came first); then
/// nothing changed.
pub async fn set_retention(
    db: &Database,
    org: Uuid,
    policy: RetentionPolicy,
    expected_version: i64,
    actor: Actor,
    request: &RequestMeta,
) -> Result<(RetentionPolicy, i64), SetRetentionError> {
    let storage = |e: BoxError| SetRetentionError::Storage(e);
    let tx = AuditedTx::begin(db)
        .await
        .map_err(|e| storage(Box::new(e)))?;
    let conn = tx.conn();
    // The previous value, for the event.
    let (old, current) = versioned_retention_of(conn, org).await.map_err(storage)?;
    if current != expected_version {
        return Err(SetRetentionError::VersionMismatch { current });
    }
    let now = audit::truncate_to_micros(OffsetDateTime::now_utc());
    let backend = conn.get_database_backend();
    // Conditional on the version read, so of two concurrent changes one is refused:
    // the first setting inserts the row (a concurrent insert conflicts), later ones
    // update it where it still has that version.
    let written = if current == 0 {
        let insert = Query::insert()
            .into_table(AuditRetention::Table)
            .columns([
                AuditRetention::OrgId,
                AuditRetention::Days,
                AuditRetention::UpdatedAt,
                AuditRetention::Version,
            ])
            .values([
                Expr::val(Value::Uuid(Some(org))),
                Expr::val(i64::from(policy.days())),
                time_expr(backend, now),
                Expr::val(1_i64),
            ])
            .map_err(|e| storage(db_err(DbErr::Custom(e.to_string()))))?
            .on_conflict(
                OnConflict::column(AuditRetention::OrgId)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        conn.execute(&insert).await
    } else {
        let update = Query::update()
            .table(AuditRetention::Table)
            .value(AuditRetention::Days, i64::from(policy.days()))
            .value(AuditRetention::UpdatedAt, time_expr(backend, now))
            .value(
                AuditRetention::Version,
                Expr::col(AuditRetention::Version).add(1),
            )
            .and_where(Expr::col(AuditRetention::OrgId).eq(Value::Uuid(Some(org))))
            .and_where(Expr::col(AuditRetention::Version).eq(current))
            .to_owned();
        conn.execute(&update).await
    }
    .map_err(|e| storage(db_err(e)))?;
    if written.rows_affected() != 1 {
        let (_, now_at) = versioned_retention_of(conn, org).await.map_err(storage)?;
        return Err(SetRetentionError::VersionMismatch { current: now_at });
    }
    tx.record(
        NewAuditEvent::audit(
            TenantScope::org(org),
            actor,
            RETENTION_UPDATE,
            "audit_retention",
            org.to_string(),
            ChangeType::Update,
        )
        .with_old_value(serde_json::json!({ "days": old.days() }))
        .with_new_value(serde_json::json!({ "days": policy.days() }))
        .with_request(request),
    )
    .await
    .map_err(|e| storage(Box::new(e)))?;
    tx.commit().await?;
    Ok((old, current + 1))
}

/// The latest archive cut of a chain as stored: its `last_seq`, and the signed manifest
/// if the stored JSON parses.
pub(crate) struct StoredCut {
    pub(crate) last_seq: u64,
    pub(crate) manifest: Option<SignedManifest>,
}

/// The latest archived segment of `chain`, if any.
pub(crate) async fn latest_cut<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
) -> Result<Option<StoredCut>, BoxError> {
    let query = Query::select()
        .columns([AuditArchives::LastSeq, AuditArchives::Manifest])
        .from(AuditArchives::Table)
        .and_where(Expr::col(AuditArchives::ChainId).eq(chain.to_string()))
        .order_by(AuditArchives::LastSeq, Order::Desc)
        .limit(1)
        .to_owned();
    let Some(row) = conn.query_one(&query).await.map_err(db_err)? else {
        return Ok(None);
    };
    let last_seq: i64 = row.try_get("", "last_seq").map_err(db_err)?;
    let text: String = row.try_get("", "manifest").map_err(db_err)?;
    Ok(Some(StoredCut {
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        manifest: serde_json::from_str(&text).ok(),
    }))
}

/// Every archived segment of `chain` recorded in the database, oldest first (entries
/// whose JSON does not parse are skipped).
///
/// # Errors
/// If the database fails.
pub async fn archived_segments(
    db: &Database,
    chain: ChainId,
) -> Result<Vec<SignedManifest>, BoxError> {
    let query = Query::select()
        .column(AuditArchives::Manifest)
        .from(AuditArchives::Table)
        .and_where(Expr::col(AuditArchives::ChainId).eq(chain.to_string()))
        .order_by(AuditArchives::LastSeq, Order::Asc)
        .to_owned();
    let rows = db.primary().query_all(&query).await.map_err(db_err)?;
    Ok(rows
        .iter()
        .filter_map(|row| row.try_get::<String>("", "manifest").ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect())
}

/// Inserts the record of an archived segment (inside the caller's transaction).
pub(crate) async fn insert_segment<C: ConnectionTrait>(
    conn: &C,
    signed: &SignedManifest,
) -> Result<(), BoxError> {
    let m = &signed.manifest;
    let (Some(first), Some(last)) = (seq_value(m.first_seq), seq_value(m.last_seq)) else {
        return Err("archive seq out of range".into());
    };
    let json = serde_json::to_string(signed)?;
    let insert = Query::insert()
        .into_table(AuditArchives::Table)
        .columns([
            AuditArchives::ChainId,
            AuditArchives::LastSeq,
            AuditArchives::FirstSeq,
            AuditArchives::HeadHash,
            AuditArchives::Manifest,
            AuditArchives::CreatedAt,
        ])
        .values([
            Expr::val(m.chain.to_string()),
            Expr::val(last),
            Expr::val(first),
            Expr::val(m.head_hash.to_hex()),
            Expr::val(json),
            time_expr(conn.get_database_backend(), m.created_at),
        ])
        .map_err(|e| db_err(DbErr::Custom(e.to_string())))?
        .to_owned();
    conn.execute(&insert).await.map_err(db_err)?;
    Ok(())
}

/// Number of rows of `audit_archives` (for tests and reports).
///
/// # Errors
/// If the database fails.
pub async fn archive_record_count(db: &Database) -> Result<u64, BoxError> {
    let query = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(AuditArchives::Table)
        .to_owned();
    let row = db.primary().query_one(&query).await.map_err(db_err)?;
    let n: i64 = row
        .map(|r| r.try_get("", "n"))
        .transpose()
        .map_err(db_err)?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
