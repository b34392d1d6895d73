//! Appending events to their chains inside the caller's transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use audit::{
    AppendAuditError, AuditEvent, ChainBuilder, ChainHead, ChainId, Hash32, NewAuditEvent,
    truncate_to_micros,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, SqlErr, Value};
use time::OffsetDateTime;

use crate::personal::{EnsureKeysError, KeyRing};
use crate::schema::{
    AuditChainHeads, AuditEvents, CorruptRow, head_from_row, json_owned, json_value, limits,
    seq_value, storable_year, time_expr,
};

/// An event the adapter refuses to store, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    /// A field is longer than its column (`varchar(n)`, counted in characters).
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its column's limit.
        max: usize,
    },
    /// A field contains a NUL character, which PostgreSQL text columns reject.
    #[error("{field} contains a NUL character")]
    NulCharacter {
        /// The field.
        field: &'static str,
    },
    /// `occurred_at` is outside the years 1–9999 that both backends store in order.
    #[error("occurred_at {0} is outside the years 1-9999")]
    TimeOutOfRange(OffsetDateTime),
}

/// The chain's stored state contradicts itself; appending would fork or overwrite it.
///
/// Raised when the head row and the events table disagree (an event already exists at
/// the seq the head says is next, or the head row is malformed): the tables were edited
/// outside this adapter. Retrying does not help; verify the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainStateError {
    /// An event already exists at the position after the recorded head.
    #[error("chain {chain}: an event already exists at seq {seq} (head row out of sync)")]
    HeadOutOfSync {
        /// The chain.
        chain: ChainId,
        /// The seq the head row said was free.
        seq: u64,
    },
    /// The head row is unreadable or impossible (e.g. seq 0 with a non-genesis hash).
    #[error("chain {chain}: head row is corrupt: {detail}")]
    CorruptHead {
        /// The chain.
        chain: ChainId,
        /// What is wrong.
        detail: String,
    },
    /// An event with this id is already stored (ids are globally unique).
    #[error("an audit event with id {0} already exists")]
    DuplicateId(uuid::Uuid),
}

/// Appends `new` to its tenant's hash chain **inside the caller's open transaction**.
///
/// # Call it in the same transaction as the change it describes
/// `conn` must be the [`sea_orm::DatabaseTransaction`] that performs the business write
/// the event records, so that the change and its audit event commit or roll back
/// **together**. Calling it on a pool ([`sea_orm::DatabaseConnection`]) runs every
/// statement in autocommit mode: the append is then neither atomic with the change nor
/// protected against concurrent writers. Prefer [`crate::AuditedTx`], which makes this
/// impossible to get wrong.
///
/// # What it does
/// 1. `INSERT INTO audit_chain_heads … ON CONFLICT (chain_id) DO UPDATE SET updated_at =
///    excluded.updated_at RETURNING seq, hash` — the first statement creates the head row
///    if the chain is new and **takes the chain's write lock** (a row lock on
///    PostgreSQL, the database write lock on SQLite), then returns the current head as
///    seen under that lock;
/// 2. [`audit::seal`]s the event after that head;
/// 3. inserts the event and moves the head to it.
///
/// The lock is held until the caller's transaction ends, so appends to one chain are
/// serialised and the chain cannot fork (see the crate documentation). Keep the
/// transaction short after the first append: other writers of the chain wait for it.
/// A transaction that appends to several chains should do so in a consistent order
/// (e.g. sorted by chain id); otherwise PostgreSQL may resolve a deadlock by aborting
/// one of them ([`AppendAuditError::Conflict`]). Do not run two appends concurrently on
/// one transaction.
///
/// Request metadata (`ip`, `user_agent`, `request_id`) comes from clients: it is cut to
/// its column's length and NUL characters are replaced, before sealing. Domain fields
/// that do not fit are refused ([`InvalidEvent`]). `occurred_at` is truncated to
/// microseconds.
///
/// # Errors
/// * [`AppendAuditError::Conflict`] when the database aborted the transaction because of
///   a concurrent writer (serialisation failure, deadlock, SQLite busy): retry the whole
///   unit of work;
/// * [`AppendAuditError::Seal`] if the chain is full;
/// * [`AppendAuditError::Storage`] for driver failures (a
///   [`persistence::StorageError`]), refused events ([`InvalidEvent`]) and inconsistent
///   chain state ([`ChainStateError`]).
///
/// After an error the caller **must roll back** its transaction: statements of a failed
/// append may have run (PostgreSQL aborts the transaction anyway; SQLite does not).
pub async fn append_event<C: ConnectionTrait>(
    conn: &C,
    new: NewAuditEvent,
) -> Result<AuditEvent, AppendAuditError> {
    let chain = new.chain();
    append_events(conn, vec![new]).await?.pop().ok_or_else(|| {
        chain_state(ChainStateError::CorruptHead {
            chain,
            detail: "an append stored no event".to_owned(),
        })
    })
}

/// Appends `events` inside the write transaction `tx` (as [`append_events`]) and notes
/// them as the transaction's change events: once `tx` commits they go to the
/// after-commit dispatcher ([`persistence::WriteTx::commit`]). This is how every store
/// records what it changed.
///
/// # Errors
/// As [`append_events`]; roll back after an error.
pub async fn append_in(
    tx: &persistence::WriteTx,
    events: Vec<NewAuditEvent>,
) -> Result<Vec<AuditEvent>, AppendAuditError> {
    let sealed = append_events(tx, events).await?;
    tx.note_events(&sealed);
    Ok(sealed)
}

/// Events per multi-row `INSERT` (21 columns each: 5,376 bind parameters, well within
/// PostgreSQL's 65,535 and SQLite's 32,766).
const INSERT_CHUNK: usize = 256;

/// Appends `events` (in this order within each chain) **inside the caller's open
/// transaction**, exactly as [`append_event`] would one by one, but in three statements
/// per chain instead of three per event: lock the chain's head once, seal the events
/// after it, insert them with multi-row inserts, move the head once.
///
/// Chains are locked in ascending [`ChainId`] order, so two transactions appending to
/// the same chains cannot deadlock on each other's head rows. Returns the sealed events
/// in the order given. Everything said of [`append_event`] holds: call it in the
/// transaction of the change the events describe, and roll back after an error.
///
/// # Errors
/// As [`append_event`]; an invalid event refuses the whole batch before any write.
pub async fn append_events<C: ConnectionTrait>(
    conn: &C,
    events: Vec<NewAuditEvent>,
) -> Result<Vec<AuditEvent>, AppendAuditError> {
    let events = events
        .into_iter()
        .map(normalise)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppendAuditError::Storage(Box::new(e)))?;
    let backend = conn.get_database_backend();
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    // 1. Lock each chain (creating its head row if needed) and read its head under the
    //    lock, in ascending chain order.
    let mut builders = BTreeMap::new();
    for chain in events
        .iter()
        .map(NewAuditEvent::chain)
        .collect::<BTreeSet<_>>()
    {
        let builder = match lock_head(conn, chain, backend, now).await? {
            None => ChainBuilder::new(chain),
            Some(head) => ChainBuilder::resume(head),
        };
        builders.insert(chain, builder);
    }
    // 2. Load (or create) the keys of the data subjects whose personal fields the
    //    events hold, under the chain locks; seal each event after its chain's head, in
    //    the given order, with those fields encrypted (see `crate::personal`).
    let pairs = events
        .iter()
        .flat_map(|e| {
            audit::personal_plan(e)
                .into_iter()
                .map(move |(subject, _)| (e.chain(), subject))
        })
        .collect::<BTreeSet<_>>();
    let ring = if pairs.is_empty() {
        KeyRing::default()
    } else {
        let first = pairs.iter().next().map_or(ChainId::Platform, |p| p.0);
        KeyRing::ensure(conn, &pairs, now)
            .await
            .map_err(|e| match e {
                EnsureKeysError::Db(e) => classify(e, first),
                EnsureKeysError::Seal(e) => AppendAuditError::Storage(Box::new(e)),
            })?
    };
    let mut sealed = Vec::with_capacity(events.len());
    for new in events {
        let chain = new.chain();
        let builder = builders.get_mut(&chain).ok_or_else(|| {
            chain_state(ChainStateError::CorruptHead {
                chain,
                detail: "the chain was not locked".to_owned(),
            })
        })?;
        let parts = ring
            .seal(&new)
            .map_err(|e| AppendAuditError::Storage(Box::new(e)))?;
        let event = builder.seal_with_parts(new, parts)?;
        let seq = seq_value(event.seq).ok_or(AppendAuditError::Seal(
            audit::SealError::SeqExhausted(chain),
        ))?;
        sealed.push((seq, event));
    }
    // 3. Store the events and advance the heads.
    let map_insert_err = |e: DbErr, first: &AuditEvent| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(msg)) if is_position_conflict(&msg) => {
            chain_state(ChainStateError::HeadOutOfSync {
                chain: first.chain(),
                seq: first.seq,
            })
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            chain_state(ChainStateError::DuplicateId(first.id()))
        }
        _ => classify(e, first.chain()),
    };
    // The common case on PostgreSQL (one chain, one insert): the insert and the head's
    // advance in one statement, one round trip fewer per audited write.
    if backend == DbBackend::Postgres
        && builders.len() == 1
        && sealed.len() <= INSERT_CHUNK
        && let (Some((_, first)), Some((&chain, builder))) =
            (sealed.first(), builders.iter().next())
        && let Some(head) = builder.head()
    {
        let seq = seq_value(head.seq).ok_or(AppendAuditError::Seal(
            audit::SealError::SeqExhausted(chain),
        ))?;
        let insert = insert_statement(sealed.iter().map(|(seq, e)| (e, *seq)), backend)?;
        let statement = append_and_advance(&insert, chain, seq, &head.hash.to_hex(), now);
        let updated = conn
            .execute_raw(statement)
            .await
            .map_err(|e| map_insert_err(e, first))?;
        head_moved(updated.rows_affected(), chain, head.seq)?;
        return Ok(sealed.into_iter().map(|(_, e)| e).collect());
    }
    for chunk in sealed.chunks(INSERT_CHUNK) {
        let Some((_, first)) = chunk.first() else {
            continue;
        };
        let insert = insert_statement(chunk.iter().map(|(seq, e)| (e, *seq)), backend)?;
        conn.execute(&insert)
            .await
            .map_err(|e| map_insert_err(e, first))?;
    }
    for (chain, builder) in builders {
        let Some(head) = builder.head() else {
            continue;
        };
        let seq = seq_value(head.seq).ok_or(AppendAuditError::Seal(
            audit::SealError::SeqExhausted(chain),
        ))?;
        let advance = Query::update()
            .table(AuditChainHeads::Table)
            .value(AuditChainHeads::Seq, seq)
            .value(AuditChainHeads::Hash, head.hash.to_hex())
            .value(AuditChainHeads::UpdatedAt, time_expr(backend, now))
            .and_where(Expr::col(AuditChainHeads::ChainId).eq(chain.to_string()))
            .to_owned();
        let updated = conn
            .execute(&advance)
            .await
            .map_err(|e| classify(e, chain))?;
        head_moved(updated.rows_affected(), chain, head.seq)?;
    }
    Ok(sealed.into_iter().map(|(_, e)| e).collect())
}

/// Checks that the head update of `chain` (to `seq`) found its row.
fn head_moved(rows: u64, chain: ChainId, seq: u64) -> Result<(), AppendAuditError> {
    if rows != 1 {
        return Err(chain_state(ChainStateError::CorruptHead {
            chain,
            detail: "head row vanished while locked".to_owned(),
        }));
    }
    tracing::trace!(chain = %chain, seq, "audit events appended");
    Ok(())
}

/// PostgreSQL: `insert` (of events of `chain` only) and the advance of `chain`'s head to
/// `seq` and `hash`, as one statement (a data-modifying `WITH`: both run, or neither).
/// Its row count is the head update's.
fn append_and_advance(
    insert: &sea_orm::sea_query::InsertStatement,
    chain: ChainId,
    seq: i64,
    hash: &str,
    now: OffsetDateTime,
) -> sea_orm::Statement {
    let (insert_sql, values) = insert.build(sea_orm::sea_query::PostgresQueryBuilder);
    let mut values = values.0;
    let n = values.len();
    let sql = format!(
        "WITH appended AS ({insert_sql}) UPDATE audit_chain_heads SET seq = ${}, hash = ${}, \
         updated_at = ${} WHERE chain_id = ${}",
        n + 1,
        n + 2,
        n + 3,
        n + 4
    );
    values.extend([
        Value::BigInt(Some(seq)),
        Value::String(Some(hash.to_owned())),
        crate::schema::time_value(DbBackend::Postgres, now),
        Value::String(Some(chain.to_string())),
    ]);
    sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Takes the chain's write lock (creating its head row if the chain is new) and returns
/// its head as seen under the lock (`None` for an empty chain).
async fn lock_head<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
    backend: DbBackend,
    now: OffsetDateTime,
) -> Result<Option<ChainHead>, AppendAuditError> {
    let lock = Query::insert()
        .into_table(AuditChainHeads::Table)
        .columns([
            AuditChainHeads::ChainId,
            AuditChainHeads::Seq,
            AuditChainHeads::Hash,
            AuditChainHeads::UpdatedAt,
        ])
        .values([
            Expr::val(chain.to_string()),
            Expr::val(0_i64),
            Expr::val(Hash32::GENESIS.to_hex()),
            time_expr(backend, now),
        ])
        .map_err(|e| storage(DbErr::Custom(e.to_string())))?
        .on_conflict(
            OnConflict::column(AuditChainHeads::ChainId)
                .update_column(AuditChainHeads::UpdatedAt)
                .to_owned(),
        )
        .returning(Query::returning().columns([AuditChainHeads::Seq, AuditChainHeads::Hash]))
        .to_owned();
    let row = conn
        .query_one(&lock)
        .await
        .map_err(|e| classify(e, chain))?
        .ok_or(AppendAuditError::Conflict(chain))?;
    let head = head_from_row(&row, backend, Some(chain)).map_err(|e| corrupt_head(chain, &e))?;
    match (head.seq, head.hash) {
        (0, hash) if hash.is_genesis() => Ok(None),
        (0, _) => Err(chain_state(ChainStateError::CorruptHead {
            chain,
            detail: "seq 0 with a non-genesis hash".to_owned(),
        })),
        (seq, hash) => Ok(Some(ChainHead { chain, seq, hash })),
    }
}

/// One multi-row `INSERT` of sealed events (each with its seq as stored).
fn insert_statement<'a>(
    events: impl Iterator<Item = (&'a AuditEvent, i64)>,
    backend: DbBackend,
) -> Result<sea_orm::sea_query::InsertStatement, AppendAuditError> {
    let uuid = |id: Option<uuid::Uuid>| Expr::val(Value::Uuid(id));
    let text = |s: Option<&str>| Expr::val(Value::String(s.map(str::to_owned)));
    let mut insert = Query::insert();
    insert
        .into_table(AuditEvents::Table)
        .columns(AuditEvents::COLUMNS);
    for (event, seq) in events {
        // Stored closed: the sealed fields only as ciphertext.
        let event = event.clone().closed();
        let b = &event.body;
        let sealed = if event.sealed.is_empty() {
            None
        } else {
            Some(
                serde_json::to_value(&event.sealed)
                    .map_err(|e| storage(DbErr::Custom(e.to_string())))?,
            )
        };
        insert
            .values([
                Expr::val(event.chain().to_string()),
                Expr::val(seq),
                uuid(Some(b.id)),
                uuid(b.scope.org_id),
                uuid(b.scope.district_id),
                Expr::val(b.actor.kind()),
                uuid(b.actor.id()),
                Expr::val(b.action.as_str()),
                Expr::val(b.category.as_str()),
                Expr::val(b.entity_type.as_str()),
                Expr::val(b.entity_id.as_str()),
                Expr::val(b.change_type.as_str()),
                Expr::val(json_value(backend, b.old_value.as_ref())),
                Expr::val(json_value(backend, b.new_value.as_ref())),
                text(b.ip.as_deref()),
                text(b.user_agent.as_deref()),
                text(b.request_id.as_deref()),
                time_expr(backend, b.occurred_at),
                Expr::val(event.prev_hash.to_hex()),
                Expr::val(event.hash.to_hex()),
                Expr::val(json_owned(backend, sealed)),
            ])
            .map_err(|e| storage(DbErr::Custom(e.to_string())))?;
    }
    Ok(insert)
}

/// Whether a unique violation is on the `(chain_id, seq)` primary key (not on `id`).
fn is_position_conflict(message: &str) -> bool {
    // PostgreSQL names the constraint (`audit_events_pkey`); SQLite lists the columns
    // (`UNIQUE constraint failed: audit_events.chain_id, audit_events.seq`).
    message.contains("pkey") || message.contains("audit_events.seq")
}

/// Validates the fields that must fit their columns and normalises the rest.
fn normalise(mut new: NewAuditEvent) -> Result<NewAuditEvent, InvalidEvent> {
    new.occurred_at = truncate_to_micros(new.occurred_at);
    if !storable_year(new.occurred_at) {
        return Err(InvalidEvent::TimeOutOfRange(new.occurred_at));
    }
    check("entity_type", &new.entity_type, limits::ENTITY_TYPE)?;
    check("entity_id", &new.entity_id, limits::ENTITY_ID)?;
    check("action", new.action.as_str(), limits::ACTION)?;
    for (field, value, max) in [
        ("ip", &mut new.ip, limits::IP),
        ("user_agent", &mut new.user_agent, limits::USER_AGENT),
        ("request_id", &mut new.request_id, limits::REQUEST_ID),
    ] {
        if let Some(v) = value {
            let clean = sanitize(v, max);
            if clean != *v {
                tracing::debug!(field, "audit request metadata shortened or cleaned");
                *v = clean;
            }
        }
    }
    Ok(new)
}

fn check(field: &'static str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    if value.contains('\0') {
        return Err(InvalidEvent::NulCharacter { field });
    }
    if value.chars().count() > max {
        return Err(InvalidEvent::TooLong { field, max });
    }
    Ok(())
}

/// Replaces NUL characters and keeps at most `max` characters.
fn sanitize(value: &str, max: usize) -> String {
    value
        .chars()
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .take(max)
        .collect()
}

/// A storage failure as the port reports it (keeps [`persistence::StorageError`] as the
/// source, so the edge can tell an outage from a bug).
pub(crate) fn storage(err: DbErr) -> AppendAuditError {
    AppendAuditError::Storage(Box::new(persistence::StorageError::from(err)))
}

fn chain_state(err: ChainStateError) -> AppendAuditError {
    AppendAuditError::Storage(Box::new(err))
}

fn corrupt_head(chain: ChainId, err: &CorruptRow) -> AppendAuditError {
    chain_state(ChainStateError::CorruptHead {
        chain,
        detail: err.to_string(),
    })
}

/// Maps a driver error: concurrency aborts become [`AppendAuditError::Conflict`].
pub(crate) fn classify(err: DbErr, chain: ChainId) -> AppendAuditError {
    if is_concurrency_abort(&err) {
        tracing::debug!(chain = %chain, error = %err, "audit append aborted by a concurrent writer");
        AppendAuditError::Conflict(chain)
    } else {
        storage(err)
    }
}

/// Whether the database aborted the statement because of another transaction:
/// PostgreSQL serialisation failure (`40001`), deadlock (`40P01`), lock not available
/// (`55P03`); SQLite busy / locked (primary codes 5 and 6, including extended codes).
pub(crate) fn is_concurrency_abort(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = e.deref() else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match code.as_ref() {
        "40001" | "40P01" | "55P03" => true,
        other => other
            .parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{Action, Actor, ChangeType, TenantScope};
    use uuid::Uuid;

    fn sample() -> NewAuditEvent {
        NewAuditEvent::audit(
            TenantScope::org(Uuid::now_v7()),
            Actor::System,
            Action::from_static("permission.update"),
            "permission_setting",
            "budget.approve",
            ChangeType::Update,
        )
    }

    #[test]
    fn metadata_is_cut_and_cleaned_domain_fields_refused() {
        let e = normalise(
            sample()
                .with_user_agent("é".repeat(600))
                .with_ip("1.2.3.4\0"),
        )
        .expect("normalised");
        assert_eq!(
            e.user_agent.as_deref().map(|s| s.chars().count()),
            Some(512)
        );
        assert_eq!(e.ip.as_deref(), Some("1.2.3.4\u{fffd}"));

        let mut long = sample();
        long.entity_id = "x".repeat(129);
        assert_eq!(
            normalise(long),
            Err(InvalidEvent::TooLong {
                field: "entity_id",
                max: 128
            })
        );
        let mut nul = sample();
        nul.entity_type = "a\0b".into();
        assert_eq!(
            normalise(nul),
            Err(InvalidEvent::NulCharacter {
                field: "entity_type"
            })
        );
    }

    #[test]
    fn position_conflicts_are_told_apart_from_duplicate_ids() {
        assert!(is_position_conflict(
            "duplicate key value violates unique constraint \"audit_events_pkey\""
        ));
        assert!(is_position_conflict(
            "UNIQUE constraint failed: audit_events.chain_id, audit_events.seq"
        ));
        assert!(!is_position_conflict(
            "duplicate key value violates unique constraint \"audit_events_id_key\""
        ));
        assert!(!is_position_conflict(
            "UNIQUE constraint failed: audit_events.id"
        ));
    }
}
