//! Property tests: the fast path (`CompiledOrg` + `check`) against a deliberately naive
//! reference written straight from the spec text, on random hierarchies and members.
//!
//! The reference shares only the data types (and the catalog's default table, which is data)
//! with the crate: it walks the chain itself, ranks roles itself and scans grants itself.

#![allow(clippy::unwrap_used, reason = "tests")]

use permissions::{
    BuiltinRole, CompiledOrg, ExplainStep, Grant, Grants, KeySet, MemberContext, MemberStatus,
    Module, OrgChain, PermissionKey, RoleRef, ScopeRef, ScopeSettings, ScopedSetting,
    SettingChange, UpdateSettingsError, apply_org_changes, catalog, check, decide, explain,
    member_matrix, members_holding, preview, refuse_locked_exceptions, reset_org, resolve,
};
use proptest::prelude::*;
use proptest::sample::select;
use time::macros::datetime;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2025-03-01 9:00 UTC);

/// Settings and grants concentrate on a few keys so levels collide often.
const HOT_KEYS: [PermissionKey; 4] = [
    PermissionKey::CommunicationsView,
    PermissionKey::BudgetApprove,
    PermissionKey::EventsCreate,
    PermissionKey::UsersRemove,
];

// ---------------------------------------------------------------------------------------------
// The reference model, from the spec text.
// ---------------------------------------------------------------------------------------------

/// "Built-in ranks: volunteer(1) < committee_lead(2) < board_member(3) < admin(4)."
fn reference_rank(role: BuiltinRole) -> u8 {
    match role {
        BuiltinRole::Volunteer => 1,
        BuiltinRole::CommitteeLead => 2,
        BuiltinRole::BoardMember => 3,
        BuiltinRole::Admin => 4,
    }
}

/// The effective setting: (min_role, enabled, source, locked_by).
fn reference_effective(
    chain: &OrgChain,
    key: PermissionKey,
) -> (BuiltinRole, bool, ScopeRef, Option<ScopeRef>) {
    // 1. start from the platform default;
    let default = catalog()
        .iter()
        .find(|entry| entry.key == key)
        .unwrap()
        .default;
    let mut current = (default.min_role, default.enabled, ScopeRef::Platform, None);
    // 2. walk the org's chain top-down: district, then school, then the org itself
    //    (levels the org doesn't have are skipped);
    let mut levels: Vec<(ScopeRef, &ScopeSettings)> = Vec::new();
    if let Some(district) = &chain.district {
        levels.push((ScopeRef::District(district.id), &district.settings));
    }
    if let Some(school) = &chain.school {
        levels.push((ScopeRef::School(school.id), &school.settings));
    }
    levels.push((ScopeRef::Org(chain.org_id), &chain.org_settings));
    for (scope, settings) in levels {
        // 3. at each level that holds a setting for the key, that setting replaces the
        //    current one;
        if let Some(setting) = settings.get(key) {
            current = (
                setting.min_role,
                setting.enabled,
                scope,
                if setting.locked { Some(scope) } else { None },
            );
            // 4. if the setting that replaced it is locked, stop.
            if setting.locked {
                break;
            }
        }
    }
    current
}

/// The spec's check:
///
/// ```text
/// check(user, org, key) = membership(user, org) is active
///   and e.enabled
///   and ( rank(role) >= rank(e.min_role)
///         or ( not e.locked_above
///              and ( key in role.extra_keys
///                    or an active direct grant (user, org, key) exists ) ) )
/// ```
///
/// with a grant active when `starts_at <= now < expires_at`.
fn reference_check(
    chain: &OrgChain,
    member: &MemberContext,
    key: PermissionKey,
    now: OffsetDateTime,
) -> bool {
    let (min_role, enabled, _, _) = reference_effective(chain, key);
    let locked_above = reference_locked_above(chain, key).is_some();
    let membership_active = member.status == MemberStatus::Active && member.user_active;
    let rank_ok = reference_rank(member.role.counts_as) >= reference_rank(min_role);
    let extra_key = member.role.extra_keys.iter().any(|extra| extra == key);
    let active_grant = member.grants.as_slice().iter().any(|grant| {
        grant.key == key
            && grant.starts_at.is_none_or(|start| start <= now)
            && grant.expires_at.is_none_or(|expiry| now < expiry)
    });
    membership_active && enabled && (rank_ok || (!locked_above && (extra_key || active_grant)))
}

/// The key's district or school lock, as the spec's "locked above".
fn reference_locked_above(chain: &OrgChain, key: PermissionKey) -> Option<ScopeRef> {
    match reference_effective(chain, key).3 {
        Some(ScopeRef::Org(_)) | None => None,
        above => above,
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

fn role() -> impl Strategy<Value = BuiltinRole> {
    select(BuiltinRole::ALL.to_vec())
}

fn any_key() -> impl Strategy<Value = PermissionKey> {
    select(PermissionKey::ALL.to_vec())
}

/// Mostly hot keys, sometimes any key.
fn key() -> impl Strategy<Value = PermissionKey> {
    prop_oneof![4 => select(HOT_KEYS.to_vec()), 1 => any_key()]
}

fn setting() -> impl Strategy<Value = ScopedSetting> {
    (role(), prop::bool::weighted(0.8), prop::bool::weighted(0.3)).prop_map(
        |(min_role, enabled, locked)| ScopedSetting {
            min_role,
            enabled,
            locked,
        },
    )
}

fn settings() -> impl Strategy<Value = ScopeSettings> {
    prop::collection::vec((key(), setting()), 0..5)
        .prop_map(|entries| entries.into_iter().collect())
}

fn chain() -> impl Strategy<Value = OrgChain> {
    (
        any::<u128>(),
        prop::option::of((any::<u128>(), settings())),
        prop::option::of((any::<u128>(), settings())),
        settings(),
    )
        .prop_map(|(org, district, school, org_settings)| {
            let mut chain =
                OrgChain::standalone(Uuid::from_u128(org)).with_org_settings(org_settings);
            if let Some((id, settings)) = district {
                chain = chain.with_district(Uuid::from_u128(id), settings);
            }
            if let Some((id, settings)) = school {
                chain = chain.with_school(Uuid::from_u128(id), settings);
            }
            chain
        })
}

/// An instant within a few seconds of NOW, including exactly NOW and a nanosecond either
/// side, written in some UTC offset (the same instant compares equal whatever the offset).
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    (
        -3_i64..=3,
        prop_oneof![3 => Just(0_i64), 1 => -1_i64..=1],
        -12_i8..=12,
    )
        .prop_map(|(seconds, nanoseconds, offset_hours)| {
            (NOW + Duration::seconds(seconds) + Duration::nanoseconds(nanoseconds))
                .to_offset(UtcOffset::from_hms(offset_hours, 0, 0).unwrap())
        })
}

fn grant() -> impl Strategy<Value = Grant> {
    (
        key(),
        prop::option::of(instant()),
        prop::option::of(instant()),
    )
        .prop_map(|(key, starts_at, expires_at)| Grant {
            key,
            starts_at,
            expires_at,
            reason: None,
        })
}

fn status() -> impl Strategy<Value = MemberStatus> {
    prop_oneof![
        6 => Just(MemberStatus::Active),
        1 => Just(MemberStatus::Invited),
        1 => Just(MemberStatus::Suspended),
        1 => Just(MemberStatus::Removed),
    ]
}

fn member() -> impl Strategy<Value = MemberContext> {
    (
        any::<u128>(),
        status(),
        prop::bool::weighted(0.9),
        role(),
        prop::collection::vec(key(), 0..3),
        prop::collection::vec(grant(), 0..3),
    )
        .prop_map(
            |(id, status, user_active, counts_as, extra_keys, grants)| MemberContext {
                user_id: Uuid::from_u128(id),
                status,
                user_active,
                role: RoleRef::custom(
                    "role",
                    counts_as,
                    extra_keys.into_iter().collect::<KeySet>(),
                ),
                grants: Grants::new(grants),
            },
        )
}

fn change() -> impl Strategy<Value = SettingChange> {
    (
        key(),
        prop::option::of(role()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(key, min_role, enabled)| SettingChange {
            key,
            min_role,
            enabled,
        })
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The main property: the compiled fast path agrees with the reference on every key, and
    /// explain agrees with check.
    #[test]
    fn fast_check_matches_reference_and_explain(
        chain in chain(),
        members in prop::collection::vec(member(), 1..4),
        explained_key in key(),
    ) {
        let compiled = CompiledOrg::compile(&chain, 1);
        for key in PermissionKey::ALL {
            let effective = compiled.effective(key);
            let (min_role, enabled, source, locked_by) = reference_effective(&chain, key);
            prop_assert_eq!(
                (effective.min_role, effective.enabled, effective.source, effective.locked_by),
                (min_role, enabled, source, locked_by),
                "effective setting of {}", key
            );
        }
        for member in &members {
            for key in PermissionKey::ALL {
                let reason = decide(&compiled, member, key, NOW);
                prop_assert_eq!(
                    check(&compiled, member, key, NOW),
                    reference_check(&chain, member, key, NOW),
                    "check of {} for {:?}", key, member
                );
                prop_assert_eq!(
                    reason.is_allowed(),
                    check(&compiled, member, key, NOW),
                    "decide ({:?}) and check of {} for {:?}", reason, key, member
                );
                // The compiled key sets give the same reason as the formula on the
                // resolved setting (what explain reports).
                let explained = explain(&chain, member, key, NOW);
                prop_assert_eq!(
                    explained.steps.last(),
                    Some(&ExplainStep::Decision { allowed: reason.is_allowed(), reason }),
                    "reason for {} for {:?}", key, member
                );
            }
            let explanation = explain(&chain, member, explained_key, NOW);
            prop_assert_eq!(explanation.allowed, check(&compiled, member, explained_key, NOW));
            prop_assert_eq!(&explanation.effective, compiled.effective(explained_key));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn explain_matches_check_on_every_key(chain in chain(), member in member()) {
        let compiled = CompiledOrg::compile(&chain, 1);
        for key in PermissionKey::ALL {
            prop_assert_eq!(explain(&chain, &member, key, NOW).allowed, check(&compiled, &member, key, NOW));
        }
        for row in member_matrix(&compiled, &member, NOW) {
            prop_assert_eq!(row.allowed, reference_check(&chain, &member, row.key, NOW));
        }
    }

    #[test]
    fn org_changes_respect_locks_and_take_effect(chain in chain(), changes in prop::collection::vec(change(), 0..4)) {
        let mut all_locked: Vec<(PermissionKey, ScopeRef)> = Vec::new();
        for change in &changes {
            if let Some(by) = reference_locked_above(&chain, change.key)
                && !all_locked.iter().any(|(key, _)| *key == change.key)
            {
                all_locked.push((change.key, by));
            }
        }
        match (apply_org_changes(&chain, &changes), all_locked.is_empty()) {
            (Err(UpdateSettingsError::Locked(locked)), false) => {
                let named: Vec<(PermissionKey, ScopeRef)> =
                    locked.locks().iter().map(|lock| (lock.key, lock.by)).collect();
                prop_assert_eq!(named, all_locked, "every locked key, in the order named");
            }
            (Ok(after), true) => {
                prop_assert_eq!(after.district, chain.district);
                prop_assert_eq!(after.school, chain.school);
                for key in PermissionKey::ALL {
                    let of_key: Vec<&SettingChange> = changes
                        .iter()
                        .filter(|change| change.key == key && (change.min_role.is_some() || change.enabled.is_some()))
                        .collect();
                    let (min_role, enabled, source, _) = reference_effective(&after, key);
                    if of_key.is_empty() {
                        prop_assert_eq!(after.org_settings.get(key), chain.org_settings.get(key));
                        continue;
                    }
                    prop_assert_eq!(source, ScopeRef::Org(chain.org_id));
                    if let Some(wanted) = of_key.iter().rev().find_map(|change| change.min_role) {
                        prop_assert_eq!(min_role, wanted);
                    }
                    if let Some(wanted) = of_key.iter().rev().find_map(|change| change.enabled) {
                        prop_assert_eq!(enabled, wanted);
                    }
                }
            }
            (result, _) => prop_assert!(false, "got {:?}, expected locks {:?}", result, all_locked),
        }
    }

    #[test]
    fn preview_lists_exactly_the_changed_answers(
        chain in chain(),
        changes in prop::collection::vec(change(), 0..4),
        members in prop::collection::vec(member(), 0..4),
        reset_module in prop::option::of(select(Module::ALL.to_vec())),
        reset in any::<bool>(),
    ) {
        let after_chain = if reset {
            reset_org(&chain, reset_module)
        } else {
            match apply_org_changes(&chain, &changes) {
                Ok(after) => after,
                Err(_) => return Ok(()),
            }
        };
        let changes = preview(&CompiledOrg::compile(&chain, 1), &CompiledOrg::compile(&after_chain, 2), &members, NOW);
        let mut expected = Vec::new();
        for member in &members {
            for key in PermissionKey::ALL {
                let before = reference_check(&chain, member, key, NOW);
                let after = reference_check(&after_chain, member, key, NOW);
                if before != after {
                    expected.push((member.user_id, key, after));
                }
            }
        }
        let actual: Vec<_> = changes
            .iter()
            .map(|change| (change.user_id, change.key, change.change == permissions::ChangeKind::Gained))
            .collect();
        prop_assert_eq!(actual, expected);
    }

    /// A new (or lifted) lock above the org, as a template change: the preview lists
    /// exactly the answers that change, including losses through extra keys and grants.
    #[test]
    fn preview_of_a_template_change_lists_every_changed_answer(
        chain in chain(),
        members in prop::collection::vec(member(), 0..4),
        key in key(),
        setting in prop::option::of(setting()),
        at_school in any::<bool>(),
    ) {
        let mut after_chain = chain.clone();
        let level = if at_school { after_chain.school.as_mut() } else { after_chain.district.as_mut() };
        let Some(level) = level else { return Ok(()) };
        level.settings.replace(key, setting);
        let changes = preview(&CompiledOrg::compile(&chain, 1), &CompiledOrg::compile(&after_chain, 2), &members, NOW);
        let mut expected = Vec::new();
        for member in &members {
            for key in PermissionKey::ALL {
                let before = reference_check(&chain, member, key, NOW);
                let after = reference_check(&after_chain, member, key, NOW);
                if before != after {
                    expected.push((member.user_id, key, after));
                }
            }
        }
        let actual: Vec<_> = changes
            .iter()
            .map(|change| (change.user_id, change.key, change.change == permissions::ChangeKind::Gained))
            .collect();
        prop_assert_eq!(actual, expected);
    }

    /// A grant or an extra key is refused exactly for the keys locked above, all named.
    #[test]
    fn exceptions_are_refused_exactly_for_keys_locked_above(chain in chain(), keys in prop::collection::vec(any_key(), 0..6)) {
        let keys: KeySet = keys.into_iter().collect();
        let expected: Vec<(PermissionKey, ScopeRef)> = keys
            .iter()
            .filter_map(|key| reference_locked_above(&chain, key).map(|by| (key, by)))
            .collect();
        match refuse_locked_exceptions(&chain, keys) {
            Ok(()) => prop_assert!(expected.is_empty()),
            Err(locked) => {
                let named: Vec<(PermissionKey, ScopeRef)> =
                    locked.locks().iter().map(|lock| (lock.key, lock.by)).collect();
                prop_assert_eq!(named, expected);
            }
        }
    }

    #[test]
    fn reverse_lookup_matches_reference(chain in chain(), members in prop::collection::vec(member(), 0..5), key in key()) {
        let compiled = CompiledOrg::compile(&chain, 1);
        let holders: Vec<Uuid> = members_holding(&compiled, &members, key, NOW).map(|member| member.user_id).collect();
        let expected: Vec<Uuid> = members
            .iter()
            .filter(|member| reference_check(&chain, member, key, NOW))
            .map(|member| member.user_id)
            .collect();
        prop_assert_eq!(holders, expected);
    }

    #[test]
    fn reset_restores_inheritance(chain in chain(), module in prop::option::of(select(Module::ALL.to_vec()))) {
        let after = reset_org(&chain, module);
        for key in PermissionKey::ALL {
            let in_scope = module.is_none_or(|module| key.module() == module);
            if in_scope {
                prop_assert_eq!(after.org_settings.get(key), None);
                prop_assert_ne!(resolve(&after, key).source, ScopeRef::Org(chain.org_id));
            } else {
                prop_assert_eq!(after.org_settings.get(key), chain.org_settings.get(key));
            }
        }
    }

    #[test]
    fn inputs_round_trip_through_json(chain in chain(), member in member()) {
        let chain_json = serde_json::to_string(&chain).unwrap();
        prop_assert_eq!(serde_json::from_str::<OrgChain>(&chain_json).unwrap(), chain);
        let member_json = serde_json::to_string(&member).unwrap();
        prop_assert_eq!(serde_json::from_str::<MemberContext>(&member_json).unwrap(), member);
    }
}
