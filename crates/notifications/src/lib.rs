//! Notifications (issue #19): what a notification is, who it goes to, and how each user
//! wants each kind delivered on each channel. Pure rules and ports; the store is
//! `notifications-store`, the routes `apps/server/src/routes/notifications.rs`.
//!
//! - [`Kind`]: `system`, `security`, `activity`, `announcement`.
//! - [`Channel`]: `in_app` (the inbox) and `email`.
//! - [`Delivery`]: `instant`, `daily_digest` or `off`, per kind and channel
//!   ([`Preferences`]). **Security notices can't be turned off**: [`Preferences::set`]
//!   refuses `off` for [`Kind::Security`] on any channel ([`PreferenceError`]) — the
//!   one place this rule lives.
//! - [`Preferences::plan`]: what one notification of a kind does for one user — an
//!   inbox item or not, an e-mail now, in tomorrow's digest, or none.

use serde::{Deserialize, Serialize};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// From the platform (maintenance, changes of terms).
    System,
    /// About the account's safety (sign-ins, password, two-factor): never muted.
    Security,
    /// Something happened that concerns the user (a role change, an invitation).
    Activity,
    /// Sent by an org's officers to its members.
    Announcement,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::System,
        Self::Security,
        Self::Activity,
        Self::Announcement,
    ];

    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Security => "security",
            Self::Activity => "activity",
            Self::Announcement => "announcement",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a notification is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The in-app inbox (`GET /me/notifications`).
    InApp,
    /// E-mail.
    Email,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Self; 2] = [Self::InApp, Self::Email];

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InApp => "in_app",
            Self::Email => "email",
        }
    }
}

/// How (and whether) a channel delivers a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// At once.
    Instant,
    /// Collected into one message a day (e-mail). In the inbox an item is there at once
    /// either way: `daily_digest` there means the same as `instant`.
    DailyDigest,
    /// Not delivered on this channel.
    Off,
}

impl Delivery {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Instant => "instant",
            Self::DailyDigest => "daily_digest",
            Self::Off => "off",
        }
    }
}

/// A preference the rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreferenceError {
    /// Security notices can't be turned off, on any channel.
    #[error("security notices can't be turned off ({channel})", channel = .0.as_str())]
    SecurityLocked(Channel),
}

impl PreferenceError {
    /// A stable code for the API's field errors.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::SecurityLocked(_) => "security_notices_required",
        }
    }
}

/// One user's delivery choice per kind and channel (`instant` in the inbox for every
/// kind by default; e-mail: `instant` for security and system notices and
/// announcements, `daily_digest` for activity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    choices: [[Delivery; 2]; 4],
}

impl Default for Preferences {
    fn default() -> Self {
        let mut p = Self {
            choices: [[Delivery::Instant; 2]; 4],
        };
        p.choices[Self::slot(Kind::Activity)][1] = Delivery::DailyDigest;
        p
    }
}

/// What one notification does for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// An item in the inbox.
    pub in_app: bool,
    /// The e-mail: now, in the daily digest, or none.
    pub email: Delivery,
}

impl Plan {
    /// Whether the notification needs a stored row (an inbox item or a digest entry).
    #[must_use]
    pub const fn stored(self) -> bool {
        self.in_app || matches!(self.email, Delivery::DailyDigest)
    }
}

impl Preferences {
    const fn slot(kind: Kind) -> usize {
        match kind {
            Kind::System => 0,
            Kind::Security => 1,
            Kind::Activity => 2,
            Kind::Announcement => 3,
        }
    }

    const fn channel_slot(channel: Channel) -> usize {
        match channel {
            Channel::InApp => 0,
            Channel::Email => 1,
        }
    }

    /// The choice for `kind` on `channel`.
    #[must_use]
    pub const fn get(&self, kind: Kind, channel: Channel) -> Delivery {
        self.choices[Self::slot(kind)][Self::channel_slot(channel)]
    }

    /// Sets the choice for `kind` on `channel`.
    ///
    /// # Errors
    /// [`PreferenceError::SecurityLocked`]: security notices can't be turned off.
    pub fn set(
        &mut self,
        kind: Kind,
        channel: Channel,
        delivery: Delivery,
    ) -> Result<(), PreferenceError> {
        if kind == Kind::Security && delivery == Delivery::Off {
            return Err(PreferenceError::SecurityLocked(channel));
        }
        self.choices[Self::slot(kind)][Self::channel_slot(channel)] = delivery;
        Ok(())
    }

    /// What a notification of `kind` does for this user.
    #[must_use]
    pub const fn plan(&self, kind: Kind) -> Plan {
        Plan {
            in_app: !matches!(self.get(kind, Channel::InApp), Delivery::Off),
            email: self.get(kind, Channel::Email),
        }
    }

    /// Every (kind, channel, choice), in kind then channel order.
    #[must_use]
    pub fn entries(&self) -> Vec<(Kind, Channel, Delivery)> {
        Kind::ALL
            .into_iter()
            .flat_map(|k| {
                Channel::ALL
                    .into_iter()
                    .map(move |c| (k, c, self.get(k, c)))
            })
            .collect()
    }
}

/// Who an org's notification goes to (active members of the org only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// These members (ids that are not active members are skipped).
    Members(Vec<uuid::Uuid>),
    /// Members holding one of these roles: built-in names, or custom role ids.
    Roles {
        /// Built-in role names (`volunteer`, `committee_lead`, `board_member`, `admin`).
        builtin: Vec<String>,
        /// Custom roles of the org.
        custom: Vec<uuid::Uuid>,
    },
    /// Members of one of these committees (compared ignoring case).
    Committees(Vec<String>),
    /// Every active member.
    All,
}

impl Audience {
    /// The wire name of the audience's shape (for the audit event).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Members(_) => "members",
            Self::Roles { .. } => "roles",
            Self::Committees(_) => "committees",
            Self::All => "all",
        }
    }
}

/// One notification in a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its id (UUID v7: newest first by id).
    pub id: uuid::Uuid,
    /// The org it came from (none: the platform).
    pub org_id: Option<uuid::Uuid>,
    /// What it is about.
    pub kind: Kind,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Who sent it (none: the system).
    pub sender: Option<uuid::Uuid>,
    /// When it was created.
    pub created_at: time::OffsetDateTime,
    /// When its recipient read it.
    pub read_at: Option<time::OffsetDateTime>,
}

/// The failure of a store, opaque to the domain (its source says what failed).
#[derive(Debug, thiserror::Error)]
#[error("notification storage failure")]
pub struct StorageFailure(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The unread count of a user's inbox (what the stream pushes).
pub trait UnreadCount: Send + Sync {
    /// How many of `user`'s inbox items are unread.
    fn unread_count(
        &self,
        user: uuid::Uuid,
    ) -> impl std::future::Future<Output = Result<u64, StorageFailure>> + Send;
}

/// Told after a committed change of users' inboxes — an item delivered, read, or
/// deleted — so that their unread counts can be pushed (the stream's `unread` frames).
/// The store calls it after its transaction committed, never inside it.
pub trait InboxObserver: Send + Sync {
    /// The inboxes of `users` changed.
    fn inbox_changed<'a>(
        &'a self,
        users: &'a [uuid::Uuid],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY: usize = 5000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_notices_cannot_be_turned_off() {
        let mut p = Preferences::default();
        for channel in Channel::ALL {
            assert_eq!(
                p.set(Kind::Security, channel, Delivery::Off),
                Err(PreferenceError::SecurityLocked(channel))
            );
            assert_eq!(p.get(Kind::Security, channel), Delivery::Instant);
        }
        assert!(
            p.set(Kind::Security, Channel::Email, Delivery::DailyDigest)
                .is_ok()
        );
        assert!(
            p.set(Kind::Announcement, Channel::Email, Delivery::Off)
                .is_ok()
        );
    }

    #[test]
    fn plans_follow_the_choices() {
        let mut p = Preferences::default();
        assert_eq!(
            p.plan(Kind::Activity),
            Plan {
                in_app: true,
                email: Delivery::DailyDigest
            }
        );
        p.set(Kind::Announcement, Channel::InApp, Delivery::Off)
            .unwrap_or(());
        p.set(Kind::Announcement, Channel::Email, Delivery::Off)
            .unwrap_or(());
        let plan = p.plan(Kind::Announcement);
        assert!(!plan.in_app && !plan.stored());
        assert_eq!(p.entries().len(), 8);
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }
}
