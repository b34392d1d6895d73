//! What the stores tell people by e-mail, queued in the transaction of the change that
//! causes it (so a rolled-back change tells nothing and a committed one always does).
//!
//! The stores say *what* to tell (a [`Notice`]); the composition root installs the
//! [`Notifier`] that turns it into a message in the mail outbox (`crates/mail`), with
//! the links built from the public base URL.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use persistence::WriteTx;
use tenancy::ports::StorageFailure;
use tenancy::{Email, OneTimeToken};

/// A message to queue for one recipient.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An org invites the recipient; the link accepts it.
    Invitation {
        /// The inviting org.
        org_id: uuid::Uuid,
        /// Its name.
        org_name: String,
        /// Who invited (a display name).
        inviter: String,
        /// The link's token.
        token: OneTimeToken,
    },
    /// Prove this address.
    VerifyEmail {
        /// The link's token.
        token: OneTimeToken,
    },
    /// Set a new password.
    PasswordReset {
        /// The link's token.
        token: OneTimeToken,
    },
    /// The account's password was changed.
    PasswordChanged,
}

/// Queues notices in a write transaction (implemented over the mail outbox).
pub trait Notifier: Send + Sync + 'static {
    /// Queues each notice for its recipient inside `tx` (a batch: an import step's
    /// invitations go in a few statements).
    fn queue<'a>(
        &'a self,
        tx: &'a WriteTx,
        notices: Vec<(Email, Notice)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), StorageFailure>> + Send + 'a>>;
}

/// The stores' handle on the installed [`Notifier`] (none: nothing is queued — for
/// store tests that do not look at messages).
#[derive(Clone, Default)]
pub struct Notices(Option<Arc<dyn Notifier>>);

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Notices(on)"
        } else {
            "Notices(off)"
        })
    }
}

impl Notices {
    /// Notices through `notifier`.
    #[must_use]
    pub fn new(notifier: Arc<dyn Notifier>) -> Self {
        Self(Some(notifier))
    }

    /// Queues nothing.
    #[must_use]
    pub fn none() -> Self {
        Self(None)
    }

    async fn queue(&self, tx: &WriteTx, to: &Email, notice: Notice) -> Result<(), StorageFailure> {
        self.queue_all(tx, vec![(to.clone(), notice)]).await
    }

    pub(crate) async fn queue_all(
        &self,
        tx: &WriteTx,
        notices: Vec<(Email, Notice)>,
    ) -> Result<(), StorageFailure> {
        match &self.0 {
            Some(n) if !notices.is_empty() => n.queue(tx, notices).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn verify_email(
        &self,
        tx: &WriteTx,
        to: &Email,
        token: &OneTimeToken,
    ) -> Result<(), StorageFailure> {
        let token = token.clone();
        self.queue(tx, to, Notice::VerifyEmail { token }).await
    }

    pub(crate) async fn password_reset(
        &self,
        tx: &WriteTx,
        to: &Email,
        token: &OneTimeToken,
    ) -> Result<(), StorageFailure> {
        let token = token.clone();
        self.queue(tx, to, Notice::PasswordReset { token }).await
    }

    pub(crate) async fn password_changed(
        &self,
        tx: &WriteTx,
        to: &Email,
    ) -> Result<(), StorageFailure> {
        self.queue(tx, to, Notice::PasswordChanged).await
    }
}
