//! Idempotency keys of `POST` creates (`Idempotency-Key`, `../shared/spec/api.md`,
//! "Retries"), kept in the database so every instance gives the same answer.
//!
//! A request carrying a key first [claims](IdempotencyStore::claim) it for its
//! [`Scope`] (the caller, the route, the key) with the digest of its body:
//! - nobody holds it: the request runs ([`Claim::Fresh`]) and then either
//!   [completes](IdempotencyStore::complete) the key with its successful answer or
//!   [releases](IdempotencyStore::release) it (a failed attempt may be retried);
//! - a completed key with the same body: the first answer is replayed
//!   ([`Claim::Replay`]), the write does not run again;
//! - the same key with another body: [`Claim::Mismatch`];
//! - a key whose first request is still running: [`Claim::InFlight`].
//!
//! Keys last [`RETENTION`] (24 hours) from their claim: an older row counts as absent
//! and [`IdempotencyStore::purge`] removes it. A claim left running longer than
//! [`IN_FLIGHT_LEASE`] (its process died) may be taken over.

use async_trait::async_trait;
use persistence::{Database, StorageError, statement};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a key is remembered from its claim.
pub const RETENTION: time::Duration = time::Duration::hours(24);

/// How long a claim may stay unfinished before it is taken for the leftover of a
/// process that died, and a new request with the key may run.
pub const IN_FLIGHT_LEASE: time::Duration = time::Duration::minutes(5);

/// Whose key, for which route: keys never meet across callers or routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The caller, e.g. `user:<id>`, `key:<API key id>`, `ip:<address>`.
    pub caller: String,
    /// The route: method and path as requested, e.g. `POST /api/v2/orgs`.
    pub route: String,
    /// The client's key (1–255 printable ASCII characters, checked by the edge).
    pub key: String,
}

/// A successful answer as kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The `Location` header, if the answer had one.
    pub location: Option<String>,
    /// The body (JSON). `None`: the answer held a secret shown once, and was not kept.
    pub body: Option<String>,
}

/// The claim of a request that runs: completing or releasing the key takes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The key claimed.
    pub scope: Scope,
    /// This attempt's id (a stale attempt cannot finish a key taken over since).
    pub id: Uuid,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: run it, then complete or release the attempt.
    Fresh(Attempt),
    /// The key answered already, to the same body: replay this.
    Replay(StoredResponse),
    /// The key was used with a different body.
    Mismatch,
    /// The key's first request is still running.
    InFlight,
}

/// A failure of the key store.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The database failed (unavailable: 503; else 500).
    #[error("idempotency key store: {0}")]
    Storage(#[source] StorageError),
    /// A row could not be read back.
    #[error("idempotency key store: malformed row: {0}")]
    Malformed(String),
}

impl From<sea_orm::DbErr> for IdempotencyError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Storage(StorageError::from(err))
    }
}

/// The port: where idempotency keys and their first answers are kept.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `scope` for a request whose body digests to `request_hash`, at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn claim(
        &self,
        scope: &Scope,
        request_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, IdempotencyError>;

    /// Keeps `response` as the key's answer (a no-op if the attempt lost the key).
    ///
    /// # Errors
    /// Storage failures.
    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError>;

    /// Gives the key back unanswered: the next request with it runs.
    ///
    /// # Errors
    /// Storage failures.
    async fn release(&self, attempt: &Attempt) -> Result<(), IdempotencyError>;

    /// Removes the keys claimed before `before` (expired); how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, IdempotencyError>;

    /// Removes every key of `caller` (an erased account's answers); how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn forget_caller(&self, caller: &str) -> Result<u64, IdempotencyError>;
}

/// The SQL adapter (table `idempotency_keys`, PostgreSQL and SQLite).
#[derive(Debug, Clone)]
pub struct SqlIdempotencyStore {
    db: Database,
}

impl SqlIdempotencyStore {
    /// The store on `db` (the primary: claims are writes).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn backend(&self) -> DbBackend {
        self.db.primary().get_database_backend()
    }

    fn key_values(scope: &Scope) -> Vec<Value> {
        vec![
            scope.caller.clone().into(),
            scope.route.clone().into(),
            scope.key.clone().into(),
        ]
    }

    async fn insert(
        &self,
        scope: &Scope,
        request_hash: &str,
        attempt: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, IdempotencyError> {
        let mut values = Self::key_values(scope);
        values.extend([
            request_hash.to_owned().into(),
            attempt.simple().to_string().into(),
            now.into(),
        ]);
        let done = self
            .db
            .primary()
            .execute_raw(statement(
                self.backend(),
                "INSERT INTO idempotency_keys \
                 (caller, route, idem_key, request_hash, attempt, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (caller, route, idem_key) DO NOTHING",
                values,
            ))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn read(&self, scope: &Scope) -> Result<Option<Row>, IdempotencyError> {
        let row = self
            .db
            .primary()
            .query_one_raw(statement(
                self.backend(),
                "SELECT request_hash, attempt, status, location, response_body, created_at \
                 FROM idempotency_keys WHERE caller = ? AND route = ? AND idem_key = ?",
                Self::key_values(scope),
            ))
            .await?;
        row.map(|r| Row::from_result(&r)).transpose()
    }

    async fn delete_attempt(
        &self,
        scope: &Scope,
        attempt: &str,
        unfinished_only: bool,
    ) -> Result<(), IdempotencyError> {
        let mut values = Self::key_values(scope);
        values.push(attempt.to_owned().into());
        let sql = if unfinished_only {
            "DELETE FROM idempotency_keys WHERE caller = ? AND route = ? AND idem_key = ? \
             AND attempt = ? AND status IS NULL"
        } else {
            "DELETE FROM idempotency_keys WHERE caller = ? AND route = ? AND idem_key = ? \
             AND attempt = ?"
        };
        self.db
            .primary()
            .execute_raw(statement(self.backend(), sql, values))
            .await?;
        Ok(())
    }
}

/// A stored key, as read.
struct Row {
    request_hash: String,
    attempt: String,
    status: Option<i32>,
    location: Option<String>,
    body: Option<String>,
    created_at: OffsetDateTime,
}

impl Row {
    fn from_result(r: &QueryResult) -> Result<Self, IdempotencyError> {
        let bad = |e: sea_orm::DbErr| IdempotencyError::Malformed(e.to_string());
        Ok(Self {
            request_hash: r.try_get("", "request_hash").map_err(bad)?,
            attempt: r.try_get("", "attempt").map_err(bad)?,
            status: r.try_get("", "status").map_err(bad)?,
            location: r.try_get("", "location").map_err(bad)?,
            body: r.try_get("", "response_body").map_err(bad)?,
            created_at: r.try_get("", "created_at").map_err(bad)?,
        })
    }

    /// Whether the row no longer holds its key at `now`: expired, or a claim whose
    /// request died.
    fn stale(&self, now: OffsetDateTime) -> bool {
        self.created_at + RETENTION <= now
            || (self.status.is_none() && self.created_at + IN_FLIGHT_LEASE <= now)
    }
}

#[async_trait]
impl IdempotencyStore for SqlIdempotencyStore {
    async fn claim(
        &self,
        scope: &Scope,
        request_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, IdempotencyError> {
        // A few rounds at most: each lost round means another request just claimed or
        // released the key, or a stale row was removed.
        for _ in 0..4 {
            let attempt = Uuid::new_v4();
            if self.insert(scope, request_hash, attempt, now).await? {
                return Ok(Claim::Fresh(Attempt {
                    scope: scope.clone(),
                    id: attempt,
                }));
            }
            let Some(row) = self.read(scope).await? else {
                continue;
            };
            if row.stale(now) {
                self.delete_attempt(scope, &row.attempt, false).await?;
                continue;
            }
            if row.request_hash != request_hash {
                return Ok(Claim::Mismatch);
            }
            return Ok(match row.status {
                None => Claim::InFlight,
                Some(status) => Claim::Replay(StoredResponse {
                    status: u16::try_from(status).map_err(|e| {
                        IdempotencyError::Malformed(format!("status {status}: {e}"))
                    })?,
                    location: row.location,
                    body: row.body,
                }),
            });
        }
        // Contended beyond reason: tell the client to retry rather than run twice.
        Ok(Claim::InFlight)
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        let mut values: Vec<Value> = vec![
            i32::from(response.status).into(),
            response.location.clone().into(),
            response.body.clone().into(),
        ];
        values.extend(Self::key_values(&attempt.scope));
        values.push(attempt.id.simple().to_string().into());
        self.db
            .primary()
            .execute_raw(statement(
                self.backend(),
                "UPDATE idempotency_keys SET status = ?, location = ?, response_body = ? \
                 WHERE caller = ? AND route = ? AND idem_key = ? AND attempt = ? \
                 AND status IS NULL",
                values,
            ))
            .await?;
        Ok(())
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), IdempotencyError> {
        self.delete_attempt(&attempt.scope, &attempt.id.simple().to_string(), true)
            .await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, IdempotencyError> {
        let done = self
            .db
            .primary()
            .execute_raw(statement(
                self.backend(),
                "DELETE FROM idempotency_keys WHERE created_at < ?",
                vec![before.into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }

    async fn forget_caller(&self, caller: &str) -> Result<u64, IdempotencyError> {
        let done = self
            .db
            .primary()
            .execute_raw(statement(
                self.backend(),
                "DELETE FROM idempotency_keys WHERE caller = ?",
                vec![caller.to_owned().into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests;
