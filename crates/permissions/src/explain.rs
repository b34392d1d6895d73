//! Explain: the steps that led a check to allow or deny.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::{DecisionReason, decide_with};
use crate::keys::PermissionKey;
use crate::member::{Grants, MemberContext, MemberStatus};
use crate::resolve::{Effective, walk};
use crate::role::BuiltinRole;
use crate::scope::{OrgChain, ScopeLevel, ScopeRef, ScopedSetting};

/// One step of an [`Explanation`], in the order they happened.
///
/// Serialized with a `step` tag, e.g. `{"step":"level_locked","scope":{"kind":"district",
/// "id":"…"},"min_role":"admin","enabled":true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ExplainStep {
    /// Resolution starts from the catalog's platform default.
    PlatformDefault {
        /// The default minimum role.
        min_role: BuiltinRole,
        /// Whether the key is enabled by default.
        enabled: bool,
    },
    /// The org has no such level (no district, or no school).
    LevelAbsent {
        /// The missing level.
        level: ScopeLevel,
    },
    /// The level exists but holds no setting for the key; the current setting stands.
    LevelNotSet {
        /// The level's scope.
        scope: ScopeRef,
    },
    /// The level's setting replaced the current one.
    LevelSet {
        /// The level's scope.
        scope: ScopeRef,
        /// Its minimum role.
        min_role: BuiltinRole,
        /// Whether it enables the key.
        enabled: bool,
    },
    /// The level's setting replaced the current one and is locked: lower levels are skipped.
    LevelLocked {
        /// The level's scope.
        scope: ScopeRef,
        /// Its minimum role.
        min_role: BuiltinRole,
        /// Whether it enables the key.
        enabled: bool,
    },
    /// The level was not consulted because a level above locked the key.
    LevelSkipped {
        /// The skipped level's scope.
        scope: ScopeRef,
        /// The scope that locked the key.
        locked_by: ScopeRef,
        /// The setting this level holds for the key, which has no effect.
        ignored_setting: Option<ScopedSetting>,
    },
    /// The membership must be active.
    Membership {
        /// The membership's status.
        status: MemberStatus,
        /// Whether it is active.
        passed: bool,
    },
    /// The user account must be active (not disabled or deleted).
    UserActive {
        /// Whether it is.
        active: bool,
    },
    /// The effective setting must enable the key.
    Enabled {
        /// Whether it does.
        enabled: bool,
        /// The scope the effective setting came from.
        source: ScopeRef,
    },
    /// The role's rank compared with the minimum role's.
    RoleRank {
        /// The role's name.
        role: String,
        /// The built-in role it counts as.
        counts_as: BuiltinRole,
        /// Its rank.
        rank: u8,
        /// The effective minimum role.
        min_role: BuiltinRole,
        /// The minimum role's rank.
        min_rank: u8,
        /// Whether `rank >= min_rank`.
        passed: bool,
    },
    /// Whether the role carries the key as an extra key.
    ExtraKey {
        /// The role's name.
        role: String,
        /// Whether the key is among its extra keys.
        holds: bool,
    },
    /// The member's direct grants of the key.
    Grant {
        /// The best grant found.
        grant: GrantState,
    },
    /// An org-level exception the member holds for the key (an extra key of their role,
    /// an active grant) that does not count, because a district or school locked the key
    /// ("grant ignored: locked by district …"). It stays stored; it counts again when
    /// the lock goes.
    ExceptionIgnored {
        /// Which exception.
        exception: Exception,
        /// The district or school that locked the key.
        locked_by: ScopeRef,
        /// The same in words, e.g. `grant ignored: locked by district 0190…`.
        note: String,
    },
    /// The answer.
    Decision {
        /// Whether the check allows.
        allowed: bool,
        /// Why, in one word.
        reason: DecisionReason,
    },
}

/// An org-level exception to the minimum role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exception {
    /// An extra key of the member's custom role.
    ExtraKey,
    /// A direct grant.
    Grant,
}

impl Exception {
    /// `extra key` or `grant`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ExtraKey => "extra key",
            Self::Grant => "grant",
        }
    }
}

/// The best direct grant of one key a member holds at a point in time: permanent beats
/// active, which beats pending (not started yet), which beats expired, which beats none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GrantState {
    /// No grant of the key.
    None,
    /// A grant without expiry.
    Permanent {
        /// Why it was granted.
        reason: Option<String>,
    },
    /// An unexpired grant (the one that lasts longest).
    Active {
        /// When it expires.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        /// Why it was granted.
        reason: Option<String>,
    },
    /// A grant that has not started yet (the one starting first).
    Pending {
        /// When it starts counting.
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
        /// When it will expire, if it does.
        #[serde(with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
        /// Why it was granted.
        reason: Option<String>,
    },
    /// Only expired grants (the most recently expired one).
    Expired {
        /// When it expired.
        #[serde(with = "time::serde::rfc3339")]
        expired_at: OffsetDateTime,
        /// Why it was granted.
        reason: Option<String>,
    },
}

impl GrantState {
    /// The best grant of `key` among `grants` at `now`.
    #[must_use]
    pub fn of(grants: &Grants, key: PermissionKey, now: OffsetDateTime) -> Self {
        let mut best = Self::None;
        for grant in grants.of_key(key) {
            let reason = grant.reason.clone();
            let candidate = match (grant.starts_at, grant.expires_at) {
                (_, Some(expired_at)) if expired_at <= now => Self::Expired { expired_at, reason },
                (Some(starts_at), expires_at) if now < starts_at => Self::Pending {
                    starts_at,
                    expires_at,
                    reason,
                },
                (_, None) => Self::Permanent { reason },
                (_, Some(expires_at)) => Self::Active { expires_at, reason },
            };
            if candidate.outranks(&best) {
                best = candidate;
            }
        }
        best
    }

    /// Whether this state holds the key.
    #[must_use]
    pub const fn holds(&self) -> bool {
        matches!(self, Self::Permanent { .. } | Self::Active { .. })
    }

    fn outranks(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Active { expires_at: a, .. }, Self::Active { expires_at: b, .. })
            | (Self::Expired { expired_at: a, .. }, Self::Expired { expired_at: b, .. }) => a > b,
            (Self::Pending { starts_at: a, .. }, Self::Pending { starts_at: b, .. }) => a < b,
            _ => self.strength() > other.strength(),
        }
    }

    const fn strength(&self) -> u8 {
        match self {
            Self::None => 0,
            Self::Expired { .. } => 1,
            Self::Pending { .. } => 2,
            Self::Active { .. } => 3,
            Self::Permanent { .. } => 4,
        }
    }
}

/// Why a check allowed or denied: the answer, the effective setting, and the steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The answer; always equal to [`check`](crate::check()) for the same inputs.
    pub allowed: bool,
    /// The key explained.
    pub key: PermissionKey,
    /// The member explained.
    pub user_id: Uuid,
    /// The key's effective setting for the org.
    pub effective: Effective,
    /// The steps, in order: platform default, district, school, org, membership, user,
    /// enabled, role rank, extra key, grant, the exceptions a lock above makes inert (if
    /// any), decision.
    pub steps: Vec<ExplainStep>,
}

/// Explains the check of `key` for `member` in the org of `chain` at `now`.
///
/// Every step of the formula is reported, even after one has already decided, so an admin sees the whole
/// picture; the final [`ExplainStep::Decision`] carries the answer and its reason.
///
/// ```
/// use permissions::{
///     check, explain, BuiltinRole, CompiledOrg, DecisionReason, ExplainStep, MemberContext,
///     OrgChain, PermissionKey, RoleRef, ScopeSettings, ScopedSetting,
/// };
/// use time::OffsetDateTime;
/// use uuid::Uuid;
///
/// let key = PermissionKey::EventsCreate;
/// let mut district = ScopeSettings::new();
/// district.set(key, ScopedSetting::locked(BuiltinRole::BoardMember, true));
/// let chain = OrgChain::standalone(Uuid::from_u128(3)).with_district(Uuid::from_u128(1), district);
/// let lead = MemberContext::active(Uuid::from_u128(9), RoleRef::builtin(BuiltinRole::CommitteeLead));
/// let now = OffsetDateTime::now_utc();
///
/// let explanation = explain(&chain, &lead, key, now);
/// assert!(!explanation.allowed);
/// assert_eq!(explanation.allowed, check(&CompiledOrg::compile(&chain, 0), &lead, key, now));
/// assert!(matches!(explanation.steps[1], ExplainStep::LevelLocked { .. }));
/// assert_eq!(
///     explanation.steps.last(),
///     Some(&ExplainStep::Decision { allowed: false, reason: DecisionReason::InsufficientRole })
/// );
/// ```
#[must_use]
pub fn explain(
    chain: &OrgChain,
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
) -> Explanation {
    let mut steps = Vec::with_capacity(13);
    let effective = walk(chain, key, |step| steps.push(step));
    let role = &member.role;
    let grant = GrantState::of(&member.grants, key, now);
    let extra_key = role.extra_keys.contains(key);
    let ignored = effective.locked_above().map(|locked_by| {
        [
            (Exception::ExtraKey, extra_key),
            (Exception::Grant, grant.holds()),
        ]
        .into_iter()
        .filter(|&(_, held)| held)
        .map(move |(exception, _)| ExplainStep::ExceptionIgnored {
            exception,
            locked_by,
            note: format!("{} ignored: locked by {locked_by}", exception.as_str()),
        })
    });
    steps.extend([
        ExplainStep::Membership {
            status: member.status,
            passed: member.status == MemberStatus::Active,
        },
        ExplainStep::UserActive {
            active: member.user_active,
        },
        ExplainStep::Enabled {
            enabled: effective.enabled,
            source: effective.source,
        },
        ExplainStep::RoleRank {
            role: role.name.clone(),
            counts_as: role.counts_as,
            rank: role.counts_as.rank(),
            min_role: effective.min_role,
            min_rank: effective.min_role.rank(),
            passed: role.counts_as >= effective.min_role,
        },
        ExplainStep::ExtraKey {
            role: role.name.clone(),
            holds: extra_key,
        },
        ExplainStep::Grant { grant },
    ]);
    steps.extend(ignored.into_iter().flatten());
    let reason = decide_with(&effective, member, key, now);
    steps.push(ExplainStep::Decision {
        allowed: reason.is_allowed(),
        reason,
    });
    Explanation {
        allowed: reason.is_allowed(),
        key,
        user_id: member.user_id,
        effective,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::check::check;
    use crate::compiled::CompiledOrg;
    use crate::member::{Grant, RoleRef};
    use crate::scope::ScopeSettings;

    const NOW: OffsetDateTime = datetime!(2025-03-01 9:00 UTC);
    const KEY: PermissionKey = PermissionKey::DocumentsDelete;

    fn chain() -> OrgChain {
        let school: ScopeSettings = [(KEY, ScopedSetting::new(BuiltinRole::Admin, true))]
            .into_iter()
            .collect();
        OrgChain::standalone(Uuid::from_u128(3)).with_school(Uuid::from_u128(2), school)
    }

    fn grant(expires_at: Option<OffsetDateTime>, reason: &str) -> Grant {
        Grant {
            expires_at,
            reason: Some(reason.to_owned()),
            ..Grant::permanent(KEY)
        }
    }

    #[test]
    fn explains_every_level_and_every_term_of_the_formula() {
        let member = MemberContext::active(
            Uuid::from_u128(9),
            RoleRef::builtin(BuiltinRole::BoardMember),
        )
        .with_grants(vec![grant(Some(datetime!(2025-02-01 0:00 UTC)), "old")]);
        let explanation = explain(&chain(), &member, KEY, NOW);
        assert!(!explanation.allowed);
        assert_eq!(
            explanation.effective.source,
            ScopeRef::School(Uuid::from_u128(2))
        );
        assert_eq!(
            explanation.steps,
            [
                ExplainStep::PlatformDefault {
                    min_role: BuiltinRole::BoardMember,
                    enabled: true
                },
                ExplainStep::LevelAbsent {
                    level: ScopeLevel::District
                },
                ExplainStep::LevelSet {
                    scope: ScopeRef::School(Uuid::from_u128(2)),
                    min_role: BuiltinRole::Admin,
                    enabled: true
                },
                ExplainStep::LevelNotSet {
                    scope: ScopeRef::Org(Uuid::from_u128(3))
                },
                ExplainStep::Membership {
                    status: MemberStatus::Active,
                    passed: true
                },
                ExplainStep::UserActive { active: true },
                ExplainStep::Enabled {
                    enabled: true,
                    source: ScopeRef::School(Uuid::from_u128(2))
                },
                ExplainStep::RoleRank {
                    role: "board_member".to_owned(),
                    counts_as: BuiltinRole::BoardMember,
                    rank: 3,
                    min_role: BuiltinRole::Admin,
                    min_rank: 4,
                    passed: false
                },
                ExplainStep::ExtraKey {
                    role: "board_member".to_owned(),
                    holds: false
                },
                ExplainStep::Grant {
                    grant: GrantState::Expired {
                        expired_at: datetime!(2025-02-01 0:00 UTC),
                        reason: Some("old".to_owned())
                    }
                },
                ExplainStep::Decision {
                    allowed: false,
                    reason: DecisionReason::InsufficientRole
                },
            ]
        );
    }

    #[test]
    fn best_grant_wins() {
        let member =
            MemberContext::active(Uuid::from_u128(9), RoleRef::builtin(BuiltinRole::Volunteer))
                .with_grants(vec![
                    grant(Some(datetime!(2025-01-01 0:00 UTC)), "expired"),
                    grant(Some(datetime!(2025-04-01 0:00 UTC)), "short"),
                    grant(Some(datetime!(2025-05-01 0:00 UTC)), "long"),
                ]);
        assert_eq!(
            GrantState::of(&member.grants, KEY, NOW),
            GrantState::Active {
                expires_at: datetime!(2025-05-01 0:00 UTC),
                reason: Some("long".to_owned())
            }
        );
        let explanation = explain(&chain(), &member, KEY, NOW);
        assert!(explanation.allowed);
        assert_eq!(
            explanation.steps.last(),
            Some(&ExplainStep::Decision {
                allowed: true,
                reason: DecisionReason::DirectGrant
            })
        );
        let permanent = member.with_grants(vec![grant(None, "forever")]);
        assert_eq!(
            GrantState::of(&permanent.grants, KEY, NOW),
            GrantState::Permanent {
                reason: Some("forever".to_owned())
            }
        );
    }

    #[test]
    fn a_pending_grant_is_shown_and_does_not_count() {
        let starts_at = datetime!(2025-03-02 0:00 UTC);
        let member =
            MemberContext::active(Uuid::from_u128(9), RoleRef::builtin(BuiltinRole::Volunteer))
                .with_grants(vec![
                    grant(Some(datetime!(2025-01-01 0:00 UTC)), "expired"),
                    Grant {
                        starts_at: Some(starts_at),
                        ..grant(None, "next week")
                    },
                ]);
        assert_eq!(
            GrantState::of(&member.grants, KEY, NOW),
            GrantState::Pending {
                starts_at,
                expires_at: None,
                reason: Some("next week".to_owned())
            }
        );
        assert!(!explain(&chain(), &member, KEY, NOW).allowed);
        assert!(explain(&chain(), &member, KEY, starts_at).allowed);
    }

    #[test]
    fn exceptions_under_a_lock_above_are_reported_as_ignored() {
        let district = Uuid::from_u128(1);
        let locked: ScopeSettings = [(KEY, ScopedSetting::locked(BuiltinRole::Admin, true))]
            .into_iter()
            .collect();
        let chain = chain().with_district(district, locked);
        let member = MemberContext::active(
            Uuid::from_u128(9),
            RoleRef::custom("Clerk", BuiltinRole::Volunteer, [KEY].into_iter().collect()),
        )
        .with_grants(vec![grant(None, "filing")]);
        let explanation = explain(&chain, &member, KEY, NOW);
        assert!(!explanation.allowed);
        assert_eq!(
            explanation.allowed,
            check(&CompiledOrg::compile(&chain, 0), &member, KEY, NOW)
        );
        let ignored: Vec<&ExplainStep> = explanation
            .steps
            .iter()
            .filter(|step| matches!(step, ExplainStep::ExceptionIgnored { .. }))
            .collect();
        assert_eq!(
            ignored,
            [
                &ExplainStep::ExceptionIgnored {
                    exception: Exception::ExtraKey,
                    locked_by: ScopeRef::District(district),
                    note: format!("extra key ignored: locked by district {district}"),
                },
                &ExplainStep::ExceptionIgnored {
                    exception: Exception::Grant,
                    locked_by: ScopeRef::District(district),
                    note: format!("grant ignored: locked by district {district}"),
                },
            ]
        );
        assert_eq!(
            explanation.steps.last(),
            Some(&ExplainStep::Decision {
                allowed: false,
                reason: DecisionReason::InsufficientRole
            })
        );
        // Without the lock, neither is ignored and the extra key allows.
        let explanation = explain(&self::chain(), &member, KEY, NOW);
        assert!(explanation.allowed);
        assert!(
            !explanation
                .steps
                .iter()
                .any(|step| matches!(step, ExplainStep::ExceptionIgnored { .. }))
        );
    }

    #[test]
    fn explain_agrees_with_check_for_suspended_member() {
        let member =
            MemberContext::active(Uuid::from_u128(9), RoleRef::builtin(BuiltinRole::Admin))
                .with_status(MemberStatus::Suspended);
        let explanation = explain(&chain(), &member, KEY, NOW);
        let compiled = CompiledOrg::compile(&chain(), 0);
        assert_eq!(explanation.allowed, check(&compiled, &member, KEY, NOW));
        assert!(explanation.steps.contains(&ExplainStep::Membership {
            status: MemberStatus::Suspended,
            passed: false
        }));
    }

    #[test]
    fn steps_serialize_with_a_step_tag() {
        let member =
            MemberContext::active(Uuid::from_u128(9), RoleRef::builtin(BuiltinRole::Admin))
                .with_grants(vec![grant(Some(datetime!(2025-05-01 0:00 UTC)), "fair")]);
        let explanation = explain(&chain(), &member, KEY, NOW);
        let json = serde_json::to_value(&explanation).expect("serialize");
        assert_eq!(json["steps"][0]["step"], "platform_default");
        assert_eq!(json["steps"][9]["grant"]["state"], "active");
        assert_eq!(
            json["steps"][9]["grant"]["expires_at"],
            "2025-05-01T00:00:00Z"
        );
        let back: Explanation = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, explanation);
    }
}
