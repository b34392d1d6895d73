//! The outbox table: messages written in the caller's write transaction, claimed by
//! workers, marked sent or failed.
//!
//! Claiming is one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …`: with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL (workers on several instances never wait for
//! or take each other's rows), under the database's single write lock on SQLite. A
//! claimed message is `sending` until `due_ms` (its lease); a worker that died holding
//! it leaves it to be claimed again once the lease has run out.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::MailError;
use crate::message::{Address, Locale, MailKind, Message};
use persistence::{Database, WriteTx, now_micros};

/// Rows per multi-row insert.
const INSERT_CHUNK: usize = 500;

/// `sql` with `?` placeholders (see [`persistence::statement`]).
pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    persistence::statement(backend, sql, values)
}

pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The outbox (see the crate documentation for how to use it).
#[derive(Debug, Clone, Copy)]
pub struct Outbox;

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for (another) attempt.
    Pending,
    /// Claimed by a worker (until its lease runs out).
    Sending,
    /// Delivered: never sent again.
    Sent,
    /// Given up on (after the last attempt, or refused for good).
    Failed,
}

impl Status {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// What the outbox knows of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    /// Its status.
    pub status: Status,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// A claimed message, as the worker sees it.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub id: Uuid,
    pub attempts: u32,
    pub template: String,
    /// The message, or why it cannot be read back (a permanent failure).
    pub message: Result<(Address, Locale, MailKind), String>,
}

impl Outbox {
    /// Writes `message` into the outbox **in the caller's transaction**: sent after the
    /// transaction commits, never if it rolls back. In a tenant-scoped transaction
    /// (`Database::begin_for_org`) the message must belong to that org (row-level
    /// security refuses anything else on PostgreSQL).
    ///
    /// # Errors
    /// [`MailError::Storage`] when the insert fails (the caller's transaction should
    /// then be rolled back).
    pub async fn enqueue(tx: &WriteTx, message: &Message) -> Result<(), MailError> {
        Self::enqueue_all(tx, std::slice::from_ref(message)).await
    }

    /// Writes several messages in the caller's transaction (multi-row inserts of
    /// 500 rows), like [`Outbox::enqueue`].
    ///
    /// # Errors
    /// [`MailError::Storage`].
    pub async fn enqueue_all(tx: &WriteTx, messages: &[Message]) -> Result<(), MailError> {
        let backend = tx.get_database_backend();
        let now = now_micros();
        let due = now_ms();
        for chunk in messages.chunks(INSERT_CHUNK) {
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 10);
            for m in chunk {
                let payload = serde_json::to_string(&m.kind).map_err(MailError::Encode)?;
                values.extend([
                    m.id.into(),
                    m.org_id.into(),
                    m.to.as_str().into(),
                    m.locale.as_str().into(),
                    m.kind.template().into(),
                    payload.into(),
                    "pending".into(),
                    0_i32.into(),
                    due.into(),
                    now.into(),
                ]);
            }
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            tx.execute_raw(stmt(
                backend,
                &format!(
                    "INSERT INTO mail_outbox (id, org_id, recipient, locale, template, payload, \
                     status, attempts, due_ms, created_at) VALUES {rows}"
                ),
                values,
            ))
            .await
            .map_err(MailError::Storage)?;
        }
        Ok(())
    }

    /// Deletes every message to `address`, or naming it in its content, whatever its
    /// status (only those of `org`, when given), in the caller's transaction (an
    /// erasure); the ids deleted (their `.eml` files, without SMTP, go with
    /// [`crate::FileTransport::forget_address`]).
    ///
    /// # Errors
    /// [`MailError::Storage`]; roll back then.
    pub async fn erase_recipient_in<C: ConnectionTrait>(
        conn: &C,
        address: &str,
        org: Option<Uuid>,
    ) -> Result<Vec<Uuid>, MailError> {
        let backend = conn.get_database_backend();
        let address = address.to_lowercase();
        let mut condition = if backend == DbBackend::Postgres {
            "(lower(recipient) = ? OR strpos(lower(payload::text), ?) > 0)".to_owned()
        } else {
            "(lower(recipient) = ? OR instr(lower(payload), ?) > 0)".to_owned()
        };
        let mut values: Vec<Value> = vec![address.clone().into(), address.into()];
        if let Some(org) = org {
            condition.push_str(" AND org_id = ?");
            values.push(org.into());
        }
        let rows = conn
            .query_all_raw(stmt(
                backend,
                &format!("SELECT id FROM mail_outbox WHERE {condition}"),
                values.clone(),
            ))
            .await
            .map_err(MailError::Storage)?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MailError::Storage)?;
        conn.execute_raw(stmt(
            backend,
            &format!("DELETE FROM mail_outbox WHERE {condition}"),
            values,
        ))
        .await
        .map_err(MailError::Storage)?;
        Ok(ids)
    }

    /// The state of one message (`None` if there is no such message).
    ///
    /// # Errors
    /// [`MailError::Storage`].
    pub async fn state(db: &Database, id: Uuid) -> Result<Option<MessageState>, MailError> {
        let conn = db.primary();
        let row = conn
            .query_one_raw(stmt(
                conn.get_database_backend(),
                "SELECT status, attempts, last_error FROM mail_outbox WHERE id = ?",
                vec![id.into()],
            ))
            .await
            .map_err(MailError::Storage)?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("", "status").map_err(MailError::Storage)?;
        let attempts: i32 = row.try_get("", "attempts").map_err(MailError::Storage)?;
        Ok(Some(MessageState {
            status: Status::parse(&status).unwrap_or(Status::Failed),
            attempts: u32::try_from(attempts).unwrap_or_default(),
            last_error: row.try_get("", "last_error").map_err(MailError::Storage)?,
        }))
    }

    /// Deletes sent and failed messages created before `before` (at most 5,000 per
    /// call, so no statement runs long); how many were deleted.
    ///
    /// # Errors
    /// [`MailError::Storage`].
    pub async fn purge_finished(
        db: &Database,
        before: time::OffsetDateTime,
    ) -> Result<u64, MailError> {
        let conn = db.primary();
        let done = conn
            .execute_raw(stmt(
                conn.get_database_backend(),
                "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox \
                 WHERE status IN ('sent', 'failed') AND created_at < ? LIMIT 5000)",
                vec![before.into()],
            ))
            .await
            .map_err(MailError::Storage)?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due messages for `owner` until `lease_until_ms`.
    pub(crate) async fn claim(
        db: &Database,
        owner: &str,
        limit: u32,
        lease_until_ms: i64,
    ) -> Result<Vec<Claimed>, MailError> {
        let conn = db.primary();
        let backend = conn.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let rows = conn
            .query_all_raw(stmt(
                backend,
                &format!(
                    "UPDATE mail_outbox SET status = 'sending', lease_owner = ?, due_ms = ?, \
                     attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM mail_outbox \
                       WHERE status IN ('pending', 'sending') AND due_ms <= ? \
                       ORDER BY due_ms LIMIT ?{lock}) \
                     RETURNING id, recipient, locale, template, payload, attempts"
                ),
                vec![
                    owner.into(),
                    lease_until_ms.into(),
                    now_ms().into(),
                    i64::from(limit).into(),
                ],
            ))
            .await
            .map_err(MailError::Storage)?;
        rows.iter().map(claimed).collect()
    }

    /// Marks delivered messages sent (and forgets their variables).
    pub(crate) async fn mark_sent(db: &Database, ids: &[Uuid]) -> Result<(), MailError> {
        if ids.is_empty() {
            return Ok(());
        }
        let conn = db.primary();
        let mut values: Vec<Value> = vec![now_micros().into()];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let list = vec!["?"; ids.len()].join(", ");
        conn.execute_raw(stmt(
            conn.get_database_backend(),
            &format!(
                "UPDATE mail_outbox SET status = 'sent', sent_at = ?, payload = '', \
                 lease_owner = NULL, last_error = NULL \
                 WHERE id IN ({list}) AND status = 'sending'"
            ),
            values,
        ))
        .await
        .map_err(MailError::Storage)?;
        Ok(())
    }

    /// Puts a message back for another attempt at `due_ms`.
    pub(crate) async fn mark_retry(
        db: &Database,
        id: Uuid,
        due_ms: i64,
        error: &str,
    ) -> Result<(), MailError> {
        let conn = db.primary();
        conn.execute_raw(stmt(
            conn.get_database_backend(),
            "UPDATE mail_outbox SET status = 'pending', due_ms = ?, lease_owner = NULL, \
             last_error = ? WHERE id = ? AND status = 'sending'",
            vec![due_ms.into(), error.into(), id.into()],
        ))
        .await
        .map_err(MailError::Storage)?;
        Ok(())
    }

    /// Gives up on a message (and forgets its variables).
    pub(crate) async fn mark_failed(db: &Database, id: Uuid, error: &str) -> Result<(), MailError> {
        let conn = db.primary();
        conn.execute_raw(stmt(
            conn.get_database_backend(),
            "UPDATE mail_outbox SET status = 'failed', payload = '', lease_owner = NULL, \
             last_error = ? WHERE id = ? AND status = 'sending'",
            vec![error.into(), id.into()],
        ))
        .await
        .map_err(MailError::Storage)?;
        Ok(())
    }
}

fn claimed(row: &QueryResult) -> Result<Claimed, MailError> {
    let get_s = |c: &str| row.try_get::<String>("", c).map_err(MailError::Storage);
    let id: Uuid = row.try_get("", "id").map_err(MailError::Storage)?;
    let attempts: i32 = row.try_get("", "attempts").map_err(MailError::Storage)?;
    let template = get_s("template")?;
    let recipient = get_s("recipient")?;
    let locale = get_s("locale")?;
    let payload = get_s("payload")?;
    let message = Address::parse(&recipient)
        .map_err(|_| "the recipient is not an address".to_owned())
        .and_then(|to| {
            serde_json::from_str::<MailKind>(&payload)
                .map(|kind| (to, Locale::from_tag(&locale), kind))
                .map_err(|e| format!("the stored message cannot be read: {e}"))
        });
    Ok(Claimed {
        id,
        attempts: u32::try_from(attempts).unwrap_or_default(),
        template,
        message,
    })
}
