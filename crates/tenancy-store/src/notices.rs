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
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use tenancy::ports::StorageFailure;
use tenancy::{Email, Language, OneTimeToken};

use crate::convert::failure;
use crate::entity::users;

/// Who a notice goes to: the address, and the language to write in (the account's own;
/// for an invitation to someone without an account, the inviter's; `None`: English).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address.
    pub email: Email,
    /// The language tag, if known.
    pub locale: Option<Language>,
}

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
        /// The inviter's language, for a recipient without an account.
        inviter_locale: Option<Language>,
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
    /// Someone signed in from a device the account had not used.
    NewSignIn {
        /// When.
        when: time::OffsetDateTime,
        /// From which client address.
        address: String,
        /// With which user agent.
        user_agent: String,
    },
    /// Two-factor sign-in was turned off.
    TwoFactorDisabled,
    /// The account's address is being changed to `new_address` (told to the old one).
    EmailChanged {
        /// The address asked for.
        new_address: Email,
    },
}

impl Notice {
    fn fallback_locale(&self) -> Option<&Language> {
        match self {
            Self::Invitation { inviter_locale, .. } => inviter_locale.as_ref(),
            _ => None,
        }
    }
}

/// Queues notices in a write transaction (implemented over the mail outbox).
pub trait Notifier: Send + Sync + 'static {
    /// Queues each notice for its recipient inside `tx` (a batch: an import step's
    /// invitations go in a few statements).
    fn queue<'a>(
        &'a self,
        tx: &'a WriteTx,
        notices: Vec<(Recipient, Notice)>,
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
        let Some(n) = &self.0 else {
            return Ok(());
        };
        if notices.is_empty() {
            return Ok(());
        }
        let locales = account_locales(tx, &notices).await?;
        let notices = notices
            .into_iter()
            .map(|(email, notice)| {
                let locale = locales
                    .get(email.as_str())
                    .cloned()
                    .or_else(|| notice.fallback_locale().cloned());
                (Recipient { email, locale }, notice)
            })
            .collect();
        n.queue(tx, notices).await
    }

    pub(crate) async fn new_sign_in(
        &self,
        tx: &WriteTx,
        to: &Email,
        when: time::OffsetDateTime,
        address: String,
        user_agent: String,
    ) -> Result<(), StorageFailure> {
        let notice = Notice::NewSignIn {
            when,
            address,
            user_agent,
        };
        self.queue(tx, to, notice).await
    }

    pub(crate) async fn two_factor_disabled(
        &self,
        tx: &WriteTx,
        to: &Email,
    ) -> Result<(), StorageFailure> {
        self.queue(tx, to, Notice::TwoFactorDisabled).await
    }

    pub(crate) async fn email_changed(
        &self,
        tx: &WriteTx,
        to: &Email,
        new_address: &Email,
    ) -> Result<(), StorageFailure> {
        let new_address = new_address.clone();
        self.queue(tx, to, Notice::EmailChanged { new_address })
            .await
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

/// The languages of the accounts among the notices' addresses (one query per 500).
async fn account_locales(
    tx: &WriteTx,
    notices: &[(Email, Notice)],
) -> Result<std::collections::HashMap<String, Language>, StorageFailure> {
    let mut emails: Vec<&str> = notices.iter().map(|(e, _)| e.as_str()).collect();
    emails.sort_unstable();
    emails.dedup();
    let mut out = std::collections::HashMap::new();
    for chunk in emails.chunks(500) {
        let rows: Vec<(String, Option<String>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Email)
            .column(users::Column::Locale)
            .filter(users::Column::Email.is_in(chunk.iter().copied()))
            .filter(users::Column::DeletedAt.is_null())
            .filter(users::Column::Locale.is_not_null())
            .into_tuple()
            .all(tx)
            .await
            .map_err(failure)?;
        for (email, locale) in rows {
            // A stored tag that no longer parses is ignored (English).
            if let Some(lang) = locale.and_then(|l| Language::parse(&l).ok()) {
                out.insert(email, lang);
            }
        }
    }
    Ok(out)
}
