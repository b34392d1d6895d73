//! Erasure of a person's data (issue #17): who may erase whom, what a request says,
//! and the receipt it answers with.
//!
//! Two requests: a user erases their own account ([`ErasureScope::Account`]: every
//! org's record of them, their sign-in data, the account itself), or an org's admin
//! erases a member on their request ([`ErasureScope::Org`]: what that org holds; the
//! account goes too when nothing else holds it — no other membership, no district
//! role, not a platform admin). The audit trail keeps its integrity: the personal
//! fields of its events are sealed per person and their keys destroyed
//! (crypto-shredding), so the chains and signed digests still verify.

use time::OffsetDateTime;

use crate::ports::StorageFailure;
use crate::{OrgId, UserId};

/// Longest reason an admin may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Whose data, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureScope {
    /// The whole account: every org's record, sign-in data, the account itself.
    Account,
    /// What one org holds (the account too when nothing else holds it).
    Org(OrgId),
    /// What one org still holds about a former member once its retention period for
    /// removed members has passed (a scheduled erasure; never the account).
    Retention(OrgId),
}

/// How long an org keeps the record of a member who left or was removed, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionDays(u16);

/// A retention period out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("keep removed members' records between 30 and 3650 days")]
pub struct RetentionDaysError;

impl RetentionDays {
    /// One school year: the default.
    pub const DEFAULT: Self = Self(365);
    /// The shortest period (a removal can be undone until then).
    pub const MIN: u16 = 30;
    /// The longest period (ten years).
    pub const MAX: u16 = 3650;

    /// A period of `days`.
    ///
    /// # Errors
    /// [`RetentionDaysError`] outside 30..=3650.
    pub fn new(days: i64) -> Result<Self, RetentionDaysError> {
        u16::try_from(days)
            .ok()
            .filter(|d| (Self::MIN..=Self::MAX).contains(d))
            .map(Self)
            .ok_or(RetentionDaysError)
    }

    /// The days.
    #[must_use]
    pub const fn days(self) -> u16 {
        self.0
    }

    /// Whether a record removed at `removed_at` is due for erasure at `now`.
    #[must_use]
    pub fn is_due(self, removed_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        removed_at + time::Duration::days(i64::from(self.0)) <= now
    }
}

/// Why an admin erases a member (recorded with the erasure; required, 3 to 500
/// characters after trimming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReason(String);

/// A reason that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErasureReasonError {
    /// Shorter than 3 characters after trimming.
    #[error("give a reason of at least 3 characters (e.g. \"the member asked on 2026-12-01\")")]
    TooShort,
    /// Longer than [`MAX_REASON_CHARS`].
    #[error("the reason is longer than 500 characters")]
    TooLong,
}

impl ErasureReason {
    /// Parses a reason (trimmed).
    ///
    /// # Errors
    /// [`ErasureReasonError`] when it is too short or too long.
    pub fn parse(raw: &str) -> Result<Self, ErasureReasonError> {
        let t = raw.trim();
        match t.chars().count() {
            0..3 => Err(ErasureReasonError::TooShort),
            n if n > MAX_REASON_CHARS => Err(ErasureReasonError::TooLong),
            _ => Ok(Self(t.to_owned())),
        }
    }

    /// The reason.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a store knows about the person before an erasure decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErasureFacts {
    /// The account exists.
    pub exists: bool,
    /// The orgs where they are a member (any status).
    pub member_of: Vec<OrgId>,
    /// The orgs that removed them (or they left), keeping the record for a restore.
    pub removed_from: Vec<OrgId>,
    /// The orgs where they are the last active admin.
    pub last_admin_of: Vec<OrgId>,
    /// They hold a district role.
    pub district_staff: bool,
    /// They are a platform admin.
    pub platform_admin: bool,
}

/// Why an erasure was refused (nothing was erased).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureRefused {
    /// The person is not a member of the org (or the account does not exist).
    #[error("no such member")]
    NotFound,
    /// They are the last active admin of these orgs: someone else must be made admin
    /// first, or the orgs would be left without one.
    #[error("the last active admin of an org cannot be erased: make someone else admin first")]
    LastAdmin(Vec<OrgId>),
    /// An admin asked to erase themselves through the org: `DELETE /me` is the way.
    #[error("to erase your own data, delete your account")]
    Yourself,
    /// A platform admin's account is erased only after the role is handed on.
    #[error("a platform admin's account cannot be erased: hand the role to someone else first")]
    PlatformAdmin,
}

/// Why an erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// Refused by a rule.
    #[error(transparent)]
    Refused(#[from] ErasureRefused),
    /// Storage failed; nothing was erased.
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

/// Decides whether an erasure may go ahead, and whether the account goes with it.
///
/// # Errors
/// [`ErasureRefused`] naming the rule.
pub fn decide(
    scope: ErasureScope,
    actor: Option<UserId>,
    subject: UserId,
    facts: &ErasureFacts,
) -> Result<bool, ErasureRefused> {
    if !facts.exists {
        return Err(ErasureRefused::NotFound);
    }
    match scope {
        ErasureScope::Account => {
            if facts.platform_admin {
                return Err(ErasureRefused::PlatformAdmin);
            }
            if !facts.last_admin_of.is_empty() {
                return Err(ErasureRefused::LastAdmin(facts.last_admin_of.clone()));
            }
            Ok(true)
        }
        ErasureScope::Retention(org) => {
            if facts.member_of.contains(&org) || !facts.removed_from.contains(&org) {
                return Err(ErasureRefused::NotFound);
            }
            Ok(false)
        }
        ErasureScope::Org(org) => {
            if actor == Some(subject) {
                return Err(ErasureRefused::Yourself);
            }
            if !facts.member_of.contains(&org) && !facts.removed_from.contains(&org) {
                return Err(ErasureRefused::NotFound);
            }
            if facts.last_admin_of.contains(&org) {
                return Err(ErasureRefused::LastAdmin(vec![org]));
            }
            let held_elsewhere = facts.member_of.iter().any(|o| *o != org)
                || facts.district_staff
                || facts.platform_admin;
            Ok(!held_elsewhere)
        }
    }
}

/// How many records of each kind an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasedCounts {
    /// Memberships (role, committee, children, profile).
    pub memberships: u64,
    /// Removed memberships kept for restoring.
    pub removed_memberships: u64,
    /// Directory privacy choices.
    pub privacy_choices: u64,
    /// Data-access log entries about them.
    pub access_log_entries: u64,
    /// Invitations addressed to them.
    pub invitations: u64,
    /// Direct permission grants to them.
    pub permission_grants: u64,
    /// Sessions and refresh tokens.
    pub sessions: u64,
    /// Second factors, recovery codes, sign-in challenges, e-mailed links.
    pub sign_in_secrets: u64,
    /// District roles.
    pub district_roles: u64,
    /// E-mails to them, queued or sent (and their files, without SMTP).
    pub emails: u64,
    /// Rows of import and export jobs naming them.
    pub job_records: u64,
    /// Stored export files that may list them (a member export is a copy of many
    /// records and is withdrawn whole) and their personal data exports.
    pub export_files: u64,
    /// Per-person keys of the audit trail destroyed (the sealed fields become unreadable).
    pub audit_keys: u64,
    /// Audit chains that held sealed fields about them.
    pub audit_chains: u64,
    /// The account itself (e-mail, names, phone, password).
    pub accounts: u64,
}

/// The answer to an erasure: what was removed, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// The erased person.
    pub user_id: UserId,
    /// Whose data and how far.
    pub scope: ErasureScope,
    /// When it was committed.
    pub erased_at: OffsetDateTime,
    /// Whether the account itself was erased.
    pub account_erased: bool,
    /// What was removed.
    pub removed: ErasedCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }
    fn oid(n: u128) -> OrgId {
        OrgId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn retention_erases_only_former_members_after_the_period_and_keeps_the_account() {
        let former = ErasureFacts {
            exists: true,
            removed_from: vec![oid(1)],
            ..ErasureFacts::default()
        };
        let scope = ErasureScope::Retention(oid(1));
        assert_eq!(decide(scope, None, uid(1), &former), Ok(false));
        let rejoined = ErasureFacts {
            member_of: vec![oid(1)],
            ..former.clone()
        };
        assert_eq!(
            decide(scope, None, uid(1), &rejoined),
            Err(ErasureRefused::NotFound)
        );
        // An admin may erase a former member on request too.
        assert_eq!(
            decide(ErasureScope::Org(oid(1)), Some(uid(9)), uid(1), &former),
            Ok(true)
        );
        let days = RetentionDays::new(30).expect("in range");
        let removed = time::macros::datetime!(2026-01-01 0:00 UTC);
        assert!(!days.is_due(removed, removed + time::Duration::days(29)));
        assert!(days.is_due(removed, removed + time::Duration::days(30)));
        assert_eq!(RetentionDays::new(29), Err(RetentionDaysError));
        assert_eq!(RetentionDays::new(3651), Err(RetentionDaysError));
        assert_eq!(RetentionDays::DEFAULT.days(), 365);
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            ErasureReason::parse("  asked by phone  ").map(|r| r.as_str().to_owned()),
            Ok("asked by phone".to_owned())
        );
        assert_eq!(
            ErasureReason::parse(" ab "),
            Err(ErasureReasonError::TooShort)
        );
        assert_eq!(
            ErasureReason::parse(&"é".repeat(501)),
            Err(ErasureReasonError::TooLong)
        );
        assert!(ErasureReason::parse(&"é".repeat(500)).is_ok());
    }

    #[test]
    fn an_account_goes_unless_it_is_the_last_admin_or_a_platform_admin() {
        let facts = ErasureFacts {
            exists: true,
            member_of: vec![oid(1), oid(2)],
            ..ErasureFacts::default()
        };
        assert_eq!(
            decide(ErasureScope::Account, Some(uid(1)), uid(1), &facts),
            Ok(true)
        );
        let last = ErasureFacts {
            last_admin_of: vec![oid(2)],
            ..facts.clone()
        };
        assert_eq!(
            decide(ErasureScope::Account, Some(uid(1)), uid(1), &last),
            Err(ErasureRefused::LastAdmin(vec![oid(2)]))
        );
        let platform = ErasureFacts {
            platform_admin: true,
            ..facts.clone()
        };
        assert_eq!(
            decide(ErasureScope::Account, Some(uid(1)), uid(1), &platform),
            Err(ErasureRefused::PlatformAdmin)
        );
        assert_eq!(
            decide(
                ErasureScope::Account,
                Some(uid(1)),
                uid(1),
                &ErasureFacts::default()
            ),
            Err(ErasureRefused::NotFound)
        );
    }

    #[test]
    fn an_org_erasure_takes_the_account_only_when_nothing_else_holds_it() {
        let only_here = ErasureFacts {
            exists: true,
            member_of: vec![oid(1)],
            ..ErasureFacts::default()
        };
        let org = ErasureScope::Org(oid(1));
        assert_eq!(decide(org, Some(uid(9)), uid(1), &only_here), Ok(true));
        let elsewhere = ErasureFacts {
            member_of: vec![oid(1), oid(2)],
            ..only_here.clone()
        };
        assert_eq!(decide(org, Some(uid(9)), uid(1), &elsewhere), Ok(false));
        let staff = ErasureFacts {
            district_staff: true,
            ..only_here.clone()
        };
        assert_eq!(decide(org, Some(uid(9)), uid(1), &staff), Ok(false));
        assert_eq!(
            decide(org, Some(uid(1)), uid(1), &only_here),
            Err(ErasureRefused::Yourself)
        );
        assert_eq!(
            decide(ErasureScope::Org(oid(3)), Some(uid(9)), uid(1), &only_here),
            Err(ErasureRefused::NotFound)
        );
        let last = ErasureFacts {
            last_admin_of: vec![oid(1)],
            ..only_here
        };
        assert_eq!(
            decide(org, Some(uid(9)), uid(1), &last),
            Err(ErasureRefused::LastAdmin(vec![oid(1)]))
        );
    }
}
