use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Email, PersonName, UserId};

/// Whether a user account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// Disabled by an administrator.
    Disabled,
}

/// A user account. A user may belong to several organizations, one role in each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Unique, case-insensitive sign-in address.
    pub email: Email,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// Account status.
    pub status: UserStatus,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Phone number, as entered (profile data).
    pub phone: Option<String>,
    /// When they last signed in, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_active_at: Option<OffsetDateTime>,
}
