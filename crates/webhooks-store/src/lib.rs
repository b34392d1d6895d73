//! Webhooks on the database (rules in the `webhooks` crate).
//!
//! - [`SeaOrmWebhooks`]: an org's endpoints — create (the secret answered once),
//!   read, update, delete, rotate the secret (the previous one signs too for 24 h),
//!   queue a test ping, list deliveries with their attempts, redeliver by hand. Every
//!   write is one org-scoped transaction with its audit event (`webhook.*`).
//! - [`fanout`]: deliveries queued from the **committed** change-event record: each
//!   enabled endpoint remembers the position in its org's chain it has queued through
//!   (`cursor_seq`); the worker reads the events after it, inserts one delivery per
//!   matching event (unique per endpoint and event) and moves the position on in the
//!   same transaction, so nothing committed is missed and nothing is queued twice.
//! - [`worker::WebhookWorker`]: claims due deliveries (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, the write lock on SQLite; a lease), signs and POSTs them through a
//!   [`transport::Transport`], records the attempt; 2xx delivered, 410 disables the
//!   endpoint, anything else retried per [`webhooks::schedule`], failed after the last.
//! - Secrets are sealed at rest by a [`SecretSeal`] (the app's, derived from the
//!   server's signing key) and never answered after creation or rotation.

pub mod fanout;
pub mod metrics;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use audit::{AuditContext, ChangeType, EventType, TenantScope};
use persistence::{Database, WriteTx, now_micros, statement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use webhooks::{EndpointUrl, EventFilter, Secret, SigningKeys, signing::ROTATION_OVERLAP};

/// An error of this adapter, carried opaquely.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The store failed (the database, sealing a secret, the random source).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreFailure(pub BoxError);

impl From<DbErr> for StoreFailure {
    fn from(e: DbErr) -> Self {
        Self(persistence::boxed(e))
    }
}

impl From<audit::AppendAuditError> for StoreFailure {
    fn from(e: audit::AppendAuditError) -> Self {
        Self(Box::new(e))
    }
}

/// Why a change to an endpoint was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such endpoint in the org.
    #[error("no such webhook endpoint")]
    NotFound,
    /// It changed since the version sent.
    #[error("the endpoint changed since version {current}")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

impl From<DbErr> for ChangeError {
    fn from(e: DbErr) -> Self {
        Self::Storage(e.into())
    }
}

impl From<audit::AppendAuditError> for ChangeError {
    fn from(e: audit::AppendAuditError) -> Self {
        Self::Storage(e.into())
    }
}

/// Why a message was not queued (ping, redelivery).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No such endpoint (or delivery) in the org.
    #[error("no such webhook endpoint or delivery")]
    NotFound,
    /// The endpoint is disabled (enable it first).
    #[error("the endpoint is disabled")]
    Disabled,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

impl From<DbErr> for QueueError {
    fn from(e: DbErr) -> Self {
        Self::Storage(e.into())
    }
}

impl From<audit::AppendAuditError> for QueueError {
    fn from(e: audit::AppendAuditError) -> Self {
        Self::Storage(e.into())
    }
}

/// Seals endpoint secrets at rest (the app implements it with a key derived from the
/// server's signing key, so every instance opens what another sealed).
pub trait SecretSeal: Send + Sync + 'static {
    /// `secret` sealed for `owner` (the endpoint id: a row copied to another endpoint
    /// does not open).
    ///
    /// # Errors
    /// The random source or the cipher failed.
    fn seal(&self, owner: &[u8], secret: &[u8]) -> Result<String, BoxError>;

    /// Opens what [`SecretSeal::seal`] made for `owner`.
    ///
    /// # Errors
    /// Tampered with, sealed for another owner or under another key.
    fn open(&self, owner: &[u8], sealed: &str) -> Result<Vec<u8>, BoxError>;
}

/// A fresh secret of 32 random bytes.
///
/// # Errors
/// The random source failed.
pub fn new_secret() -> Result<Secret, StoreFailure> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreFailure(e.to_string().into()))?;
    Secret::from_bytes(&bytes).map_err(|e| StoreFailure(Box::new(e)))
}

/// An endpoint as its org's admins see it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Its org.
    pub org_id: Uuid,
    /// Where messages go.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Whether messages are sent.
    pub enabled: bool,
    /// Why it is disabled (`gone`: the receiver answered 410; `manual`).
    pub disabled_reason: Option<String>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_until: Option<OffsetDateTime>,
    /// Version (each change moves it on).
    pub version: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for an attempt.
    Pending,
    /// Being attempted.
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up (after the last attempt, a 410, or a manual redelivery that failed).
    Failed,
}

impl DeliveryStatus {
    /// The stored and answered name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            _ => Self::Failed,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When.
    pub at: OffsetDateTime,
    /// The receiver's status code (`None`: no answer).
    pub status_code: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u32,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// One message to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (`webhook-id` is `msg_<id without dashes>`).
    pub id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The event type (`webhook.ping` for a test).
    pub event_type: String,
    /// The event's position in the org's record (`None` for a test).
    pub event_seq: Option<u64>,
    /// Its status.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The last answer's status code.
    pub last_status_code: Option<u16>,
    /// The last attempt's latency in milliseconds.
    pub last_latency_ms: Option<u32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// The newest attempts (up to 20), newest first.
    pub attempt_log: Vec<Attempt>,
}

/// What an update changes (absent: unchanged).
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    /// A new URL.
    pub url: Option<EndpointUrl>,
    /// New event types.
    pub events: Option<EventFilter>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The store.
#[derive(Clone)]
pub struct SeaOrmWebhooks {
    db: Database,
    seal: Arc<dyn SecretSeal>,
}

impl std::fmt::Debug for SeaOrmWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaOrmWebhooks").finish_non_exhaustive()
    }
}

const ENDPOINT_COLUMNS: &str = "org_id, id, url, event_types, enabled, disabled_reason, \
     previous_until, version, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_type, event_seq, status, attempts, \
     due_ms, last_status_code, last_latency_ms, last_error, created_at";

fn endpoint_of(row: &QueryResult) -> Result<Endpoint, DbErr> {
    let types: String = row.try_get("", "event_types")?;
    Ok(Endpoint {
        id: row.try_get("", "id")?,
        org_id: row.try_get("", "org_id")?,
        url: row.try_get("", "url")?,
        events: serde_json::from_str(&types).unwrap_or_default(),
        enabled: row.try_get("", "enabled")?,
        disabled_reason: row.try_get("", "disabled_reason")?,
        previous_secret_until: row.try_get("", "previous_until")?,
        version: row.try_get("", "version")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

fn u16_of(v: Option<i32>) -> Option<u16> {
    v.and_then(|v| u16::try_from(v).ok())
}

fn delivery_of(row: &QueryResult) -> Result<Delivery, DbErr> {
    let status = DeliveryStatus::parse(&row.try_get::<String>("", "status")?);
    let due_ms: i64 = row.try_get("", "due_ms")?;
    Ok(Delivery {
        id: row.try_get("", "id")?,
        endpoint_id: row.try_get("", "endpoint_id")?,
        event_type: row.try_get("", "event_type")?,
        event_seq: row
            .try_get::<Option<i64>>("", "event_seq")?
            .and_then(|s| u64::try_from(s).ok()),
        status,
        attempts: u32::try_from(row.try_get::<i32>("", "attempts")?).unwrap_or_default(),
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(due_ms) * 1_000_000).ok())
            .flatten(),
        last_status_code: u16_of(row.try_get("", "last_status_code")?),
        last_latency_ms: row
            .try_get::<Option<i32>>("", "last_latency_ms")?
            .and_then(|v| u32::try_from(v).ok()),
        last_error: row.try_get("", "last_error")?,
        created_at: row.try_get("", "created_at")?,
        attempt_log: Vec::new(),
    })
}

/// The org's audit scope (its district, if any); `None` if there is no such org.
async fn scope_of(tx: &WriteTx, org: Uuid) -> Result<Option<TenantScope>, DbErr> {
    let row = tx
        .query_one_raw(statement(
            tx.get_database_backend(),
            "SELECT district_id FROM organizations WHERE id = ?",
            vec![org.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let district: Option<Uuid> = row.try_get("", "district_id")?;
    Ok(Some(match district {
        Some(d) => TenantScope::org_in_district(org, d),
        None => TenantScope::org(org),
    }))
}

fn snapshot(url: &str, events: &[String], enabled: bool) -> serde_json::Value {
    serde_json::json!({"url": url, "events": events, "enabled": enabled})
}

/// The unfinished deliveries of enabled endpoints ([`SeaOrmWebhooks::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Waiting to be sent now (due): the worker's queue.
    pub due: u64,
    /// Waiting for their next attempt's time (back-off).
    pub waiting: u64,
    /// Being sent (claimed by a worker).
    pub sending: u64,
}

pub(crate) fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl SeaOrmWebhooks {
    /// A store on `db`, sealing secrets with `seal`.
    #[must_use]
    pub fn new(db: Database, seal: Arc<dyn SecretSeal>) -> Self {
        Self { db, seal }
    }

    /// The database.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn seal_secret(&self, endpoint: Uuid, secret: &Secret) -> Result<String, StoreFailure> {
        self.seal
            .seal(endpoint.as_bytes(), secret.bytes())
            .map_err(StoreFailure)
    }

    pub(crate) fn open_secret(&self, endpoint: Uuid, sealed: &str) -> Result<Secret, StoreFailure> {
        let bytes = self
            .seal
            .open(endpoint.as_bytes(), sealed)
            .map_err(StoreFailure)?;
        Secret::from_bytes(&bytes).map_err(|e| StoreFailure(Box::new(e)))
    }

    /// The secrets endpoint `id` signs with now (stored `secret`, `previous`, `until`).
    pub(crate) fn signing_keys(
        &self,
        id: Uuid,
        secret: &str,
        previous: Option<(&str, OffsetDateTime)>,
    ) -> Result<SigningKeys, StoreFailure> {
        let current = self.open_secret(id, secret)?;
        let previous = match previous {
            Some((sealed, until)) => Some((self.open_secret(id, sealed)?, until)),
            None => None,
        };
        Ok(SigningKeys { current, previous })
    }

    /// Registers an endpoint of `org` receiving `events` at `url`; answers it and its
    /// secret (the only time the secret is answered). Events committed after this one
    /// are delivered to it.
    ///
    /// # Errors
    /// [`ChangeError::NotFound`] for an unknown org; storage failures.
    pub async fn create(
        &self,
        ctx: &AuditContext,
        org: Uuid,
        created_by: Option<Uuid>,
        url: &EndpointUrl,
        events: &EventFilter,
    ) -> Result<(Endpoint, Secret), ChangeError> {
        let id = Uuid::now_v7();
        let secret = new_secret()?;
        let sealed = self.seal_secret(id, &secret)?;
        let names: Vec<String> = events.names().iter().map(|s| (*s).to_owned()).collect();
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(ChangeError::NotFound)?;
        let event = ctx.change(
            scope,
            EventType::WebhookCreate,
            ("webhook", id.to_string()),
            ChangeType::Create,
            (None, Some(snapshot(url.as_str(), &names, true))),
        );
        // Our own event is the last one the endpoint does not receive: it takes the
        // chain's head row lock, so the position is exact.
        let sealed_events = audit_store::append_in(&tx, vec![event]).await?;
        let cursor = sealed_events.last().map_or(0, |e| e.seq);
        let now = now_micros();
        tx.execute_raw(statement(
            tx.get_database_backend(),
            "INSERT INTO webhook_endpoints (org_id, id, url, event_types, secret, previous_secret, \
             previous_until, enabled, disabled_reason, cursor_seq, version, created_by, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, NULL, ?, 1, ?, ?, ?)",
            vec![
                org.into(),
                id.into(),
                url.as_str().into(),
                serde_json::to_string(&names).unwrap_or_default().into(),
                sealed.into(),
                true.into(),
                seq_value(cursor).into(),
                created_by.into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
        let endpoint = Self::load(&tx, org, id)
            .await?
            .ok_or(ChangeError::NotFound)?;
        tx.commit().await?;
        Ok((endpoint, secret))
    }

    async fn load<C: ConnectionTrait>(
        conn: &C,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<Endpoint>, DbErr> {
        conn.query_one_raw(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = ? AND id = ?"
            ),
            vec![org.into(), id.into()],
        ))
        .await?
        .as_ref()
        .map(endpoint_of)
        .transpose()
    }

    /// One endpoint of `org`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn get(&self, org: Uuid, id: Uuid) -> Result<Option<Endpoint>, StoreFailure> {
        let tx = self.db.read_for_org(org).await?;
        let found = Self::load(&tx, org, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Up to `limit` endpoints of `org` after `after` (id order), and how many it has.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        org: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<(Vec<Endpoint>, u64), StoreFailure> {
        let tx = self.db.read_for_org(org).await?;
        let backend = tx.get_database_backend();
        let mut values: Vec<Value> = vec![org.into()];
        let mut cond = String::new();
        if let Some(after) = after {
            cond.push_str(" AND id > ?");
            values.push(after.into());
        }
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = tx
            .query_all_raw(statement(
                backend,
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = ?{cond} \
                     ORDER BY id LIMIT ?"
                ),
                values,
            ))
            .await?;
        let endpoints = rows
            .iter()
            .map(endpoint_of)
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = tx
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE org_id = ?",
                vec![org.into()],
            ))
            .await?
            .map_or(Ok(0), |r| r.try_get("", "n"))?;
        tx.commit().await?;
        Ok((endpoints, u64::try_from(total).unwrap_or_default()))
    }

    /// Locks and reads endpoint `id` of `org` in `tx` for a change conditional on
    /// `version` (`None`: unconditional).
    async fn lock_for_change(
        tx: &WriteTx,
        org: Uuid,
        id: Uuid,
        version: Option<i64>,
    ) -> Result<Endpoint, ChangeError> {
        let lock = if tx.get_database_backend() == DbBackend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = tx
            .query_one_raw(statement(
                tx.get_database_backend(),
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = ? AND id = ?{lock}"
                ),
                vec![org.into(), id.into()],
            ))
            .await?;
        let endpoint = row
            .as_ref()
            .map(endpoint_of)
            .transpose()?
            .ok_or(ChangeError::NotFound)?;
        if let Some(v) = version
            && v != endpoint.version
        {
            return Err(ChangeError::VersionMismatch {
                current: endpoint.version,
            });
        }
        Ok(endpoint)
    }

    /// Changes endpoint `id` of `org` if it is still at `version`. Enabling a disabled
    /// endpoint starts it at the present: events committed while it was disabled are
    /// not sent (redeliver them by hand).
    ///
    /// # Errors
    /// [`ChangeError`].
    pub async fn update(
        &self,
        ctx: &AuditContext,
        org: Uuid,
        id: Uuid,
        version: i64,
        changes: &EndpointChanges,
    ) -> Result<Endpoint, ChangeError> {
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(ChangeError::NotFound)?;
        let before = Self::lock_for_change(&tx, org, id, Some(version)).await?;
        let url = changes
            .url
            .as_ref()
            .map_or_else(|| before.url.clone(), |u| u.as_str().to_owned());
        let events: Vec<String> = changes.events.as_ref().map_or_else(
            || before.events.clone(),
            |f| f.names().iter().map(|s| (*s).to_owned()).collect(),
        );
        let enabled = changes.enabled.unwrap_or(before.enabled);
        let event = ctx.change(
            scope,
            EventType::WebhookUpdate,
            ("webhook", id.to_string()),
            ChangeType::Update,
            (
                Some(snapshot(&before.url, &before.events, before.enabled)),
                Some(snapshot(&url, &events, enabled)),
            ),
        );
        let sealed = audit_store::append_in(&tx, vec![event]).await?;
        let head = sealed.last().map_or(0, |e| e.seq);
        let reenabled = enabled && !before.enabled;
        let (reason, cursor_sql) = match (enabled, reenabled) {
            (false, _) => (
                Some(
                    before
                        .disabled_reason
                        .clone()
                        .unwrap_or_else(|| "manual".into()),
                ),
                "cursor_seq",
            ),
            (true, true) => (None, "?"),
            (true, false) => (None, "cursor_seq"),
        };
        let mut values: Vec<Value> = vec![
            url.into(),
            serde_json::to_string(&events).unwrap_or_default().into(),
            enabled.into(),
            reason.into(),
        ];
        if reenabled {
            values.push(seq_value(head).into());
        }
        values.extend([now_micros().into(), org.into(), id.into()]);
        tx.execute_raw(statement(
            tx.get_database_backend(),
            &format!(
                "UPDATE webhook_endpoints SET url = ?, event_types = ?, enabled = ?, \
                 disabled_reason = ?, cursor_seq = {cursor_sql}, version = version + 1, \
                 updated_at = ? WHERE org_id = ? AND id = ?"
            ),
            values,
        ))
        .await?;
        let after = Self::load(&tx, org, id)
            .await?
            .ok_or(ChangeError::NotFound)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes endpoint `id` of `org` with its deliveries.
    ///
    /// # Errors
    /// [`ChangeError::NotFound`]; storage failures.
    pub async fn delete(&self, ctx: &AuditContext, org: Uuid, id: Uuid) -> Result<(), ChangeError> {
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(ChangeError::NotFound)?;
        let before = Self::lock_for_change(&tx, org, id, None).await?;
        let backend = tx.get_database_backend();
        tx.execute_raw(statement(
            backend,
            "DELETE FROM webhook_attempts WHERE org_id = ? AND delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE org_id = ? AND endpoint_id = ?)",
            vec![org.into(), org.into(), id.into()],
        ))
        .await?;
        for table_sql in [
            "DELETE FROM webhook_deliveries WHERE org_id = ? AND endpoint_id = ?",
            "DELETE FROM webhook_endpoints WHERE org_id = ? AND id = ?",
        ] {
            tx.execute_raw(statement(backend, table_sql, vec![org.into(), id.into()]))
                .await?;
        }
        let event = ctx.change(
            scope,
            EventType::WebhookDelete,
            ("webhook", id.to_string()),
            ChangeType::Delete,
            (
                Some(snapshot(&before.url, &before.events, before.enabled)),
                None,
            ),
        );
        audit_store::append_in(&tx, vec![event]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the secret of endpoint `id` of `org`; the previous one keeps signing
    /// (beside the new one) for 24 hours. Answers the new secret (the only time).
    ///
    /// # Errors
    /// [`ChangeError::NotFound`]; storage failures.
    pub async fn rotate_secret(
        &self,
        ctx: &AuditContext,
        org: Uuid,
        id: Uuid,
    ) -> Result<(Endpoint, Secret), ChangeError> {
        let secret = new_secret()?;
        let sealed = self.seal_secret(id, &secret)?;
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(ChangeError::NotFound)?;
        Self::lock_for_change(&tx, org, id, None).await?;
        let until = now_micros() + ROTATION_OVERLAP;
        tx.execute_raw(statement(
            tx.get_database_backend(),
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?, \
             secret = ?, version = version + 1, updated_at = ? WHERE org_id = ? AND id = ?",
            vec![
                until.into(),
                sealed.into(),
                now_micros().into(),
                org.into(),
                id.into(),
            ],
        ))
        .await?;
        let event = ctx.change(
            scope,
            EventType::WebhookSecretRotate,
            ("webhook", id.to_string()),
            ChangeType::Update,
            (None, None),
        );
        audit_store::append_in(&tx, vec![event]).await?;
        let endpoint = Self::load(&tx, org, id)
            .await?
            .ok_or(ChangeError::NotFound)?;
        tx.commit().await?;
        Ok((endpoint, secret))
    }

    /// Queues a `webhook.ping` test message to endpoint `id` of `org` (whatever its
    /// event types); answers the delivery's id.
    ///
    /// # Errors
    /// [`QueueError`].
    pub async fn ping(&self, ctx: &AuditContext, org: Uuid, id: Uuid) -> Result<Uuid, QueueError> {
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(QueueError::NotFound)?;
        let endpoint = Self::lock_for_change(&tx, org, id, None)
            .await
            .map_err(|e| match e {
                ChangeError::NotFound | ChangeError::VersionMismatch { .. } => QueueError::NotFound,
                ChangeError::Storage(s) => QueueError::Storage(s),
            })?;
        if !endpoint.enabled {
            return Err(QueueError::Disabled);
        }
        let delivery = Uuid::now_v7();
        let body = webhooks::ping_body(org, id, OffsetDateTime::now_utc());
        insert_delivery(
            &tx,
            org,
            id,
            delivery,
            webhooks::PING,
            None,
            &body.to_string(),
        )
        .await?;
        let event = ctx.change(
            scope,
            EventType::WebhookPing,
            ("webhook_delivery", delivery.to_string()),
            ChangeType::Create,
            (None, Some(serde_json::json!({"endpoint_id": id}))),
        );
        audit_store::append_in(&tx, vec![event]).await?;
        tx.commit().await?;
        Ok(delivery)
    }

    /// Queues delivery `delivery` of endpoint `endpoint` of `org` again, at once (the
    /// same `webhook-id` and body): a finished one (delivered or failed) for one more
    /// attempt, a pending one sooner (its retries go on).
    ///
    /// # Errors
    /// [`QueueError`].
    pub async fn redeliver(
        &self,
        ctx: &AuditContext,
        org: Uuid,
        endpoint: Uuid,
        delivery: Uuid,
    ) -> Result<(), QueueError> {
        let tx = self.db.begin_for_org(org).await?;
        let scope = scope_of(&tx, org).await?.ok_or(QueueError::NotFound)?;
        let ep = Self::lock_for_change(&tx, org, endpoint, None)
            .await
            .map_err(|e| match e {
                ChangeError::NotFound | ChangeError::VersionMismatch { .. } => QueueError::NotFound,
                ChangeError::Storage(s) => QueueError::Storage(s),
            })?;
        if !ep.enabled {
            return Err(QueueError::Disabled);
        }
        let done = tx
            .execute_raw(statement(
                tx.get_database_backend(),
                "UPDATE webhook_deliveries SET \
                 manual = CASE WHEN status IN ('delivered', 'failed') THEN ? ELSE manual END, \
                 round_start = CASE WHEN status IN ('delivered', 'failed') THEN attempts ELSE round_start END, \
                 status = 'pending', due_ms = ?, lease_owner = NULL \
                 WHERE org_id = ? AND endpoint_id = ? AND id = ?",
                vec![
                    true.into(),
                    now_ms().into(),
                    org.into(),
                    endpoint.into(),
                    delivery.into(),
                ],
            ))
            .await?;
        if done.rows_affected() == 0 {
            return Err(QueueError::NotFound);
        }
        let event = ctx.change(
            scope,
            EventType::WebhookRedeliver,
            ("webhook_delivery", delivery.to_string()),
            ChangeType::Update,
            (None, Some(serde_json::json!({"endpoint_id": endpoint}))),
        );
        audit_store::append_in(&tx, vec![event]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The deliveries not finished yet, of enabled endpoints (those of a disabled
    /// endpoint wait for it to be enabled again and are nobody's work), for
    /// `/metrics`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn backlog(&self) -> Result<Backlog, StoreFailure> {
        let conn = self.db.primary();
        let now = now_ms();
        let row = conn
            .query_one_raw(statement(
                conn.get_database_backend(),
                "SELECT \
                   COALESCE(SUM(CASE WHEN d.status = 'pending' AND d.due_ms <= ? THEN 1 ELSE 0 END), 0) AS due, \
                   COALESCE(SUM(CASE WHEN d.status = 'pending' AND d.due_ms > ? THEN 1 ELSE 0 END), 0) AS waiting, \
                   COALESCE(SUM(CASE WHEN d.status = 'sending' THEN 1 ELSE 0 END), 0) AS sending \
                 FROM webhook_deliveries d \
                 JOIN webhook_endpoints e ON e.org_id = d.org_id AND e.id = d.endpoint_id \
                 WHERE d.status IN ('pending', 'sending') AND e.enabled = ?",
                vec![now.into(), now.into(), true.into()],
            ))
            .await?;
        let n = |c: &str| -> Result<u64, StoreFailure> {
            Ok(match &row {
                Some(r) => u64::try_from(r.try_get::<i64>("", c)?).unwrap_or_default(),
                None => 0,
            })
        };
        Ok(Backlog {
            due: n("due")?,
            waiting: n("waiting")?,
            sending: n("sending")?,
        })
    }

    /// Deletes delivered and failed deliveries queued before `before`, with their
    /// attempts (at most 1,000 per call, so no statement runs long); how many.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_finished(&self, before: OffsetDateTime) -> Result<u64, StoreFailure> {
        let tx = self.db.begin_write().await?;
        let backend = tx.get_database_backend();
        let rows = tx
            .query_all_raw(statement(
                backend,
                "SELECT org_id, id FROM webhook_deliveries \
                 WHERE status IN ('delivered', 'failed') AND created_at < ? LIMIT 1000",
                vec![before.into()],
            ))
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids = rows
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        let list = vec!["?"; ids.len()].join(", ");
        let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
        tx.execute_raw(statement(
            backend,
            &format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({list})"),
            values.clone(),
        ))
        .await?;
        let done = tx
            .execute_raw(statement(
                backend,
                &format!(
                    "DELETE FROM webhook_deliveries WHERE id IN ({list}) \
                     AND status IN ('delivered', 'failed')"
                ),
                values,
            ))
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Delivery `id` of endpoint `endpoint` of `org`, with its newest attempts.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delivery(
        &self,
        org: Uuid,
        endpoint: Uuid,
        id: Uuid,
    ) -> Result<Option<Delivery>, StoreFailure> {
        let tx = self.db.read_for_org(org).await?;
        let row = tx
            .query_one_raw(statement(
                tx.get_database_backend(),
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE org_id = ? AND endpoint_id = ? AND id = ?"
                ),
                vec![org.into(), endpoint.into(), id.into()],
            ))
            .await?;
        let mut items: Vec<Delivery> = row.iter().map(delivery_of).collect::<Result<_, _>>()?;
        with_attempts(&tx, org, &mut items).await?;
        tx.commit().await?;
        Ok(items.pop())
    }

    /// Up to `limit` deliveries of endpoint `endpoint` of `org`, newest first, before
    /// `before` (a delivery id), each with its newest attempts; and how many it has.
    /// `None` when there is no such endpoint.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn deliveries(
        &self,
        org: Uuid,
        endpoint: Uuid,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<Option<(Vec<Delivery>, u64)>, StoreFailure> {
        let tx = self.db.read_for_org(org).await?;
        if Self::load(&tx, org, endpoint).await?.is_none() {
            tx.commit().await?;
            return Ok(None);
        }
        let backend = tx.get_database_backend();
        let mut values: Vec<Value> = vec![org.into(), endpoint.into()];
        let mut cond = String::new();
        if let Some(before) = before {
            cond.push_str(" AND id < ?");
            values.push(before.into());
        }
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = tx
            .query_all_raw(statement(
                backend,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE org_id = ? AND endpoint_id = ?{cond} ORDER BY id DESC LIMIT ?"
                ),
                values,
            ))
            .await?;
        let mut items = rows
            .iter()
            .map(delivery_of)
            .collect::<Result<Vec<_>, _>>()?;
        with_attempts(&tx, org, &mut items).await?;
        let total: i64 = tx
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE org_id = ? AND endpoint_id = ?",
                vec![org.into(), endpoint.into()],
            ))
            .await?
            .map_or(Ok(0), |r| r.try_get("", "n"))?;
        tx.commit().await?;
        Ok(Some((items, u64::try_from(total).unwrap_or_default())))
    }
}

/// Fills the attempt logs of `items` (deliveries of `org`).
async fn with_attempts<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
    items: &mut [Delivery],
) -> Result<(), DbErr> {
    if items.is_empty() {
        return Ok(());
    }
    let list = vec!["?"; items.len()].join(", ");
    let mut values: Vec<Value> = vec![org.into()];
    values.extend(items.iter().map(|d| Value::from(d.id)));
    let attempts = conn
        .query_all_raw(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT delivery_id, attempted_at, status_code, latency_ms, error \
                 FROM webhook_attempts WHERE org_id = ? AND delivery_id IN ({list}) \
                 ORDER BY id DESC"
            ),
            values,
        ))
        .await?;
    for row in &attempts {
        let delivery: Uuid = row.try_get("", "delivery_id")?;
        let attempt = Attempt {
            at: row.try_get("", "attempted_at")?,
            status_code: u16_of(row.try_get("", "status_code")?),
            latency_ms: u32::try_from(row.try_get::<i32>("", "latency_ms")?).unwrap_or_default(),
            error: row.try_get("", "error")?,
        };
        if let Some(d) = items.iter_mut().find(|d| d.id == delivery) {
            d.attempt_log.push(attempt);
        }
    }
    Ok(())
}

/// One queued delivery: its endpoint, event type and seq, and body.
pub(crate) struct NewDelivery<'a> {
    pub(crate) endpoint: Uuid,
    pub(crate) event_type: &'a str,
    pub(crate) event_seq: u64,
    pub(crate) payload: &'a str,
}

/// Rows per multi-row `INSERT` (9 values each: far under both databases' limits).
const INSERT_ROWS: usize = 500;

/// Inserts pending deliveries (due now) of `org` in `conn`'s transaction, several rows
/// per statement; an endpoint's delivery of an event it already has is nothing. How
/// many were inserted.
pub(crate) async fn insert_deliveries<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
    deliveries: &[NewDelivery<'_>],
) -> Result<u64, DbErr> {
    let mut inserted = 0;
    let (due, created) = (now_ms(), now_micros());
    for chunk in deliveries.chunks(INSERT_ROWS) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?)"; chunk.len()].join(", ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 9);
        for d in chunk {
            values.extend([
                org.into(),
                Uuid::now_v7().into(),
                d.endpoint.into(),
                d.event_type.into(),
                seq_value(d.event_seq).into(),
                d.payload.into(),
                false.into(),
                due.into(),
                created.into(),
            ]);
        }
        let done = conn
            .execute_raw(statement(
                conn.get_database_backend(),
                &format!(
                    "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, event_type, event_seq, \
                     payload, status, attempts, round_start, manual, due_ms, created_at) \
                     VALUES {rows} ON CONFLICT (org_id, endpoint_id, event_seq) DO NOTHING"
                ),
                values,
            ))
            .await?;
        inserted += done.rows_affected();
    }
    Ok(inserted)
}

/// Inserts one pending delivery (due now) in `conn`'s transaction; nothing when the
/// endpoint already has one for this event.
pub(crate) async fn insert_delivery<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
    endpoint: Uuid,
    id: Uuid,
    event_type: &str,
    event_seq: Option<u64>,
    payload: &str,
) -> Result<u64, DbErr> {
    let done = conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, event_type, event_seq, payload, \
             status, attempts, round_start, manual, due_ms, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?) \
             ON CONFLICT (org_id, endpoint_id, event_seq) DO NOTHING",
            vec![
                org.into(),
                id.into(),
                endpoint.into(),
                event_type.into(),
                event_seq.map(seq_value).into(),
                payload.into(),
                false.into(),
                now_ms().into(),
                now_micros().into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected())
}
