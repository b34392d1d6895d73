//! Invitations: adding someone to an org never touches an account.
//!
//! An org's admin types an e-mail address and a profile; that becomes an [`Invitation`]
//! of the org — the address, the role and the profile *as typed*, nothing read from any
//! account — until the owner of the address claims it (which needs a proven address) or
//! declines it, an admin revokes it, or it expires. Whether an account with the address
//! exists plays no part: adding someone answers the same either way, and no account is
//! created for an address its owner did not claim.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, OffsetDateTime};

use crate::{Child, Email, InvitationId, OrgId, PersonName, RoleAssignment, UserId};

/// How long an invitation stays open unless configured otherwise (14 days).
pub const DEFAULT_INVITATION_TTL: Duration = Duration::days(14);

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Open: it can be accepted, declined or revoked.
    Pending,
    /// The owner of the address accepted it (they are a member now).
    Accepted,
    /// The owner of the address declined it.
    Declined,
    /// Nobody answered before it expired.
    Expired,
    /// An admin of the org withdrew it.
    Revoked,
}

impl InvitationStatus {
    /// The stored and shown name (`pending`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Accepted,
            Self::Declined,
            Self::Expired,
            Self::Revoked,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The profile an org typed for the person it invites: kept with the invitation, per
/// org, never copied from or to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitedProfile {
    /// Given name, as typed.
    pub first_name: PersonName,
    /// Family name, as typed.
    pub last_name: PersonName,
    /// Phone, as typed (trimmed; blank is none).
    pub phone: Option<String>,
    /// Committee, as typed (trimmed; blank is none).
    pub committee: Option<String>,
    /// Children, as typed.
    pub children: Vec<Child>,
}

impl InvitedProfile {
    /// A profile from typed values: optional text is trimmed and blank text is absent.
    #[must_use]
    pub fn new(
        first_name: PersonName,
        last_name: PersonName,
        phone: Option<&str>,
        committee: Option<&str>,
        children: Vec<Child>,
    ) -> Self {
        let text = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            first_name,
            last_name,
            phone: text(phone),
            committee: text(committee),
            children,
        }
    }
}

/// Why an invitation cannot change: it is no longer pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the invitation is {status} already")]
pub struct InvitationEnded {
    /// Where it stands (as of the attempted change).
    pub status: InvitationStatus,
}

/// An org's invitation of an e-mail address into the org, with a role and a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Identifier (UUID v7, unique within the org).
    pub id: InvitationId,
    /// The inviting org.
    pub org_id: OrgId,
    /// The invited address (normalized).
    pub email: Email,
    /// The role the person gets on accepting.
    pub role: RoleAssignment,
    /// The profile as the org typed it.
    pub profile: InvitedProfile,
    /// The status as stored: a pending invitation past its expiry is expired even if
    /// not yet stored so; read it with [`Invitation::status_at`].
    pub status: InvitationStatus,
    /// Who invited (`None`: the system, an API key, or invitations moved from before).
    pub invited_by: Option<UserId>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires if still pending.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Optimistic-concurrency version.
    pub version: i64,
}

impl Invitation {
    /// A new pending invitation, open for `valid_for` from `now`.
    #[must_use]
    pub fn new(
        org_id: OrgId,
        email: Email,
        role: RoleAssignment,
        profile: InvitedProfile,
        invited_by: Option<UserId>,
        now: OffsetDateTime,
        valid_for: Duration,
    ) -> Self {
        Self {
            id: InvitationId::new(),
            org_id,
            email,
            role,
            profile,
            status: InvitationStatus::Pending,
            invited_by,
            created_at: now,
            expires_at: now.saturating_add(valid_for),
            version: 1,
        }
    }

    /// Where it stands at `now`: pending until `expires_at` (exclusive), then expired.
    #[must_use]
    pub fn status_at(&self, now: OffsetDateTime) -> InvitationStatus {
        match self.status {
            InvitationStatus::Pending if now >= self.expires_at => InvitationStatus::Expired,
            s => s,
        }
    }

    /// Whether it is open at `now` (blocks another invitation of the same address).
    #[must_use]
    pub fn is_pending_at(&self, now: OffsetDateTime) -> bool {
        self.status_at(now) == InvitationStatus::Pending
    }

    fn end(self, now: OffsetDateTime, to: InvitationStatus) -> Result<Self, InvitationEnded> {
        match self.status_at(now) {
            InvitationStatus::Pending => Ok(Self {
                status: to,
                version: self.version + 1,
                ..self
            }),
            status => Err(InvitationEnded { status }),
        }
    }

    /// An admin withdraws it (only while pending).
    ///
    /// # Errors
    /// [`InvitationEnded`] if it is not pending at `now`.
    pub fn revoke(self, now: OffsetDateTime) -> Result<Self, InvitationEnded> {
        self.end(now, InvitationStatus::Revoked)
    }

    /// The owner of the address accepts it (only while pending; the caller must have
    /// proven that the claimant owns the address).
    ///
    /// # Errors
    /// [`InvitationEnded`] if it is not pending at `now`.
    pub fn accept(self, now: OffsetDateTime) -> Result<Self, InvitationEnded> {
        self.end(now, InvitationStatus::Accepted)
    }

    /// The owner of the address declines it (only while pending).
    ///
    /// # Errors
    /// [`InvitationEnded`] if it is not pending at `now`.
    pub fn decline(self, now: OffsetDateTime) -> Result<Self, InvitationEnded> {
        self.end(now, InvitationStatus::Declined)
    }

    /// Stores the expiry of a pending invitation past its `expires_at` (so the address
    /// can be invited again).
    ///
    /// # Errors
    /// [`InvitationEnded`] with its status if it is not pending-but-expired at `now`.
    pub fn expire(self, now: OffsetDateTime) -> Result<Self, InvitationEnded> {
        match (self.status, self.status_at(now)) {
            (InvitationStatus::Pending, InvitationStatus::Expired) => Ok(Self {
                status: InvitationStatus::Expired,
                version: self.version + 1,
                ..self
            }),
            (_, status) => Err(InvitationEnded { status }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use permissions::BuiltinRole;

    fn invitation(now: OffsetDateTime) -> Invitation {
        Invitation::new(
            OrgId::new(),
            Email::parse("Ana@Example.org").unwrap(),
            RoleAssignment::builtin(BuiltinRole::Volunteer),
            InvitedProfile::new(
                PersonName::parse("Ana").unwrap(),
                PersonName::parse("Lopez").unwrap(),
                Some("  "),
                Some(" Garden "),
                vec![],
            ),
            None,
            now,
            DEFAULT_INVITATION_TTL,
        )
    }

    #[test]
    fn a_new_invitation_is_pending_until_it_expires() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let inv = invitation(now);
        assert_eq!(inv.id.as_uuid().get_version_num(), 7);
        assert_eq!(inv.email.as_str(), "ana@example.org");
        assert_eq!(inv.profile.phone, None, "blank is absent");
        assert_eq!(inv.profile.committee.as_deref(), Some("Garden"));
        assert_eq!(inv.expires_at, now + Duration::days(14));
        assert_eq!(
            inv.status_at(inv.expires_at - Duration::SECOND),
            InvitationStatus::Pending
        );
        assert_eq!(inv.status_at(inv.expires_at), InvitationStatus::Expired);
        assert!(!inv.is_pending_at(inv.expires_at));
    }

    #[test]
    fn only_a_pending_invitation_changes() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let revoked = invitation(now).revoke(now).unwrap();
        assert_eq!(
            (revoked.status, revoked.version),
            (InvitationStatus::Revoked, 2)
        );
        assert_eq!(
            revoked.clone().revoke(now).unwrap_err().status,
            InvitationStatus::Revoked
        );
        assert!(revoked.clone().accept(now).is_err());
        assert!(revoked.decline(now).is_err());
        let late = now + Duration::days(15);
        assert_eq!(
            invitation(now).revoke(late).unwrap_err().status,
            InvitationStatus::Expired
        );
        assert_eq!(
            invitation(now).accept(now).unwrap().status,
            InvitationStatus::Accepted
        );
        assert_eq!(
            invitation(now).decline(now).unwrap().status,
            InvitationStatus::Declined
        );
        assert_eq!(
            invitation(now).expire(late).unwrap().status,
            InvitationStatus::Expired
        );
        assert!(invitation(now).expire(now).is_err(), "not expired yet");
    }

    #[test]
    fn statuses_round_trip_by_name() {
        for s in [
            InvitationStatus::Pending,
            InvitationStatus::Accepted,
            InvitationStatus::Declined,
            InvitationStatus::Expired,
            InvitationStatus::Revoked,
        ] {
            assert_eq!(InvitationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(InvitationStatus::parse("invited"), None);
    }
}
