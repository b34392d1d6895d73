//! What a message is: its recipient, locale, template choice with its variables, and
//! the links (with their tokens) it carries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::MailError;

/// A recipient's e-mail address, checked by the mail library's parser (what it accepts
/// it can send to).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl Address {
    /// Parses an address (`local@domain`).
    ///
    /// # Errors
    /// [`MailError::InvalidAddress`] if it is not one.
    pub fn parse(s: &str) -> Result<Self, MailError> {
        let s = s.trim();
        lettre::Address::from_str(s).map_err(|_| MailError::InvalidAddress)?;
        Ok(Self(s.to_owned()))
    }

    /// The address as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Address {
    type Error = MailError;
    fn try_from(s: String) -> Result<Self, MailError> {
        Self::parse(&s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> Self {
        a.0
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The language a message is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English (the fallback).
    #[default]
    En,
    /// Spanish.
    Es,
}

impl Locale {
    /// Every locale with templates.
    pub const ALL: [Self; 2] = [Self::En, Self::Es];

    /// The locale for a language tag (`es`, `es-MX`, `ES_us`…); anything without
    /// templates falls back to English.
    #[must_use]
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "es" => Self::Es,
            _ => Self::En,
        }
    }

    /// The tag stored and used for template paths (`en`, `es`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
}

/// A link in a message: the public base URL, a path, and the token as `token=<value>`.
/// Built by [`PublicUrls`]. Its `Debug` hides the token, so a logged message or kind
/// never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Link(String);

impl Link {
    /// The full URL (the one place that needs it: the rendered message).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once("token=") {
            Some((before, _)) => write!(f, "Link({before}token=***)"),
            None => write!(f, "Link({})", self.0),
        }
    }
}

/// The public base URL links are built from (`PUBLIC_BASE_URL`), and the paths of the
/// pages the links open (fixed: the web front end serves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    base: String,
}

/// The page that accepts an invitation.
pub const INVITATION_PATH: &str = "/invitations/accept";
/// The page that confirms an e-mail address.
pub const VERIFY_EMAIL_PATH: &str = "/verify-email";
/// The page that sets a new password.
pub const PASSWORD_RESET_PATH: &str = "/reset-password";

impl PublicUrls {
    /// Checks and keeps a base URL: `http://` or `https://`, a host, no query or
    /// fragment; a trailing `/` is dropped.
    ///
    /// # Errors
    /// A sentence saying what is wrong (for the configuration report).
    pub fn new(base: &str) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/');
        let Some((scheme, rest)) = base.split_once("://") else {
            return Err(format!(
                "{base:?} is not a URL (expected http(s)://host[:port][/path])"
            ));
        };
        if !matches!(scheme, "http" | "https") {
            return Err(format!("{base:?} must start with http:// or https://"));
        }
        let host = rest.split('/').next().unwrap_or_default();
        // Links are placed in HTML attributes unescaped: only URL characters.
        let url_chars = |c: char| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '.' | '_' | '~' | '/' | ':' | '%' | '[' | ']')
        };
        if host.is_empty() || !rest.chars().all(url_chars) {
            return Err(format!(
                "{base:?} must be http(s)://host[:port][/path] without credentials, query or fragment"
            ));
        }
        Ok(Self {
            base: base.to_owned(),
        })
    }

    /// The base URL (no trailing `/`).
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `<base><path>?token=<token, percent-encoded>`.
    #[must_use]
    pub fn link(&self, path: &str, token: &str) -> Link {
        let mut url = String::with_capacity(self.base.len() + path.len() + token.len() + 8);
        url.push_str(&self.base);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        url.push_str("?token=");
        for b in token.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                url.push(char::from(b));
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
        Link(url)
    }

    /// The link that accepts an invitation ([`INVITATION_PATH`]).
    #[must_use]
    pub fn invitation(&self, token: &str) -> Link {
        self.link(INVITATION_PATH, token)
    }

    /// The link that confirms an e-mail address ([`VERIFY_EMAIL_PATH`]).
    #[must_use]
    pub fn verify_email(&self, token: &str) -> Link {
        self.link(VERIFY_EMAIL_PATH, token)
    }

    /// The link that sets a new password ([`PASSWORD_RESET_PATH`]).
    #[must_use]
    pub fn password_reset(&self, token: &str) -> Link {
        self.link(PASSWORD_RESET_PATH, token)
    }
}

/// Which message to send, with its variables (one template pair per variant and
/// locale, `templates/<locale>/<template>.{txt,html}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "template", content = "vars", rename_all = "snake_case")]
pub enum MailKind {
    /// Someone added the recipient to an org: accept from the link.
    Invitation {
        /// The org's name.
        org_name: String,
        /// Who invited (a display name).
        inviter: String,
        /// [`PublicUrls::invitation`].
        link: Link,
    },
    /// Confirm this address (sign-up, or the new address of an e-mail change).
    VerifyEmail {
        /// [`PublicUrls::verify_email`].
        link: Link,
    },
    /// Set a new password from the link (requested by someone who knows the address).
    PasswordReset {
        /// [`PublicUrls::password_reset`].
        link: Link,
    },
    /// The account's password was changed.
    PasswordChanged,
    /// A sign-in from a device not seen before.
    NewSignIn {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        when: OffsetDateTime,
        /// From which client address.
        address: String,
        /// With which user agent.
        user_agent: String,
    },
    /// Two-factor sign-in was turned off.
    TwoFactorDisabled,
    /// The account's address is being changed (told to the old address).
    EmailChanged {
        /// The new address.
        new_address: String,
    },
    /// A notification, sent at once (the recipient's `instant` e-mail preference).
    Notification {
        /// Its title.
        title: String,
        /// Its text.
        body: String,
    },
    /// The day's notifications of a recipient who chose the daily digest.
    NotificationDigest {
        /// The notifications, oldest first.
        items: Vec<DigestItem>,
    },
}

/// One notification in a daily digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItem {
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
}

impl MailKind {
    /// The template name (also stored in the outbox's `template` column).
    #[must_use]
    pub const fn template(&self) -> &'static str {
        match self {
            Self::Invitation { .. } => "invitation",
            Self::VerifyEmail { .. } => "verify_email",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::NewSignIn { .. } => "new_sign_in",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::EmailChanged { .. } => "email_changed",
            Self::Notification { .. } => "notification",
            Self::NotificationDigest { .. } => "notification_digest",
        }
    }

    /// The links the message carries.
    #[must_use]
    pub fn links(&self) -> Vec<&Link> {
        match self {
            Self::Invitation { link, .. }
            | Self::VerifyEmail { link }
            | Self::PasswordReset { link } => vec![link],
            Self::PasswordChanged
            | Self::NewSignIn { .. }
            | Self::TwoFactorDisabled
            | Self::EmailChanged { .. }
            | Self::Notification { .. }
            | Self::NotificationDigest { .. } => Vec::new(),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id (UUID v7): the outbox key, the `Message-ID` and the dedup key.
    pub id: Uuid,
    /// The recipient.
    pub to: Address,
    /// The language it is written in.
    pub locale: Locale,
    /// What it says.
    pub kind: MailKind,
    /// The org it belongs to, if any (must be the org of a tenant-scoped transaction
    /// it is enqueued in).
    pub org_id: Option<Uuid>,
}

impl Message {
    /// A new message with a fresh id, belonging to no org.
    #[must_use]
    pub fn new(to: Address, locale: Locale, kind: MailKind) -> Self {
        Self {
            id: Uuid::now_v7(),
            to,
            locale,
            kind,
            org_id: None,
        }
    }

    /// The same message, belonging to `org`.
    #[must_use]
    pub fn for_org(mut self, org: Uuid) -> Self {
        self.org_id = Some(org);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_fall_back_to_english() {
        assert_eq!(Locale::from_tag("es"), Locale::Es);
        assert_eq!(Locale::from_tag("es-MX"), Locale::Es);
        assert_eq!(Locale::from_tag("ES_us"), Locale::Es);
        assert_eq!(Locale::from_tag("en-GB"), Locale::En);
        assert_eq!(Locale::from_tag("fr"), Locale::En);
        assert_eq!(Locale::from_tag(""), Locale::En);
    }

    #[test]
    fn links_carry_the_token_and_hide_it_when_debugged() {
        let urls = PublicUrls::new("https://pto.example.org/").expect("valid");
        let link = urls.password_reset("a b/c+d");
        assert_eq!(
            link.expose(),
            "https://pto.example.org/reset-password?token=a%20b%2Fc%2Bd"
        );
        let debug = format!("{link:?}");
        assert!(!debug.contains("a%20b"), "{debug}");
        assert!(debug.contains("token=***"), "{debug}");
        let kind = MailKind::PasswordReset { link };
        assert!(!format!("{kind:?}").contains("c%2Bd"));
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for bad in [
            "pto.example.org",
            "ftp://x",
            "https://",
            "https://x/?a=1",
            "https://u:p@x",
            "https://x/\"onclick=",
            "https://x/<b>",
        ] {
            assert!(PublicUrls::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrls::new("http://localhost:8080")
                .expect("valid")
                .base(),
            "http://localhost:8080"
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(Address::parse("parent@example.org").is_ok());
        assert!(Address::parse("not an address").is_err());
        assert!(Address::parse("a@").is_err());
    }

    #[test]
    fn kinds_round_trip_through_json() {
        let urls = PublicUrls::new("http://localhost:8080").expect("valid");
        let kind = MailKind::Invitation {
            org_name: "Lincoln PTO".into(),
            inviter: "Ana".into(),
            link: urls.invitation("tok"),
        };
        let json = serde_json::to_string(&kind).expect("serialize");
        assert!(json.contains("\"template\":\"invitation\""), "{json}");
        let back: MailKind = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, kind);
    }
}
