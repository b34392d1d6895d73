//! The webhook worker: queues deliveries from the record ([`crate::fanout`]), claims due
//! ones, signs and sends them, records each attempt.
//!
//! Claiming is one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …` (with `FOR
//! UPDATE SKIP LOCKED` on PostgreSQL, under the single write lock on SQLite): a claimed
//! delivery is `sending` until its lease runs out; a worker that died holding it leaves
//! it to be claimed again then (at least once — receivers de-duplicate by
//! `webhook-id`). An attempt's outcome is recorded only by the worker holding the lease.
//!
//! A claimed batch reads each endpoint (its address and keys) once, sends with bounded
//! concurrency, then records its attempts in **one transaction per org** (each delivery's
//! update still conditional on the lease, the attempts in one multi-row insert): a
//! commit per batch, not per delivery, is what lets one worker keep up with hundreds of
//! deliveries a second.
//! A delivered attempt makes the endpoint's retries that wait because the receiver was
//! unreachable due at once (up to [`WorkerSettings::wake`] of them): a receiver back up
//! gets its backlog now, not at each retry's next step.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{Actor, AuditContext, ChangeType, EventType, RequestMeta};
use bytes::Bytes;
use persistence::{now_micros, statement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;
use webhooks::{Verdict, message_id, next_delay, verdict};

use crate::metrics::Outcome as Counted;
use crate::transport::Transport;
use crate::{SeaOrmWebhooks, StoreFailure, now_ms, scope_of};

/// Attempts kept per delivery (the newest).
pub const ATTEMPTS_KEPT: i64 = 20;

/// How the worker works.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Deliveries claimed at a time (default 50).
    pub batch: u32,
    /// Deliveries sent at once (default 16).
    pub concurrency: usize,
    /// How long a claim lasts (default 60 s: longer than an attempt's 10 s timeout).
    pub lease: Duration,
    /// Waiting retries a delivered attempt makes due, at most (default 1,000): a longer
    /// backlog is woken in steps, each woken delivery's success waking more.
    pub wake: u32,
    /// Passes start at least this far apart (default 25 ms): the commits that wake the
    /// worker within it share one pass, so a busy instance reads the endpoints and
    /// claims a batch tens of times a second, not once per write.
    pub settle: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch: 50,
            concurrency: 16,
            lease: Duration::from_secs(60),
            wake: 1_000,
            settle: Duration::from_millis(25),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Deliveries queued from new events.
    pub queued: u64,
    /// Deliveries claimed.
    pub claimed: usize,
    /// Delivered (2xx).
    pub delivered: usize,
    /// To be tried again.
    pub retried: usize,
    /// Given up (last attempt, 410, failed manual redelivery).
    pub failed: usize,
}

impl std::ops::AddAssign for Pass {
    fn add_assign(&mut self, o: Self) {
        self.queued += o.queued;
        self.claimed += o.claimed;
        self.delivered += o.delivered;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

struct Claimed {
    org: Uuid,
    id: Uuid,
    endpoint: Uuid,
    payload: String,
    attempts: u32,
    round_start: u32,
    manual: bool,
}

fn claimed(row: &QueryResult) -> Result<Claimed, DbErr> {
    let n = |c: &str| -> Result<u32, DbErr> {
        Ok(u32::try_from(row.try_get::<i32>("", c)?).unwrap_or_default())
    };
    Ok(Claimed {
        org: row.try_get("", "org_id")?,
        id: row.try_get("", "id")?,
        endpoint: row.try_get("", "endpoint_id")?,
        payload: row.try_get("", "payload")?,
        attempts: n("attempts")?,
        round_start: n("round_start")?,
        manual: row.try_get("", "manual")?,
    })
}

/// How an attempt left its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Delivered,
    Retry,
    Failed,
    /// Recorded by no one here: the lease was lost, or the endpoint deleted.
    LostLease,
}

struct Outcome {
    status: Option<u16>,
    latency_ms: u32,
    error: Option<String>,
}

/// Delivers webhooks (one per instance; several instances share the work).
pub struct WebhookWorker<L> {
    store: SeaOrmWebhooks,
    log: L,
    transport: Arc<dyn Transport>,
    settings: WorkerSettings,
    owner: String,
}

impl<L> std::fmt::Debug for WebhookWorker<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWorker")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl<L: audit::AuditLog + Send + Sync + 'static> WebhookWorker<L> {
    /// A worker over `store`, reading events from `log`, sending through `transport`.
    #[must_use]
    pub fn new(
        store: SeaOrmWebhooks,
        log: L,
        transport: Arc<dyn Transport>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            store,
            log,
            transport,
            settings,
            owner: format!("webhooks-{}", Uuid::now_v7().simple()),
        }
    }

    /// Queues new events' deliveries, then claims one batch of due deliveries, sends it
    /// and records its attempts.
    ///
    /// # Errors
    /// Storage failures (claimed deliveries are taken again once their lease ran out).
    pub async fn run_once(&self) -> Result<Pass, StoreFailure> {
        let queued = crate::fanout::queue_new_events(&self.store, &self.log).await?;
        let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let batch = self.claim(now_ms().saturating_add(lease_ms)).await?;
        let mut pass = Pass {
            queued,
            claimed: batch.len(),
            ..Pass::default()
        };
        if batch.is_empty() {
            return Ok(pass);
        }
        let targets = self.targets(&batch).await?;
        let mut running = tokio::task::JoinSet::new();
        let mut sent = Vec::with_capacity(batch.len());
        for c in batch {
            // An endpoint deleted meanwhile: its deliveries went with it.
            let Some(target) = targets.get(&(c.org, c.endpoint)).cloned() else {
                continue;
            };
            if running.len() >= self.settings.concurrency.max(1)
                && let Some(done) = running.join_next().await
            {
                sent.push(done.map_err(|e| StoreFailure(Box::new(e)))?);
            }
            let transport = Arc::clone(&self.transport);
            running.spawn(send(transport, target, c));
        }
        while let Some(done) = running.join_next().await {
            sent.push(done.map_err(|e| StoreFailure(Box::new(e)))?);
        }
        let mut by_org: BTreeMap<Uuid, Vec<Sent>> = BTreeMap::new();
        for s in sent {
            by_org.entry(s.claimed.org).or_default().push(s);
        }
        let mut answered = BTreeSet::new();
        for (org, sent) in by_org {
            for (s, settled) in sent.iter().zip(self.record(org, &sent).await?) {
                match settled {
                    Settled::Delivered => {
                        pass.delivered += 1;
                        answered.insert((org, s.claimed.endpoint));
                    }
                    Settled::Retry => pass.retried += 1,
                    Settled::Failed => pass.failed += 1,
                    Settled::LostLease => {}
                }
            }
        }
        for (org, endpoint) in answered {
            self.wake_waiting_retries(org, endpoint).await;
        }
        Ok(pass)
    }

    /// The address and signing keys of each endpoint in `batch`, read once per batch
    /// (one statement per org).
    async fn targets(
        &self,
        batch: &[Claimed],
    ) -> Result<HashMap<(Uuid, Uuid), Arc<Target>>, StoreFailure> {
        let mut by_org: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        for c in batch {
            by_org.entry(c.org).or_default().insert(c.endpoint);
        }
        let conn = self.store.db.primary();
        let mut targets = HashMap::new();
        for (org, endpoints) in by_org {
            let list = vec!["?"; endpoints.len()].join(", ");
            let mut values: Vec<sea_orm::Value> = vec![org.into()];
            values.extend(endpoints.iter().map(|&e| e.into()));
            let rows = conn
                .query_all_raw(statement(
                    conn.get_database_backend(),
                    &format!(
                        "SELECT id, url, secret, previous_secret, previous_until \
                         FROM webhook_endpoints WHERE org_id = ? AND id IN ({list})"
                    ),
                    values,
                ))
                .await?;
            for row in &rows {
                let id: Uuid = row.try_get("", "id")?;
                let secret: String = row.try_get("", "secret")?;
                let previous: Option<String> = row.try_get("", "previous_secret")?;
                let until: Option<OffsetDateTime> = row.try_get("", "previous_until")?;
                let keys = self
                    .store
                    .signing_keys(id, &secret, previous.as_deref().zip(until))?;
                let url = row.try_get("", "url")?;
                targets.insert((org, id), Arc::new(Target { url, keys }));
            }
        }
        Ok(targets)
    }

    /// Runs passes until one claims nothing.
    ///
    /// # Errors
    /// As [`WebhookWorker::run_once`].
    pub async fn drain(&self) -> Result<Pass, StoreFailure> {
        let mut total = Pass::default();
        loop {
            let pass = self.run_once().await?;
            total += pass;
            if pass.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs in the background: drains, then waits until `wake` is notified (an org
    /// event committed on this instance) or `poll` has passed (other instances'
    /// events, retries coming due); passes start at least [`WorkerSettings::settle`]
    /// apart.
    pub fn spawn(self, wake: Arc<Notify>, poll: Duration) -> tokio::task::JoinHandle<()> {
        let settle = self.settings.settle;
        tokio::spawn(async move {
            let worker = &self;
            run_woken(&wake, poll, settle, || async move {
                if let Err(e) = worker.drain().await {
                    tracing::warn!(error = %e, "webhook worker: storage failure; retrying");
                }
            })
            .await
        })
    }

    async fn claim(&self, lease_until_ms: i64) -> Result<Vec<Claimed>, StoreFailure> {
        let conn = self.store.db.primary();
        let backend = conn.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE OF d SKIP LOCKED"
        } else {
            ""
        };
        let rows = conn
            .query_all_raw(statement(
                backend,
                &format!(
                    "UPDATE webhook_deliveries SET status = 'sending', lease_owner = ?, due_ms = ?, \
                     attempts = attempts + 1 \
                     WHERE id IN (SELECT d.id FROM webhook_deliveries d \
                       JOIN webhook_endpoints e ON e.org_id = d.org_id AND e.id = d.endpoint_id \
                       WHERE d.status IN ('pending', 'sending') AND d.due_ms <= ? AND e.enabled = ? \
                       ORDER BY d.due_ms LIMIT ?{lock}) \
                     RETURNING org_id, id, endpoint_id, payload, attempts, round_start, manual"
                ),
                vec![
                    self.owner.as_str().into(),
                    lease_until_ms.into(),
                    now_ms().into(),
                    true.into(),
                    i64::from(self.settings.batch).into(),
                ],
            ))
            .await?;
        Ok(rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?)
    }
}

/// Runs `pass`, then again each time `wake` is notified or `poll` has passed, each pass
/// starting at least `settle` after the previous one began: wakes closer together than
/// that share the next pass (`Notify` keeps one wake that arrives while a pass runs or
/// waits, so none is lost).
async fn run_woken<F, Fut>(wake: &Notify, poll: Duration, settle: Duration, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let started = tokio::time::Instant::now();
        pass().await;
        let _ = tokio::time::timeout(poll, wake.notified()).await;
        tokio::time::sleep_until(started + settle).await;
    }
}

/// Where and how an endpoint's deliveries are sent.
struct Target {
    url: String,
    keys: webhooks::SigningKeys,
}

/// A claimed delivery after its attempt.
struct Sent {
    claimed: Claimed,
    verdict: Verdict,
    outcome: Outcome,
}

/// Signs and sends one claimed delivery.
async fn send(transport: Arc<dyn Transport>, target: Arc<Target>, mut c: Claimed) -> Sent {
    let now = OffsetDateTime::now_utc();
    let headers = target
        .keys
        .headers(&message_id(c.id), now, c.payload.as_bytes());
    let body = Bytes::from(std::mem::take(&mut c.payload));
    let started = Instant::now();
    let result = transport.send(&target.url, &headers, body).await;
    let elapsed = started.elapsed();
    crate::metrics::attempted(elapsed);
    let latency_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
    let outcome = match result {
        Ok(a) => Outcome {
            status: Some(a.status),
            latency_ms,
            error: (!(200..300).contains(&a.status)).then(|| format!("HTTP {}", a.status)),
        },
        Err(e) => Outcome {
            status: None,
            latency_ms,
            error: Some(e.to_string()),
        },
    };
    Sent {
        verdict: verdict(outcome.status),
        claimed: c,
        outcome,
    }
}

impl<L: audit::AuditLog + Send + Sync + 'static> WebhookWorker<L> {
    /// After a delivered attempt: up to [`WorkerSettings::wake`] of the endpoint's
    /// deliveries waiting for a retry because the receiver was unreachable — no answer
    /// (refused, reset, timed out) or 502/503/504 — become due now, so a receiver that is
    /// back gets its backlog at once rather than at each delivery's next step of the
    /// schedule (up to 10 h away). A retry after another answer (a 500 or 4xx to that
    /// one message) keeps its schedule: the receiver is up and refused the message, and
    /// waking it at every success would spend its attempts in seconds.
    ///
    /// Once per endpoint and batch, in its own statement after the batch's attempts were
    /// recorded: rows another worker is waking
    /// are skipped (`SKIP LOCKED` on PostgreSQL), so it never waits on nor deadlocks
    /// with them, and if it fails the retries just keep their schedule (logged). On the
    /// healthy path it is an empty range of `ix_webhook_deliveries_waiting` (the
    /// endpoint's pending deliveries by due time: those due later are the waiting
    /// retries).
    async fn wake_waiting_retries(&self, org: Uuid, endpoint: Uuid) {
        let conn = self.store.db.primary();
        let backend = conn.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let waiting = "org_id = ? AND endpoint_id = ? AND status = 'pending' AND due_ms > ? \
                       AND (last_status_code IS NULL OR last_status_code IN (502, 503, 504))";
        let now = now_ms();
        let woken = conn
            .execute_raw(statement(
                backend,
                &format!(
                    "UPDATE webhook_deliveries SET due_ms = ? WHERE {waiting} AND id IN \
                     (SELECT id FROM webhook_deliveries WHERE {waiting} \
                      ORDER BY due_ms LIMIT ?{lock})"
                ),
                vec![
                    now.into(),
                    org.into(),
                    endpoint.into(),
                    now.into(),
                    org.into(),
                    endpoint.into(),
                    now.into(),
                    i64::from(self.settings.wake).into(),
                ],
            ))
            .await;
        match woken {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(endpoint = %endpoint, woken = done.rows_affected(),
                    "webhook receiver answered again: its waiting retries are due now");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(endpoint = %endpoint, error = %e,
                    "webhooks: waking the endpoint's waiting retries failed; they keep their schedule");
            }
        }
    }

    /// Records the attempts of `org`'s sent deliveries and their consequences in one
    /// transaction, each only if this worker still holds its lease; how each settled
    /// (in `sent`'s order).
    async fn record(&self, org: Uuid, sent: &[Sent]) -> Result<Vec<Settled>, StoreFailure> {
        let tx = self.store.db.begin_for_org(org).await?;
        let backend = tx.get_database_backend();
        let mut states = Vec::with_capacity(sent.len());
        for s in sent {
            let (c, o) = (&s.claimed, &s.outcome);
            let (status, due) = match s.verdict {
                Verdict::Delivered => ("delivered", now_ms()),
                Verdict::Gone => ("failed", now_ms()),
                Verdict::Retry => {
                    let in_round = c.attempts.saturating_sub(c.round_start);
                    match next_delay(in_round) {
                        Some(wait) if !c.manual => (
                            "pending",
                            now_ms().saturating_add(
                                i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                            ),
                        ),
                        _ => ("failed", now_ms()),
                    }
                }
            };
            let done = tx
                .execute_raw(statement(
                    backend,
                    "UPDATE webhook_deliveries SET status = ?, due_ms = ?, lease_owner = NULL, \
                     manual = ?, last_status_code = ?, last_latency_ms = ?, last_error = ?, \
                     last_attempt_at = ? \
                     WHERE org_id = ? AND id = ? AND status = 'sending' AND lease_owner = ?",
                    vec![
                        status.into(),
                        due.into(),
                        false.into(),
                        o.status.map(i32::from).into(),
                        i32::try_from(o.latency_ms).unwrap_or(i32::MAX).into(),
                        o.error.clone().into(),
                        now_micros().into(),
                        org.into(),
                        c.id.into(),
                        self.owner.as_str().into(),
                    ],
                ))
                .await?;
            // No row: the lease ran out and another worker took it (its attempt counts).
            states.push((done.rows_affected() > 0).then_some(status));
        }
        let held: Vec<&Sent> = sent
            .iter()
            .zip(&states)
            .filter_map(|(s, st)| st.map(|_| s))
            .collect();
        if held.is_empty() {
            tx.rollback().await?;
            return Ok(vec![Settled::LostLease; sent.len()]);
        }
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; held.len()].join(", ");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(held.len() * 7);
        for s in &held {
            values.extend([
                org.into(),
                Uuid::now_v7().into(),
                s.claimed.id.into(),
                now_micros().into(),
                s.outcome.status.map(i32::from).into(),
                i32::try_from(s.outcome.latency_ms)
                    .unwrap_or(i32::MAX)
                    .into(),
                s.outcome.error.clone().into(),
            ]);
        }
        tx.execute_raw(statement(
            backend,
            &format!(
                "INSERT INTO webhook_attempts (org_id, id, delivery_id, attempted_at, status_code, \
                 latency_ms, error) VALUES {rows}"
            ),
            values,
        ))
        .await?;
        // A delivery claimed at most ATTEMPTS_KEPT times has at most that many attempts.
        for s in held
            .iter()
            .filter(|s| i64::from(s.claimed.attempts) > ATTEMPTS_KEPT)
        {
            tx.execute_raw(statement(
                backend,
                "DELETE FROM webhook_attempts WHERE org_id = ? AND delivery_id = ? AND id NOT IN \
                 (SELECT id FROM webhook_attempts WHERE org_id = ? AND delivery_id = ? \
                  ORDER BY id DESC LIMIT ?)",
                vec![
                    org.into(),
                    s.claimed.id.into(),
                    org.into(),
                    s.claimed.id.into(),
                    ATTEMPTS_KEPT.into(),
                ],
            ))
            .await?;
        }
        let gone: BTreeSet<Uuid> = held
            .iter()
            .filter(|s| s.verdict == Verdict::Gone)
            .map(|s| s.claimed.endpoint)
            .collect();
        for endpoint in gone {
            self.disable(&tx, org, endpoint).await?;
        }
        tx.commit().await?;
        Ok(sent
            .iter()
            .zip(states)
            .map(|(s, status)| status.map_or(Settled::LostLease, |status| settled(s, status)))
            .collect())
    }

    /// Disables the endpoint (410 Gone), audited as the system's change.
    async fn disable(
        &self,
        tx: &persistence::WriteTx,
        org: Uuid,
        endpoint: Uuid,
    ) -> Result<(), StoreFailure> {
        let changed = tx
            .execute_raw(statement(
                tx.get_database_backend(),
                "UPDATE webhook_endpoints SET enabled = ?, disabled_reason = 'gone', \
                 version = version + 1, updated_at = ? WHERE org_id = ? AND id = ? AND enabled = ?",
                vec![
                    false.into(),
                    now_micros().into(),
                    org.into(),
                    endpoint.into(),
                    true.into(),
                ],
            ))
            .await?;
        if changed.rows_affected() == 0 {
            return Ok(());
        }
        let Some(scope) = scope_of(tx, org).await? else {
            return Ok(());
        };
        let ctx = AuditContext {
            actor: Actor::System,
            request: RequestMeta::default(),
        };
        let event = ctx.change(
            scope,
            EventType::WebhookDisable,
            ("webhook", endpoint.to_string()),
            ChangeType::Update,
            (
                Some(serde_json::json!({"enabled": true})),
                Some(serde_json::json!({"enabled": false, "disabled_reason": "gone"})),
            ),
        );
        audit_store::append_in(tx, vec![event]).await?;
        Ok(())
    }
}

/// Logs and counts how an attempt whose outcome was recorded (as `status`) settled.
fn settled(s: &Sent, status: &str) -> Settled {
    let (c, o) = (&s.claimed, &s.outcome);
    let (settled, outcome) = match (s.verdict, status) {
        (Verdict::Delivered, _) => {
            tracing::debug!(delivery = %c.id, endpoint = %c.endpoint, "webhook delivered");
            (Settled::Delivered, Counted::Delivered)
        }
        (Verdict::Gone, _) => {
            tracing::warn!(delivery = %c.id, endpoint = %c.endpoint, "webhook receiver answered 410 Gone: endpoint disabled");
            (Settled::Failed, Counted::Disabled)
        }
        (Verdict::Retry, "pending") => {
            tracing::info!(delivery = %c.id, endpoint = %c.endpoint, attempt = c.attempts, error = ?o.error, "webhook attempt failed; will retry");
            (Settled::Retry, Counted::Retried)
        }
        (Verdict::Retry, _) => {
            tracing::warn!(delivery = %c.id, endpoint = %c.endpoint, attempt = c.attempts, error = ?o.error, "webhook delivery failed: no attempt left");
            (Settled::Failed, Counted::Failed)
        }
    };
    crate::metrics::settled(outcome);
    settled
}

#[cfg(test)]
mod woken_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A wake every millisecond for 100 ms: passes 25 ms apart share them, and the last
    /// wake still gets its pass.
    #[tokio::test(start_paused = true)]
    async fn wakes_closer_than_settle_share_one_pass_and_none_is_lost() {
        let wake = Arc::new(Notify::new());
        let passes = Arc::new(AtomicU32::new(0));
        let (w, p) = (Arc::clone(&wake), Arc::clone(&passes));
        let running = tokio::spawn(async move {
            run_woken(
                &w,
                Duration::from_secs(3600),
                Duration::from_millis(25),
                || {
                    p.fetch_add(1, Ordering::SeqCst);
                    std::future::ready(())
                },
            )
            .await;
        });
        tokio::task::yield_now().await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            1,
            "the first pass runs at once"
        );
        for _ in 0..100 {
            wake.notify_one();
            tokio::time::advance(Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
        }
        let after_wakes = passes.load(Ordering::SeqCst);
        assert!(
            (4..=6).contains(&after_wakes),
            "100 wakes over 100 ms at most one pass per 25 ms: {after_wakes}"
        );
        // The last wake (at 100 ms) is served by a pass within `settle`.
        tokio::time::advance(Duration::from_millis(30)).await;
        tokio::task::yield_now().await;
        assert!(passes.load(Ordering::SeqCst) > after_wakes);
        // Without wakes, nothing more until the poll.
        let settled = passes.load(Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(60)).await;
        tokio::task::yield_now().await;
        assert_eq!(passes.load(Ordering::SeqCst), settled);
        running.abort();
    }
}
