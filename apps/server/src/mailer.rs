//! The stores' [`tenancy_store::Notifier`] over the mail outbox: a notice becomes a
//! message in `mail_outbox`, written in the store's transaction, its link built from
//! `PUBLIC_BASE_URL`. The after-commit dispatcher wakes the mail worker.

use std::future::Future;
use std::pin::Pin;

use persistence::WriteTx;
use tenancy::ports::StorageFailure;
use tenancy_store::{Notice, Notifier, Recipient};

/// Queues notices as e-mail.
#[derive(Debug, Clone)]
pub struct MailNotifier {
    urls: mail::PublicUrls,
}

impl MailNotifier {
    /// Messages whose links start at `urls`.
    #[must_use]
    pub fn new(urls: mail::PublicUrls) -> Self {
        Self { urls }
    }

    /// The message of `notice` for `to`, in the recipient's language (English when it
    /// has no templates).
    ///
    /// # Errors
    /// [`mail::MailError::InvalidAddress`] for an address the mail adapter refuses.
    pub fn message(
        &self,
        to: &Recipient,
        notice: Notice,
    ) -> Result<mail::Message, mail::MailError> {
        let locale = to.locale.as_ref().map_or_else(mail::Locale::default, |l| {
            mail::Locale::from_tag(l.as_str())
        });
        let to = mail::Address::parse(to.email.as_str())?;
        Ok(match notice {
            Notice::Invitation {
                org_id,
                org_name,
                inviter,
                token,
                inviter_locale: _,
            } => mail::Message::new(
                to,
                locale,
                mail::MailKind::Invitation {
                    org_name,
                    inviter,
                    link: self.urls.invitation(token.expose()),
                },
            )
            .for_org(org_id),
            Notice::VerifyEmail { token } => mail::Message::new(
                to,
                locale,
                mail::MailKind::VerifyEmail {
                    link: self.urls.verify_email(token.expose()),
                },
            ),
            Notice::PasswordReset { token } => mail::Message::new(
                to,
                locale,
                mail::MailKind::PasswordReset {
                    link: self.urls.password_reset(token.expose()),
                },
            ),
            Notice::PasswordChanged => {
                mail::Message::new(to, locale, mail::MailKind::PasswordChanged)
            }
            Notice::NewSignIn {
                when,
                address,
                user_agent,
            } => mail::Message::new(
                to,
                locale,
                mail::MailKind::NewSignIn {
                    when,
                    address,
                    user_agent,
                },
            ),
            Notice::TwoFactorDisabled => {
                mail::Message::new(to, locale, mail::MailKind::TwoFactorDisabled)
            }
            Notice::EmailChanged { new_address } => mail::Message::new(
                to,
                locale,
                mail::MailKind::EmailChanged {
                    new_address: new_address.to_string(),
                },
            ),
        })
    }
}

impl Notifier for MailNotifier {
    fn queue<'a>(
        &'a self,
        tx: &'a WriteTx,
        notices: Vec<(Recipient, Notice)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), StorageFailure>> + Send + 'a>> {
        Box::pin(async move {
            let messages = notices
                .into_iter()
                .map(|(to, notice)| self.message(&to, notice))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageFailure(Box::new(e)))?;
            mail::Outbox::enqueue_all(tx, &messages)
                .await
                .map_err(|e| StorageFailure(Box::new(e)))
        })
    }
}
