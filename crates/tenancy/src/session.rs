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
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its token expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked (sign-out, password change, admin action).
    #[serde(with = "time::serde::rfc3339::option")]
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

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefused {
    /// No such refresh token.
    #[error("the refresh token is invalid")]
    Unknown,
    /// It expired, or its session ended (signed out, revoked, password changed).
    #[error("the refresh token has expired or its session has ended")]
    Expired,
    /// It had been rotated already: someone holds a copy. The whole session (every
    /// token of the family) was revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    Reused {
        /// The revoked session.
        session: Uuid,
    },
}

/// Why a second-factor code (at sign-in, or to confirm or disable TOTP) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecondFactorRefused {
    /// No such challenge (or not the caller's).
    #[error("the sign-in challenge is invalid")]
    UnknownChallenge,
    /// The challenge expired, was used, or had too many wrong codes.
    #[error("the sign-in challenge has expired; sign in again")]
    ChallengeExpired,
    /// Two-factor sign-in is not on for this account (or not enrolled).
    #[error("two-factor sign-in is not enabled")]
    NotEnrolled,
    /// The code is wrong.
    #[error("the code is not correct")]
    WrongCode,
    /// The code was right but its time step was used already.
    #[error("this code was already used; wait for the next one")]
    CodeReused,
}

/// How many wrong codes a sign-in challenge survives.
pub const CHALLENGE_MAX_FAILURES: i32 = 5;

/// Whether a TOTP code of time step `step` may be accepted after `last_used`: each
/// step (and any earlier one) is accepted at most once, so a code seen by someone
/// else cannot be replayed within its window.
#[must_use]
pub fn totp_step_is_fresh(last_used: Option<i64>, step: u64) -> bool {
    i64::try_from(step).is_ok_and(|step| last_used.is_none_or(|last| step > last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_step_is_accepted_once_and_never_an_older_one() {
        assert!(totp_step_is_fresh(None, 10));
        assert!(totp_step_is_fresh(Some(9), 10));
        assert!(!totp_step_is_fresh(Some(10), 10), "the same window again");
        assert!(!totp_step_is_fresh(Some(11), 10), "an older window");
        assert!(!totp_step_is_fresh(None, u64::MAX));
    }
}
