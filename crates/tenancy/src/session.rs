use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::UserId;

/// A signed-in session. The token itself is never stored: only its revocation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session id (carried in the token).
    pub id: Uuid,
    /// Its user.
    pub user_id: UserId,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its token expires.
    pub expires_at: OffsetDateTime,
    /// When it was revoked (sign-out, password change, admin action).
    pub revoked_at: Option<OffsetDateTime>,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
}

impl Session {
    /// Whether it can still authenticate requests at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}
