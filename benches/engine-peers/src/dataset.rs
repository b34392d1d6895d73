//! The "enterprise" dataset, generated deterministically in memory.
//!
//! Same shape and parameters as `cargo xtask seed --enterprise` (defaults: 50 districts ×
//! 20 schools × 2 orgs × 50 members; 10% org settings; 20% of district settings locked;
//! grants to 1% of members), so the benchmark describes the dataset the server is seeded
//! with. The random streams differ (this generator runs in memory, not through the
//! database), so ids and individual rows are not the seed's.
//!
//! | parameter | value |
//! |---|---|
//! | RNG | splitmix64, seed 42 |
//! | districts | 50, each setting 8 distinct keys, each locked with p = 20% |
//! | schools | 20 per district (1,000); each sets 5% of the keys its district did not lock |
//! | orgs | 2 per school (2,000); each sets 10% of the keys its district did not lock |
//! | setting value | min_role uniform over the 4 built-in roles; disabled with p = 10% (never a `users.*` key) |
//! | members | 50 per org, 100,000 users, one membership each: member 0 admin, 1–2 board_member, 3–6 committee_lead, the rest volunteer |
//! | status | member 0 active; others active 97%, invited 2%, suspended 1% |
//! | grants | 1% of non-admin members hold one direct grant of a random key |
//!
//! Additions for the benchmark (the dataset: "a few custom roles with extra keys",
//! grants "some expired"; the spec's disabled users), absent from the seed:
//!
//! | addition | value |
//! |---|---|
//! | custom roles | member 7 of every org holds one of 4 custom roles (Treasurer, Secretary, Volunteer Coordinator, Webmaster), each counting as a built-in rank with 2 extra keys |
//! | grant expiry | 50% permanent, 35% expiring 30–365 days after `NOW`, 15% expired 1–60 days before `NOW` |
//! | disabled users | 0.2% of users |
//! | `NOW` | 2025-03-01T09:00:00Z, the instant every check is evaluated at |

use permissions::{
    BuiltinRole, Grant, KeySet, MemberStatus, Module, OrgChain, PermissionKey, ScopeSettings,
    ScopedSetting,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The instant every check is evaluated at.
pub const NOW: OffsetDateTime = datetime!(2025-03-01 9:00 UTC);

/// The generator's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub seed: u64,
    pub districts: usize,
    pub schools_per_district: usize,
    pub orgs_per_school: usize,
    pub members_per_org: usize,
    /// Keys each district sets.
    pub district_keys: usize,
    /// Probability that a district setting is locked.
    pub locked_rate: f64,
    /// Probability that a school sets a key its district did not lock.
    pub school_settings_rate: f64,
    /// Probability that an org sets a key its district did not lock.
    pub org_settings_rate: f64,
    /// Probability that a setting disables its key (never a `users.*` key).
    pub disabled_rate: f64,
    /// Probability that a non-admin member holds a direct grant.
    pub grant_rate: f64,
    /// Probability that a user account is disabled (benchmark addition).
    pub disabled_user_rate: f64,
}

impl Params {
    /// `cargo xtask seed --enterprise` defaults: 50 / 20 / 2,000 / 100,000 / 10% / 20% / 1%.
    pub const ENTERPRISE: Self = Self {
        seed: 42,
        districts: 50,
        schools_per_district: 20,
        orgs_per_school: 2,
        members_per_org: 50,
        district_keys: 8,
        locked_rate: 0.20,
        school_settings_rate: 0.05,
        org_settings_rate: 0.10,
        disabled_rate: 0.10,
        grant_rate: 0.01,
        disabled_user_rate: 0.002,
    };

    pub const fn schools(&self) -> usize {
        self.districts * self.schools_per_district
    }

    pub const fn orgs(&self) -> usize {
        self.schools() * self.orgs_per_school
    }

    pub const fn memberships(&self) -> usize {
        self.orgs() * self.members_per_org
    }
}

/// splitmix64: tiny, fast, deterministic; good enough for test data.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is negligible for our n).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn key(&mut self) -> PermissionKey {
        PermissionKey::ALL[self.below(PermissionKey::COUNT)]
    }

    pub fn role(&mut self) -> BuiltinRole {
        BuiltinRole::ALL[self.below(4)]
    }
}

/// A custom role template: every org defines these four.
pub struct CustomRole {
    pub name: &'static str,
    pub counts_as: BuiltinRole,
    pub extra_keys: [PermissionKey; 2],
}

pub const CUSTOM_ROLES: [CustomRole; 4] = [
    CustomRole {
        name: "Treasurer",
        counts_as: BuiltinRole::CommitteeLead,
        extra_keys: [PermissionKey::BudgetApprove, PermissionKey::BudgetDelete],
    },
    CustomRole {
        name: "Secretary",
        counts_as: BuiltinRole::Volunteer,
        extra_keys: [
            PermissionKey::CommunicationsSend,
            PermissionKey::DocumentsUpload,
        ],
    },
    CustomRole {
        name: "Volunteer Coordinator",
        counts_as: BuiltinRole::CommitteeLead,
        extra_keys: [
            PermissionKey::EventsManageVolunteers,
            PermissionKey::UsersInvite,
        ],
    },
    CustomRole {
        name: "Webmaster",
        counts_as: BuiltinRole::Volunteer,
        extra_keys: [
            PermissionKey::DocumentsDelete,
            PermissionKey::CommunicationsCreate,
        ],
    },
];

impl CustomRole {
    pub fn extra_key_set(&self) -> KeySet {
        self.extra_keys.into_iter().collect()
    }
}

/// A member's role, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Builtin(BuiltinRole),
    /// Index into [`CUSTOM_ROLES`].
    Custom(usize),
}

impl Role {
    pub fn counts_as(self) -> BuiltinRole {
        match self {
            Self::Builtin(role) => role,
            Self::Custom(i) => CUSTOM_ROLES[i].counts_as,
        }
    }

    pub fn extra_keys(self) -> KeySet {
        match self {
            Self::Builtin(_) => KeySet::new(),
            Self::Custom(i) => CUSTOM_ROLES[i].extra_key_set(),
        }
    }
}

/// One membership row, as stored.
#[derive(Debug, Clone)]
pub struct Membership {
    pub org: u32,
    pub user: u32,
    pub role: Role,
    pub status: MemberStatus,
    pub grants: Vec<Grant>,
}

/// The dataset: the org chains (district, school and org settings), the users and the
/// memberships.
pub struct Dataset {
    pub chains: Vec<OrgChain>,
    pub user_ids: Vec<Uuid>,
    pub user_active: Vec<bool>,
    pub memberships: Vec<Membership>,
}

impl Dataset {
    pub fn org_id(org: usize) -> Uuid {
        Uuid::from_u128((0x0A_u128 << 120) | org as u128)
    }

    pub fn generate(params: Params) -> Self {
        let mut rng = SplitMix64::new(params.seed);
        let p = params;

        let value = |rng: &mut SplitMix64, key: PermissionKey, locked: bool| {
            let min_role = rng.role();
            let enabled = !rng.chance(p.disabled_rate) || key.module() == Module::UserManagement;
            if locked {
                ScopedSetting::locked(min_role, enabled)
            } else {
                ScopedSetting::new(min_role, enabled)
            }
        };

        // Districts: `district_keys` distinct keys (partial Fisher–Yates), some locked.
        let districts: Vec<ScopeSettings> = (0..p.districts)
            .map(|_| {
                let mut order = PermissionKey::ALL;
                let mut s = ScopeSettings::new();
                for i in 0..p.district_keys {
                    let j = i + rng.below(PermissionKey::COUNT - i);
                    order.swap(i, j);
                    let locked = rng.chance(p.locked_rate);
                    s.set(order[i], value(&mut rng, order[i], locked));
                }
                s
            })
            .collect();
        // Schools and orgs: a share of the keys their district left unlocked.
        let open_settings = |rng: &mut SplitMix64, district: &ScopeSettings, rate: f64| {
            let mut s = ScopeSettings::new();
            for key in PermissionKey::ALL {
                let locked_above = district.get(key).is_some_and(|d| d.locked);
                if !locked_above && rng.chance(rate) {
                    s.set(key, value(rng, key, false));
                }
            }
            s
        };
        let schools: Vec<ScopeSettings> = (0..p.schools())
            .map(|school| {
                open_settings(
                    &mut rng,
                    &districts[school / p.schools_per_district],
                    p.school_settings_rate,
                )
            })
            .collect();
        let chains: Vec<OrgChain> = (0..p.orgs())
            .map(|org| {
                let school = org / p.orgs_per_school;
                let district = school / p.schools_per_district;
                let org_settings =
                    open_settings(&mut rng, &districts[district], p.org_settings_rate);
                OrgChain::standalone(Self::org_id(org))
                    .with_district(
                        Uuid::from_u128((0x0D_u128 << 120) | district as u128),
                        districts[district],
                    )
                    .with_school(
                        Uuid::from_u128((0x05_u128 << 120) | school as u128),
                        schools[school],
                    )
                    .with_org_settings(org_settings)
            })
            .collect();

        // One user per membership.
        let users = p.memberships();
        let user_ids: Vec<Uuid> = (0..users)
            .map(|u| Uuid::from_u128((0x0E_u128 << 120) | u as u128))
            .collect();
        let user_active: Vec<bool> = (0..users)
            .map(|_| !rng.chance(p.disabled_user_rate))
            .collect();

        let mut memberships = Vec::with_capacity(users);
        for org in 0..p.orgs() {
            let custom = rng.below(CUSTOM_ROLES.len());
            for m in 0..p.members_per_org {
                let user = (org * p.members_per_org + m) as u32;
                let role = match m {
                    0 => Role::Builtin(BuiltinRole::Admin),
                    1..=2 => Role::Builtin(BuiltinRole::BoardMember),
                    3..=6 => Role::Builtin(BuiltinRole::CommitteeLead),
                    7 => Role::Custom(custom),
                    _ => Role::Builtin(BuiltinRole::Volunteer),
                };
                let status = match (m, rng.below(100)) {
                    (0, _) | (_, 0..97) => MemberStatus::Active,
                    (_, 97..99) => MemberStatus::Invited,
                    _ => MemberStatus::Suspended,
                };
                let mut grants = Vec::new();
                if m > 0 && rng.chance(p.grant_rate) {
                    let key = rng.key();
                    let e = rng.unit();
                    let expires_at = if e < 0.50 {
                        None
                    } else if e < 0.85 {
                        Some(NOW + Duration::days(30 + rng.below(336) as i64))
                    } else {
                        Some(NOW - Duration::days(1 + rng.below(60) as i64))
                    };
                    grants.push(Grant {
                        key,
                        starts_at: None,
                        expires_at,
                        reason: Some("benchmark grant".to_owned()),
                    });
                }
                memberships.push(Membership {
                    org: org as u32,
                    user,
                    role,
                    status,
                    grants,
                });
            }
        }

        Self {
            chains,
            user_ids,
            user_active,
            memberships,
        }
    }
}

/// The effective `(min_role, enabled)` of `key` for `chain`, written straight from the spec
/// text and independent of the crate's resolver: the peers' policies are generated from this,
/// so the agreement check also covers settings resolution, not only the check formula.
pub fn naive_effective(chain: &OrgChain, key: PermissionKey) -> (BuiltinRole, bool) {
    // 1. start from the platform default;
    let default = permissions::catalog()
        .iter()
        .find(|entry| entry.key == key)
        .expect("every key is in the catalog")
        .default;
    let mut current = (default.min_role, default.enabled);
    // 2. walk the chain top-down: district, school, org (absent levels skipped);
    let mut levels: Vec<&ScopeSettings> = Vec::new();
    if let Some(district) = &chain.district {
        levels.push(&district.settings);
    }
    if let Some(school) = &chain.school {
        levels.push(&school.settings);
    }
    levels.push(&chain.org_settings);
    for settings in levels {
        // 3. a level holding a setting replaces the current one;
        if let Some(setting) = settings.get(key) {
            current = (setting.min_role, setting.enabled);
            // 4. a locked setting stops the walk.
            if setting.locked {
                break;
            }
        }
    }
    current
}

/// Whether a district or school setting of `key` is locked: then a custom role's extra
/// key and a direct grant of it count for nothing in the org ("locks bind exceptions").
pub fn locked_above(chain: &OrgChain, key: PermissionKey) -> bool {
    let locked = |s: &ScopeSettings| s.get(key).is_some_and(|setting| setting.locked);
    chain.district.as_ref().is_some_and(|d| locked(&d.settings))
        || chain.school.as_ref().is_some_and(|s| locked(&s.settings))
}

/// The keys for which exceptions (extra keys, grants) count in the org of `chain`: enabled
/// and not locked above the org.
pub fn exception_keys(chain: &OrgChain) -> KeySet {
    PermissionKey::ALL
        .into_iter()
        .filter(|&k| naive_effective(chain, k).1 && !locked_above(chain, k))
        .collect()
}

/// The keys a membership holds through an unexpired grant at [`NOW`] (what the peers get,
/// precomputed, since neither has our expiry semantics built in).
pub fn unexpired_grant_keys(m: &Membership) -> KeySet {
    m.grants
        .iter()
        .filter(|g| g.starts_at.is_none_or(|t| t <= NOW) && g.expires_at.is_none_or(|t| NOW < t))
        .map(|g| g.key)
        .collect()
}

/// The whole check, naively, from the spec text: the reference every engine must agree with.
pub fn naive_check(
    data: &Dataset,
    member: Option<&Membership>,
    org: usize,
    key: PermissionKey,
) -> bool {
    let Some(m) = member else {
        return false;
    };
    let (min_role, enabled) = naive_effective(&data.chains[org], key);
    m.status == MemberStatus::Active
        && data.user_active[m.user as usize]
        && enabled
        && (m.role.counts_as().rank() >= min_role.rank()
            || (!locked_above(&data.chains[org], key)
                && (m.role.extra_keys().contains(key) || unexpired_grant_keys(m).contains(key))))
}
