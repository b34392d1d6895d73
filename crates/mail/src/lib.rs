//! E-mail delivery: an **outbox** written in the caller's write transaction, a
//! **worker** that renders and sends what it holds, and two **transports**.
//!
//! # Sending a message (the API the account flows call)
//!
//! Inside the write transaction of the change that causes the message:
//!
//! ```ignore
//! let urls: &mail::PublicUrls = …;            // from PUBLIC_BASE_URL (AppState)
//! let msg = mail::Message::new(
//!     mail::Address::parse(&invitation.email)?,
//!     mail::Locale::from_tag(user_locale),     // "es-MX" → Spanish; else English
//!     mail::MailKind::Invitation {
//!         org_name: org.name.clone(),
//!         inviter: actor_display_name,
//!         link: urls.invitation(&raw_token),   // <base>/invitations/accept?token=<raw>
//!     },
//! )
//! .for_org(org_id);                            // required in begin_for_org(org_id)
//! mail::Outbox::enqueue(&tx, &msg).await?;     // or enqueue_all(&tx, &msgs) for a batch
//! tx.commit().await?;                          // nothing is sent if this never happens
//! ```
//!
//! - The message is a row of `mail_outbox` written by that transaction: a rolled-back
//!   change sends nothing, a committed one always has its message.
//! - Tokens: build links with [`PublicUrls`] (`invitation`, `verify_email`,
//!   `password_reset`, or `link(path, token)`); the token travels as `token=<value>`.
//!   Store only the token's hash in your own table; the outbox keeps the link until the
//!   message is sent or given up on, then clears the message's variables.
//!   [`Link`]'s `Debug` hides the token and the worker never logs links (except the
//!   development [`FileTransport`], which exists to show them).
//! - In a tenant-scoped transaction (`Database::begin_for_org(org)`) the message must
//!   carry `for_org(org)`: row-level security refuses any other on PostgreSQL. Account
//!   messages without an org (reset, verification, security notices) are enqueued in a
//!   system-scope transaction (`Database::begin_write`).
//!
//! # Delivery
//!
//! [`MailWorker`] (one per instance, spawned by the server) claims due messages
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite), renders them
//! ([`Renderer`]: minijinja templates in `templates/<locale>/`, text and HTML), sends
//! them through a [`Transport`] and marks them sent. A failure is retried with
//! exponential back-off ([`WorkerSettings::backoff`]) up to `max_attempts`, or given up
//! at once when the server refuses for good (5xx); a given-up message is `failed` and
//! logged. Delivery is **at least once**, deduplicated by the message id: a message
//! marked sent is never sent again, but a crash between the send and the mark sends it
//! again once its lease runs out, with the same `Message-ID` (`<id@from-domain>`).
//!
//! Transports: [`SmtpTransport`] (lettre over rustls; `SMTP_URL`, see [`SmtpConfig`])
//! and [`FileTransport`] (`.eml` files, the embedded default).

mod message;
mod outbox;
mod render;
mod transport;
mod worker;

pub use message::{
    Address, DigestItem, INVITATION_PATH, Link, Locale, MailKind, Message, PASSWORD_RESET_PATH,
    PublicUrls, VERIFY_EMAIL_PATH,
};
pub use outbox::{MessageState, Outbox, Status};
pub use render::{RenderError, Rendered, Renderer};
pub use transport::{
    FileTransport, Outgoing, SendError, SmtpConfig, SmtpSecurity, SmtpTransport, Transport,
};
pub use worker::{Delivery, MailWorker, Sender, WorkerSettings};

/// A failure of the mail adapter.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The text is not an e-mail address.
    #[error("not an e-mail address")]
    InvalidAddress,
    /// The outbox could not be read or written.
    #[error("mail outbox storage failure")]
    Storage(#[source] sea_orm::DbErr),
    /// A message could not be encoded for the outbox.
    #[error("a message could not be encoded")]
    Encode(#[source] serde_json::Error),
}
