//! The mail worker: claims due messages, renders, sends, marks them; retries with
//! exponential back-off; gives up after a bounded number of attempts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::MailError;
use crate::message::{Address, Locale, MailKind};
use crate::outbox::{Claimed, Outbox, now_ms};
use crate::render::Renderer;
use crate::transport::{Outgoing, SendError, Transport};
use persistence::Database;

/// The sender of every message (`MAIL_FROM`, e.g. `PTO Connect <no-reply@example.org>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender(Mailbox);

impl Sender {
    /// Parses `Name <address>` or a bare address.
    ///
    /// # Errors
    /// A sentence saying what is wrong (for the configuration report).
    pub fn parse(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<Mailbox>()
            .map(Self)
            .map_err(|_| format!("{s:?} is not an address or Name <address>"))
    }

    /// The domain of the address (used for `Message-ID`s).
    #[must_use]
    pub fn domain(&self) -> &str {
        self.0.email.domain()
    }
}

/// How the worker works.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Who the messages are from.
    pub from: Sender,
    /// Messages claimed at a time (default 50).
    pub batch: u32,
    /// Messages sent at once (default 8; the SMTP pool keeps up to 10 connections).
    pub concurrency: usize,
    /// How long a claim lasts before another worker may take the message (default 2
    /// minutes; longer than a send can take, with lettre's 30-second timeout).
    pub lease: Duration,
    /// Attempts before giving up (default 10).
    pub max_attempts: u32,
    /// The wait after the first failed attempt, doubled after each (default 30 s).
    pub backoff_base: Duration,
    /// The longest wait between attempts (default 1 hour): with the defaults the last
    /// attempt comes about 3 hours after the first.
    pub backoff_max: Duration,
}

impl WorkerSettings {
    /// The defaults, sending as `from`.
    #[must_use]
    pub fn new(from: Sender) -> Self {
        Self {
            from,
            batch: 50,
            concurrency: 8,
            lease: Duration::from_secs(120),
            max_attempts: 10,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1_u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.backoff_base
            .checked_mul(factor)
            .map_or(self.backoff_max, |d| d.min(self.backoff_max))
    }
}

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Messages claimed.
    pub claimed: usize,
    /// Delivered and marked sent.
    pub sent: usize,
    /// Failed this time, to be tried again later.
    pub retried: usize,
    /// Given up on.
    pub failed: usize,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

enum Outcome {
    Sent(Uuid),
    Retry(Uuid, u32, String),
    Failed(Uuid, String, String),
}

/// Sends what the outbox holds (one per instance; several instances share the work).
pub struct MailWorker {
    db: Database,
    transport: Arc<dyn Transport>,
    renderer: Arc<Renderer>,
    settings: WorkerSettings,
    owner: String,
}

impl std::fmt::Debug for MailWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailWorker")
            .field("transport", &self.transport.name())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl MailWorker {
    /// A worker over `db`'s outbox, delivering through `transport`.
    #[must_use]
    pub fn new(db: Database, transport: Arc<dyn Transport>, settings: WorkerSettings) -> Self {
        Self {
            db,
            transport,
            renderer: Arc::new(Renderer::new()),
            settings,
            owner: format!("mail-{}", Uuid::now_v7().simple()),
        }
    }

    /// Claims one batch and delivers it.
    ///
    /// # Errors
    /// [`MailError::Storage`] when the outbox cannot be read or updated (messages
    /// claimed then are taken again once their lease runs out).
    pub async fn run_once(&self) -> Result<Delivery, MailError> {
        let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed = Outbox::claim(
            &self.db,
            &self.owner,
            self.settings.batch,
            now_ms().saturating_add(lease_ms),
        )
        .await?;
        let mut report = Delivery {
            claimed: claimed.len(),
            ..Delivery::default()
        };
        if claimed.is_empty() {
            return Ok(report);
        }
        let outcomes: Vec<Outcome> = futures_util::stream::iter(claimed)
            .map(|c| self.deliver(c))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut sent = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Outcome::Sent(id) => sent.push(id),
                Outcome::Retry(id, attempts, error) => {
                    let wait = self.settings.backoff(attempts);
                    tracing::warn!(message_id = %id, attempt = attempts, retry_in_secs = wait.as_secs(), error = %error, "mail: delivery failed; will retry");
                    let due = now_ms()
                        .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                    Outbox::mark_retry(&self.db, id, due, &error).await?;
                    report.retried += 1;
                }
                Outcome::Failed(id, template, error) => {
                    tracing::error!(message_id = %id, template = %template, error = %error, "mail: giving up on a message");
                    Outbox::mark_failed(&self.db, id, &error).await?;
                    report.failed += 1;
                }
            }
        }
        Outbox::mark_sent(&self.db, &sent).await?;
        report.sent = sent.len();
        Ok(report)
    }

    /// Runs batches until none is due.
    ///
    /// # Errors
    /// As [`MailWorker::run_once`].
    pub async fn drain(&self) -> Result<Delivery, MailError> {
        let mut total = Delivery::default();
        loop {
            let pass = self.run_once().await?;
            total += pass;
            if pass.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs in the background: drains the outbox, then waits until `wake` is notified
    /// (a caller that committed messages may call `notify_one` to have them sent at
    /// once) or `poll` has passed (messages committed by other instances, retries).
    pub fn spawn(self, wake: Arc<Notify>, poll: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.drain().await {
                    tracing::warn!(error = %e, "mail worker: storage failure; retrying");
                }
                let _ = tokio::time::timeout(poll, wake.notified()).await;
            }
        })
    }

    async fn deliver(&self, claimed: Claimed) -> Outcome {
        let Claimed {
            id,
            attempts,
            template,
            message,
        } = claimed;
        let outgoing = match message.and_then(|(to, locale, kind)| {
            self.format(id, &to, locale, &kind)
                .map_err(|e| format!("the message cannot be built: {e}"))
        }) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(id, template, e),
        };
        match self.transport.send(&outgoing).await {
            Ok(()) => {
                tracing::debug!(message_id = %id, template = %template, transport = self.transport.name(), "mail: sent");
                Outcome::Sent(id)
            }
            Err(e) => {
                let error = error_chain(&e);
                if e.permanent || attempts >= self.settings.max_attempts {
                    Outcome::Failed(id, template, error)
                } else {
                    Outcome::Retry(id, attempts, error)
                }
            }
        }
    }

    /// Renders and formats one message.
    fn format(
        &self,
        id: Uuid,
        to: &Address,
        locale: Locale,
        kind: &MailKind,
    ) -> Result<Outgoing, Box<dyn std::error::Error + Send + Sync>> {
        let rendered = self.renderer.render(locale, kind)?;
        let to: Mailbox = to.as_str().parse()?;
        let email = lettre::Message::builder()
            .message_id(Some(format!("<{id}@{}>", self.settings.from.domain())))
            .from(self.settings.from.0.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))?;
        Ok(Outgoing {
            id,
            envelope: email.envelope().clone(),
            formatted: email.formatted(),
            links: kind.links().iter().map(|l| l.expose().to_owned()).collect(),
        })
    }
}

fn error_chain(e: &SendError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = WorkerSettings::new(Sender::parse("PTO Connect <no-reply@localhost>").expect("ok"));
        assert_eq!(s.backoff(1), Duration::from_secs(30));
        assert_eq!(s.backoff(2), Duration::from_secs(60));
        assert_eq!(s.backoff(5), Duration::from_secs(480));
        assert_eq!(s.backoff(8), Duration::from_secs(3600));
        assert_eq!(s.backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn senders() {
        let s = Sender::parse("PTO Connect <no-reply@localhost>").expect("ok");
        assert_eq!(s.domain(), "localhost");
        assert!(Sender::parse("no-reply@example.org").is_ok());
        assert!(Sender::parse("PTO Connect").is_err());
    }
}
