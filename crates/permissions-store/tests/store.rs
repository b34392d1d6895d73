//! The permission store end to end, on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: each test gets a fresh migrated database.

#[macro_use]
mod support;

use permissions::BuiltinRole::{Admin, BoardMember, CommitteeLead, Volunteer};
use permissions::{LockedKeys, NewGrant, TemplateChange, TemplateScope, TemplateUpdate};
use permissions::{
    MemberContext, MemberStatus, PermissionKey as K, PermissionService, PermissionStore, RoleRef,
    ScopeRef, ScopeSettings, ScopedSetting, SettingChange, SettingsUpdate, UpdateSettingsError,
    check, members_holding, plan_org_changes, platform_default,
};
use permissions_store::{GrantError, RevokeGrantError, TemplateError};
use support::{Env, ctx, id};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    spec_examples_end_to_end,
    version_mismatch_is_refused,
    locks_above_refuse_org_writes,
    template_changes_bump_org_versions,
    changes_write_audit_events_in_their_transaction,
    reverse_lookup_is_exact_across_pages,
    grants_are_versioned_and_audited,
    members_load_with_roles_and_grants,
    concurrent_saves_serialize_on_the_org_row,
    many_key_template_writes_are_versioned_and_all_or_nothing,
    grants_have_windows_and_locks_bind_them,
);

/// The acting admin of the audit contexts (not necessarily a stored user).
const ACTOR: Uuid = id(999);

/// Sets (or removes) one org setting through the audited save, from the current version;
/// returns the new version.
async fn set_org(env: &Env, org: Uuid, key: K, after: Option<ScopedSetting>) -> u64 {
    let version = env.version(org).await;
    let after = after.expect("set_org sets a value");
    env.store
        .save_org_settings_audited(&ctx(ACTOR), org, version, &set(key, after))
        .await
        .expect("save org setting")
}

/// The update that sets `key` to `setting`'s role and flag.
fn set(key: K, setting: ScopedSetting) -> SettingsUpdate {
    SettingsUpdate::Change(vec![SettingChange {
        key,
        min_role: Some(setting.min_role),
        enabled: Some(setting.enabled),
    }])
}

async fn member(env: &Env, org: Uuid, user: Uuid) -> MemberContext {
    env.store
        .load_member(org, user)
        .await
        .expect("load member")
        .expect("is a member")
}

async fn spec_examples_end_to_end(env: &Env) {
    assert_eq!(platform_default(K::UsersRemove).min_role, Admin);
    assert_eq!(platform_default(K::UsersEditRoles).min_role, Admin);
    assert_eq!(platform_default(K::BudgetCreate).min_role, CommitteeLead);
    let (district, school, org) = (id(1), id(2), id(3));
    env.district(district).await;
    env.school(school, Some(district)).await;
    env.org(org, Some(district), Some(school)).await;
    let admin = ctx(ACTOR);

    // The org lets volunteers approve budgets; then the district locks it to admins.
    set_org(
        env,
        org,
        K::BudgetApprove,
        Some(ScopedSetting::new(Volunteer, true)),
    )
    .await;
    let store = &env.store;
    store
        .set_district_setting(
            &admin,
            district,
            K::BudgetApprove,
            ScopedSetting::locked(Admin, true),
        )
        .await
        .expect("district lock");
    // events.create: district says board members, the school says volunteers.
    store
        .set_district_setting(
            &admin,
            district,
            K::EventsCreate,
            ScopedSetting::new(BoardMember, true),
        )
        .await
        .expect("district setting");
    store
        .set_school_setting(
            &admin,
            school,
            K::EventsCreate,
            ScopedSetting::new(Volunteer, true),
        )
        .await
        .expect("school setting");
    // events.edit: district admin, school committee lead, org board member.
    store
        .set_district_setting(
            &admin,
            district,
            K::EventsEdit,
            ScopedSetting::new(Admin, true),
        )
        .await
        .expect("district setting");
    store
        .set_school_setting(
            &admin,
            school,
            K::EventsEdit,
            ScopedSetting::new(CommitteeLead, true),
        )
        .await
        .expect("school setting");
    set_org(
        env,
        org,
        K::EventsEdit,
        Some(ScopedSetting::new(BoardMember, true)),
    )
    .await;
    // documents.delete: disabled by the org.
    set_org(
        env,
        org,
        K::DocumentsDelete,
        Some(ScopedSetting::new(Volunteer, false)),
    )
    .await;

    let (a, b, v, t, suspended, disabled, deleted) =
        (id(10), id(11), id(12), id(13), id(14), id(15), id(16));
    env.active_member(org, a, "admin").await;
    env.active_member(org, b, "board_member").await;
    env.active_member(org, v, "volunteer").await;
    let treasurer = id(20);
    env.role(
        org,
        treasurer,
        "treasurer",
        "committee_lead",
        &["budget.approve"],
    )
    .await;
    env.user(t, "active", false).await;
    env.member(org, t, Err(treasurer), "active").await;
    env.user(suspended, "active", false).await;
    env.member(org, suspended, Ok("admin"), "suspended").await;
    env.user(disabled, "disabled", false).await;
    env.member(org, disabled, Ok("admin"), "active").await;
    env.user(deleted, "active", true).await;
    env.member(org, deleted, Ok("admin"), "active").await;

    let now = OffsetDateTime::now_utc();
    let grant = |key, expires_at: Option<OffsetDateTime>| {
        store.grant(
            &admin,
            org,
            v,
            key,
            expires_at,
            Some("stand-in".to_owned()),
            Some(a),
        )
    };
    grant(K::DocumentsDelete, None).await.expect("grant");
    grant(K::UsersRemove, Some(now - Duration::hours(1)))
        .await
        .expect("grant");
    grant(K::UsersEditRoles, Some(now + Duration::days(1)))
        .await
        .expect("grant");

    let compiled = store
        .compile_org(org)
        .await
        .expect("compile")
        .expect("org exists");
    assert_eq!(compiled.generation(), env.version(org).await);
    let approve = compiled.effective(K::BudgetApprove);
    assert_eq!(
        approve.min_role, Admin,
        "the district lock beats the org override"
    );
    assert_eq!(approve.source, ScopeRef::District(district));
    assert_eq!(approve.locked_by, Some(ScopeRef::District(district)));
    let create = compiled.effective(K::EventsCreate);
    assert_eq!(
        (create.min_role, create.source),
        (Volunteer, ScopeRef::School(school))
    );
    let edit = compiled.effective(K::EventsEdit);
    assert_eq!(
        (edit.min_role, edit.source),
        (BoardMember, ScopeRef::Org(org))
    );

    let allowed =
        async |user: Uuid, key: K| check(&compiled, &member(env, org, user).await, key, now);
    assert!(allowed(a, K::BudgetApprove).await);
    assert!(
        !allowed(b, K::BudgetApprove).await,
        "lock at district beats the org override"
    );
    assert!(!allowed(v, K::BudgetApprove).await);
    assert!(
        allowed(v, K::EventsCreate).await,
        "the school setting applies below the district"
    );
    assert!(!allowed(v, K::EventsEdit).await);
    assert!(
        allowed(b, K::EventsEdit).await,
        "the org setting applies below the school"
    );
    assert!(
        !allowed(t, K::EventsEdit).await,
        "committee lead rank is below board member"
    );
    assert!(
        !allowed(v, K::DocumentsDelete).await,
        "disabled beats a grant"
    );
    assert!(!allowed(a, K::DocumentsDelete).await, "disabled beats rank");
    assert!(!allowed(v, K::UsersRemove).await, "an expired grant denies");
    assert!(
        allowed(v, K::UsersEditRoles).await,
        "an unexpired grant allows"
    );
    assert!(
        !allowed(t, K::BudgetApprove).await,
        "the district's lock makes the custom role's extra key inert"
    );
    assert!(
        allowed(t, K::BudgetCreate).await,
        "custom role counts as committee lead"
    );
    assert!(!allowed(t, K::UsersRemove).await);
    for key in K::ALL {
        assert!(
            !allowed(suspended, key).await,
            "suspended member denied {key}"
        );
        assert!(!allowed(disabled, key).await, "disabled user denied {key}");
        assert!(
            !allowed(deleted, key).await,
            "soft-deleted user denied {key}"
        );
    }

    // The domain service over the store agrees.
    let service = PermissionService::new(store.with_context(admin.clone()));
    assert_eq!(
        service.check(org, b, K::BudgetApprove, now).await,
        Ok(false)
    );
    assert_eq!(service.check(org, t, K::BudgetCreate, now).await, Ok(true));
    assert_eq!(
        service.check(org, t, K::BudgetApprove, now).await,
        Ok(false),
        "locked above: the extra key is inert"
    );
    assert_eq!(
        service.check(org, id(77), K::BudgetView, now).await,
        Ok(false)
    );
    assert_eq!(
        service.check(id(78), a, K::BudgetView, now).await,
        Ok(false)
    );
}

async fn version_mismatch_is_refused(env: &Env) {
    let org = id(3);
    env.org(org, None, None).await;
    assert_eq!(env.version(org).await, 1);
    let v2 = set_org(
        env,
        org,
        K::EventsView,
        Some(ScopedSetting::new(Admin, true)),
    )
    .await;
    assert_eq!(v2, 2);
    let events = env.audit_count().await;
    let (before, _) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    let write = set(K::BudgetView, ScopedSetting::new(Admin, false));
    assert_eq!(
        env.store
            .save_org_settings_audited(&ctx(ACTOR), org, 1, &write)
            .await,
        Err(UpdateSettingsError::VersionMismatch {
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(
        env.store
            .save_org_settings(org, 3, &SettingsUpdate::Change(vec![]))
            .await,
        Err(UpdateSettingsError::VersionMismatch {
            expected: 3,
            actual: 2
        })
    );
    let (after, version) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    assert_eq!((after, version), (before, 2), "nothing was written");
    assert_eq!(
        env.audit_count().await,
        events,
        "no audit event for a refused save"
    );
    // No writes: the version is checked and returned unchanged.
    assert_eq!(
        env.store
            .save_org_settings(org, 2, &SettingsUpdate::Change(vec![]))
            .await,
        Ok(2)
    );
    // Writes that change nothing neither bump nor record.
    let same = set(K::EventsView, ScopedSetting::new(Admin, true));
    assert_eq!(env.store.save_org_settings(org, 2, &same).await, Ok(2));
    assert_eq!(env.audit_count().await, events);
    assert_eq!(
        env.store.save_org_settings(id(404), 1, &write).await,
        Err(UpdateSettingsError::NotFound)
    );
}

async fn locks_above_refuse_org_writes(env: &Env) {
    let (district, school, org) = (id(1), id(2), id(3));
    env.district(district).await;
    env.school(school, Some(district)).await;
    env.org(org, Some(district), Some(school)).await;
    let admin = ctx(ACTOR);
    set_org(
        env,
        org,
        K::BudgetView,
        Some(ScopedSetting::new(Admin, true)),
    )
    .await;
    // A caller plans against the chain as it is now…
    let (stale, _) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    // …while locks are added above.
    env.store
        .set_district_setting(
            &admin,
            district,
            K::BudgetApprove,
            ScopedSetting::locked(Admin, true),
        )
        .await
        .expect("district lock");
    env.store
        .set_school_setting(
            &admin,
            school,
            K::UsersView,
            ScopedSetting::locked(CommitteeLead, true),
        )
        .await
        .expect("school lock");
    env.store
        .set_district_setting(
            &admin,
            district,
            K::BudgetView,
            ScopedSetting::locked(Volunteer, true),
        )
        .await
        .expect("district lock over an org setting");
    let version = env.version(org).await;
    let events = env.audit_count().await;
    let change = |key, enabled| SettingChange {
        key,
        min_role: None,
        enabled: Some(enabled),
    };

    // The caller's (stale) view saw no lock; the store plans against the settings in
    // force and refuses.
    plan_org_changes(&stale, &[change(K::BudgetApprove, false)])
        .expect("not locked in the stale chain");
    let update = SettingsUpdate::Change(vec![change(K::BudgetApprove, false)]);
    assert_eq!(
        env.store
            .save_org_settings_audited(&admin, org, version, &update)
            .await,
        Err(UpdateSettingsError::Locked(LockedKeys::one(
            K::BudgetApprove,
            ScopeRef::District(district)
        )))
    );
    let changes = [change(K::EventsCreate, false), change(K::UsersView, false)];
    let writes = plan_org_changes(&stale, &changes).expect("not locked in the stale chain");
    assert_eq!(writes.len(), 2);
    let update = SettingsUpdate::Change(changes.to_vec());
    assert_eq!(
        env.store
            .save_org_settings_audited(&admin, org, version, &update)
            .await,
        Err(UpdateSettingsError::Locked(LockedKeys::one(
            K::UsersView,
            ScopeRef::School(school)
        )))
    );
    // Even with a stale version, the lock is what the caller is told about.
    let update = SettingsUpdate::Change(vec![change(K::BudgetApprove, false)]);
    assert!(matches!(
        env.store
            .save_org_settings_audited(&admin, org, 1, &update)
            .await,
        Err(UpdateSettingsError::Locked { .. })
    ));
    assert_eq!(env.version(org).await, version, "all or nothing");
    assert_eq!(env.audit_count().await, events);
    let (chain, _) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    assert_eq!(chain.org_settings, stale.org_settings);

    // The domain service (fresh chain) refuses the same way.
    let service = PermissionService::new(env.store.with_context(admin.clone()));
    assert_eq!(
        service
            .update_settings(org, version, &[change(K::UsersView, false)])
            .await,
        Err(UpdateSettingsError::Locked(LockedKeys::one(
            K::UsersView,
            ScopeRef::School(school)
        )))
    );
    // Removing the org's own (shadowed) setting of a locked key is a reset, not refused.
    let reset = service
        .reset_settings(org, version, Some(K::BudgetView.module()))
        .await;
    assert_eq!(reset, Ok(version + 1));
    let (chain, _) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    assert!(chain.org_settings.is_empty());
}

async fn template_changes_bump_org_versions(env: &Env) {
    let (district, other_district, school) = (id(1), id(2), id(3));
    let (o1, o2, o3, o4) = (id(10), id(11), id(12), id(13));
    env.district(district).await;
    env.district(other_district).await;
    env.school(school, Some(district)).await;
    env.org(o1, Some(district), None).await;
    env.org(o2, Some(district), Some(school)).await;
    env.org(o3, None, None).await;
    env.org(o4, Some(other_district), None).await;
    let admin = ctx(ACTOR);
    let store = &env.store;
    let versions = async || {
        let mut all = Vec::new();
        for org in [o1, o2, o3, o4] {
            all.push(env.version(org).await);
        }
        all
    };
    let mut below_district = vec![o1, o2];
    below_district.sort();

    let cached = store.compile_org(o1).await.expect("compile").expect("org");
    let lock = ScopedSetting::locked(BoardMember, true);
    assert_eq!(
        store
            .set_district_setting(&admin, district, K::BudgetApprove, lock)
            .await
            .expect("set"),
        below_district
    );
    assert_eq!(versions().await, [2, 2, 1, 1]);
    assert_ne!(
        Some(cached.generation()),
        store.permissions_version(o1).await.expect("version"),
        "cached table is stale"
    );
    let fresh = store.compile_org(o1).await.expect("compile").expect("org");
    assert_eq!(
        fresh.effective(K::BudgetApprove).locked_by,
        Some(ScopeRef::District(district))
    );

    // The same setting again changes nothing.
    assert_eq!(
        store
            .set_district_setting(&admin, district, K::BudgetApprove, lock)
            .await
            .expect("set"),
        Vec::<Uuid>::new()
    );
    assert_eq!(versions().await, [2, 2, 1, 1]);

    let school_setting = ScopedSetting::new(CommitteeLead, false);
    assert_eq!(
        store
            .set_school_setting(&admin, school, K::EventsView, school_setting)
            .await
            .expect("set"),
        [o2]
    );
    assert_eq!(versions().await, [2, 3, 1, 1]);
    // A school cannot set what its district locked.
    assert!(matches!(
        store.set_school_setting(&admin, school, K::BudgetApprove, ScopedSetting::new(Volunteer, true)).await,
        Err(TemplateError::Locked(locked)) if locked == LockedKeys::one(K::BudgetApprove, ScopeRef::District(district))
    ));
    assert_eq!(versions().await, [2, 3, 1, 1]);

    let mut expected = ScopeSettings::new();
    expected.set(K::BudgetApprove, lock);
    assert_eq!(
        store.list_district_settings(district).await.expect("list"),
        Some(expected)
    );
    assert_eq!(
        store
            .list_district_settings(other_district)
            .await
            .expect("list"),
        Some(ScopeSettings::new())
    );
    assert_eq!(
        store.list_district_settings(id(404)).await.expect("list"),
        None
    );
    let mut expected_school = ScopeSettings::new();
    expected_school.set(K::EventsView, school_setting);
    assert_eq!(
        store.list_school_settings(school).await.expect("list"),
        Some(expected_school)
    );
    assert_eq!(
        store.list_school_settings(id(404)).await.expect("list"),
        None
    );

    assert_eq!(
        store
            .clear_school_setting(&admin, school, K::EventsView)
            .await
            .expect("clear"),
        [o2]
    );
    assert_eq!(
        store
            .clear_school_setting(&admin, school, K::EventsView)
            .await
            .expect("clear"),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        store
            .clear_district_setting(&admin, district, K::BudgetApprove)
            .await
            .expect("clear"),
        below_district
    );
    assert_eq!(versions().await, [3, 5, 1, 1]);
    assert_eq!(
        store.list_district_settings(district).await.expect("list"),
        Some(ScopeSettings::new())
    );

    assert!(matches!(
        store
            .set_district_setting(&admin, id(404), K::BudgetView, lock)
            .await,
        Err(TemplateError::NotFound)
    ));
    assert!(matches!(
        store
            .clear_school_setting(&admin, id(404), K::BudgetView)
            .await,
        Err(TemplateError::NotFound)
    ));
}

/// The audit rows of a chain's tenant, oldest first:
/// `(action, entity_type, entity_id, change_type, actor_kind, actor_id)`.
async fn audit_rows(
    env: &Env,
    column: &str,
    tenant: Uuid,
) -> Vec<(String, String, String, String, String, Option<Uuid>)> {
    let sql = format!(
        "SELECT action, entity_type, entity_id, change_type, actor_kind, actor_id FROM audit_events \
         WHERE {column} = ? ORDER BY chain_id, seq"
    );
    env.rows(&sql, vec![tenant.into()])
        .await
        .iter()
        .map(|row| {
            let get = |col: &str| row.try_get::<String>("", col).expect(col);
            (
                get("action"),
                get("entity_type"),
                get("entity_id"),
                get("change_type"),
                get("actor_kind"),
                row.try_get::<Option<Uuid>>("", "actor_id")
                    .expect("actor_id"),
            )
        })
        .collect()
}

async fn changes_write_audit_events_in_their_transaction(env: &Env) {
    let (district, org, user) = (id(1), id(3), id(10));
    env.district(district).await;
    env.org(org, Some(district), None).await;
    env.active_member(org, user, "volunteer").await;
    let admin = ctx(ACTOR);
    let service = PermissionService::new(env.store.with_context(admin.clone()));
    let start = env.audit_count().await;
    let change = |key, min_role| SettingChange {
        key,
        min_role: Some(min_role),
        enabled: None,
    };

    let v2 = service
        .update_settings(
            org,
            1,
            &[
                change(K::EventsView, Admin),
                change(K::EventsCreate, Admin),
                change(K::BudgetView, BoardMember),
            ],
        )
        .await
        .expect("update");
    assert_eq!(v2, 2);
    assert_eq!(
        env.audit_count().await,
        start + 3,
        "one event per changed key"
    );
    let v3 = service
        .update_settings(org, v2, &[change(K::EventsView, BoardMember)])
        .await
        .expect("update");
    assert_eq!(
        service
            .update_settings(org, v2, &[change(K::EventsView, Volunteer)])
            .await,
        Err(UpdateSettingsError::VersionMismatch {
            expected: v2,
            actual: v3
        })
    );
    assert_eq!(
        env.audit_count().await,
        start + 4,
        "a refused save records nothing"
    );
    let v4 = service.reset_settings(org, v3, None).await.expect("reset");
    assert_eq!(v4, v3 + 1);
    assert_eq!(env.audit_count().await, start + 7);
    // The bare port audits as the system.
    let write = set(K::UsersView, ScopedSetting::new(Admin, true));
    assert_eq!(
        env.store.save_org_settings(org, v4, &write).await,
        Ok(v4 + 1)
    );

    let user_actor = |entity: &str, change: &str| {
        (
            "permission.update".to_owned(),
            "permission_setting".to_owned(),
            entity.to_owned(),
            change.to_owned(),
            "user".to_owned(),
            Some(ACTOR),
        )
    };
    let mut expected = vec![
        user_actor("budget.view", "CREATE"),
        user_actor("events.view", "CREATE"),
        user_actor("events.create", "CREATE"),
    ];
    // Writes are planned in catalog order: budget.* before events.*.
    expected.sort_by_key(|row| K::parse(&row.2).expect("key").index());
    expected.push(user_actor("events.view", "UPDATE"));
    let mut resets = vec![
        user_actor("budget.view", "RESET"),
        user_actor("events.view", "RESET"),
        user_actor("events.create", "RESET"),
    ];
    resets.sort_by_key(|row| K::parse(&row.2).expect("key").index());
    expected.extend(resets);
    expected.push((
        "permission.update".to_owned(),
        "permission_setting".to_owned(),
        "users.view".to_owned(),
        "CREATE".to_owned(),
        "system".to_owned(),
        None,
    ));
    assert_eq!(audit_rows(env, "org_id", org).await, expected);

    // Old and new values are the settings; request metadata is the caller's.
    let rows = env
        .rows(
            "SELECT old_value, new_value, ip, request_id, district_id FROM audit_events \
             WHERE org_id = ? AND change_type = 'UPDATE'",
            vec![org.into()],
        )
        .await;
    assert_eq!(rows.len(), 1);
    let json = |col: &str| {
        rows[0]
            .try_get::<Option<serde_json::Value>>("", col)
            .expect(col)
    };
    assert_eq!(
        json("old_value"),
        Some(serde_json::json!({"min_role": "admin", "enabled": true, "locked": false}))
    );
    assert_eq!(
        json("new_value"),
        Some(serde_json::json!({"min_role": "board_member", "enabled": true, "locked": false}))
    );
    // The acting user's request fields are personal (issue #17): sealed under their key,
    // so the column stays empty; opened with the key they read as sent.
    assert_eq!(
        rows[0].try_get::<Option<String>>("", "ip").expect("ip"),
        None
    );
    let log = audit_store::SeaOrmAuditLog::new(env.db.clone());
    let chain = audit::TenantScope::org(org).chain_id();
    let mut events = audit::AuditLog::chain_events(&log, chain, 1, 10_000)
        .await
        .expect("chain");
    audit_store::open_events(env.db.primary(), &mut events)
        .await
        .expect("opened");
    assert!(
        events
            .iter()
            .any(|e| e.body.ip.as_deref() == Some("192.0.2.1")),
        "the caller's address is kept, sealed"
    );
    assert_eq!(
        rows[0]
            .try_get::<Option<String>>("", "request_id")
            .expect("request_id")
            .as_deref(),
        Some("req-1")
    );
    assert_eq!(
        rows[0]
            .try_get::<Option<Uuid>>("", "district_id")
            .expect("district_id"),
        Some(district)
    );

    // Templates are recorded in the district's chain (and echoed in each org's below),
    // grants in the org's.
    let before = env.audit_count().await;
    env.store
        .set_district_setting(
            &admin,
            district,
            K::BudgetApprove,
            ScopedSetting::locked(Admin, true),
        )
        .await
        .expect("set");
    env.store
        .grant(&admin, org, user, K::UsersRemove, None, None, None)
        .await
        .expect("grant");
    assert!(
        env.store
            .revoke_grant(&admin, org, user, K::UsersRemove)
            .await
            .expect("revoke")
    );
    // The template's event, its echo in the org below, the grant, the revoke.
    assert_eq!(env.audit_count().await, before + 4);
    let inherited = env
        .count(
            "SELECT COUNT(*) AS n FROM audit_events WHERE org_id = ? AND district_id = ? \
             AND action = 'permission.inherited_update' AND entity_id = 'budget.approve'",
            vec![org.into(), district.into()],
        )
        .await;
    assert_eq!(inherited, 1, "the org's chain records the inherited change");
    let district_rows = env
        .count(
            "SELECT COUNT(*) AS n FROM audit_events WHERE district_id = ? AND org_id IS NULL \
             AND entity_type = 'district_permission_setting' AND entity_id = 'budget.approve' AND change_type = 'CREATE'",
            vec![district.into()],
        )
        .await;
    assert_eq!(district_rows, 1);
    let org_rows = audit_rows(env, "org_id", org).await;
    let grant_entity = format!("{user}:users.remove");
    assert_eq!(
        org_rows[org_rows.len() - 2..],
        [
            (
                "permission.grant".to_owned(),
                "permission_grant".to_owned(),
                grant_entity.clone(),
                "CREATE".to_owned(),
                "user".to_owned(),
                Some(ACTOR)
            ),
            (
                "permission.revoke".to_owned(),
                "permission_grant".to_owned(),
                grant_entity,
                "DELETE".to_owned(),
                "user".to_owned(),
                Some(ACTOR)
            ),
        ]
    );
    // Every change and its events committed together: the settings rows match the log.
    let settings = env
        .count(
            "SELECT COUNT(*) AS n FROM org_permission_settings WHERE org_id = ?",
            vec![org.into()],
        )
        .await;
    assert_eq!(settings, 1, "users.view only, after the reset");
}

async fn reverse_lookup_is_exact_across_pages(env: &Env) {
    let org = id(3);
    env.org(org, None, None).await;
    let admin = ctx(ACTOR);
    let (treasurer, helper, cochair) = (id(20), id(21), id(22));
    env.role(
        org,
        treasurer,
        "treasurer",
        "committee_lead",
        &["budget.approve", "users.remove"],
    )
    .await;
    env.role(
        org,
        helper,
        "helper",
        "volunteer",
        &["events.delete", "no.such_key"],
    )
    .await;
    env.role(org, cochair, "co-chair", "admin", &[]).await;
    set_org(
        env,
        org,
        K::CommunicationsDelete,
        Some(ScopedSetting::new(Volunteer, false)),
    )
    .await;
    set_org(
        env,
        org,
        K::BudgetApprove,
        Some(ScopedSetting::new(Admin, true)),
    )
    .await;
    set_org(
        env,
        org,
        K::EventsView,
        Some(ScopedSetting::new(CommitteeLead, true)),
    )
    .await;

    let now = OffsetDateTime::now_utc();
    for i in 0..45_u128 {
        let user = id(1000 + i);
        let status = match i {
            _ if i % 5 == 0 => "suspended",
            _ if i % 7 == 0 => "invited",
            _ => "active",
        };
        env.user(
            user,
            if i % 11 == 0 { "disabled" } else { "active" },
            i % 13 == 0,
        )
        .await;
        let role = match i % 8 {
            0 => Ok("admin"),
            1 => Ok("board_member"),
            2 => Ok("committee_lead"),
            3 | 7 => Ok("volunteer"),
            4 => Err(treasurer),
            5 => Err(helper),
            _ => Err(cochair),
        };
        env.member(org, user, role, status).await;
        let grant = |key, expires_at| {
            env.store
                .grant(&admin, org, user, key, expires_at, None, None)
        };
        if i % 3 == 0 {
            grant(K::BudgetApprove, None).await.expect("grant");
        }
        if i % 4 == 0 {
            grant(K::UsersRemove, Some(now - Duration::minutes(5)))
                .await
                .expect("grant");
        }
        if i % 6 == 1 {
            grant(K::EventsDelete, Some(now + Duration::days(2)))
                .await
                .expect("grant");
        }
        if i % 9 == 2 {
            grant(K::CommunicationsDelete, None).await.expect("grant");
        }
    }

    let compiled = env
        .store
        .compile_org(org)
        .await
        .expect("compile")
        .expect("org");
    let members = env.store.load_members(org).await.expect("members");
    assert_eq!(members.len(), 45);
    let mut saw_nonempty = false;
    for key in K::ALL {
        let expected: Vec<Uuid> = members_holding(&compiled, &members, key, now)
            .map(|m| m.user_id)
            .collect();
        saw_nonempty |= !expected.is_empty() && expected.len() < members.len();
        for limit in [1, 3, 7, 100] {
            let mut got = Vec::new();
            let mut cursor = None;
            loop {
                let page = env
                    .store
                    .members_holding(org, key, now, cursor, limit)
                    .await
                    .expect("lookup")
                    .expect("org exists");
                assert!(page.user_ids.len() <= limit);
                got.extend(page.user_ids.iter().copied());
                match page.next_cursor {
                    Some(next) => {
                        assert_eq!(
                            page.user_ids.len(),
                            limit,
                            "only full pages have a successor"
                        );
                        assert_eq!(Some(&next), page.user_ids.last());
                        cursor = Some(next);
                    }
                    None => break,
                }
            }
            assert_eq!(got, expected, "{key} with pages of {limit}");
        }
    }
    assert!(saw_nonempty);
    let disabled = env
        .store
        .members_holding(org, K::CommunicationsDelete, now, None, 10)
        .await
        .expect("lookup")
        .expect("org");
    assert!(
        disabled.user_ids.is_empty() && disabled.next_cursor.is_none(),
        "disabled beats grants"
    );
    let extra: Vec<Uuid> = members_holding(&compiled, &members, K::UsersRemove, now)
        .map(|m| m.user_id)
        .collect();
    assert!(extra.iter().any(|u| {
        members
            .iter()
            .any(|m| m.user_id == *u && m.role.name == "treasurer")
    }));
    assert_eq!(
        env.store
            .members_holding(id(404), K::BudgetView, now, None, 10)
            .await,
        Ok(None)
    );
}

async fn grants_are_versioned_and_audited(env: &Env) {
    let (org, v, admin_user, outsider) = (id(3), id(10), id(11), id(12));
    env.org(org, None, None).await;
    env.active_member(org, v, "volunteer").await;
    env.active_member(org, admin_user, "admin").await;
    env.user(outsider, "active", false).await;
    let admin = ctx(admin_user);
    let store = &env.store;
    let reason = Some("treasurer away".to_owned());

    let events = env.audit_count().await;
    assert_eq!(
        store
            .grant(
                &admin,
                org,
                v,
                K::UsersRemove,
                None,
                reason.clone(),
                Some(admin_user)
            )
            .await
            .expect("grant"),
        2
    );
    assert_eq!(
        store
            .grant(
                &admin,
                org,
                v,
                K::UsersRemove,
                None,
                reason.clone(),
                Some(admin_user)
            )
            .await
            .expect("same grant"),
        2
    );
    assert_eq!(
        env.audit_count().await,
        events + 1,
        "an identical grant changes nothing"
    );
    let expires = OffsetDateTime::now_utc() + Duration::days(3);
    assert_eq!(
        store
            .grant(
                &admin,
                org,
                v,
                K::UsersRemove,
                Some(expires),
                reason.clone(),
                Some(admin_user)
            )
            .await
            .expect("regrant"),
        3
    );
    assert_eq!(
        store
            .grant(&admin, org, v, K::BudgetApprove, None, None, None)
            .await
            .expect("grant"),
        4
    );
    assert_eq!(env.audit_count().await, events + 3);

    assert!(matches!(
        store
            .grant(&admin, org, outsider, K::UsersRemove, None, None, None)
            .await,
        Err(GrantError::NotMember)
    ));
    assert!(matches!(
        store
            .grant(&admin, id(404), v, K::UsersRemove, None, None, None)
            .await,
        Err(GrantError::OrgNotFound)
    ));
    assert!(matches!(
        store
            .grant(
                &admin,
                org,
                v,
                K::UsersRemove,
                None,
                Some("x".repeat(501)),
                None
            )
            .await,
        Err(GrantError::ReasonTooLong)
    ));
    assert!(matches!(
        store.revoke_grant(&admin, id(404), v, K::UsersRemove).await,
        Err(RevokeGrantError::OrgNotFound)
    ));
    assert_eq!(env.version(org).await, 4);

    let listed = store.list_grants(org, Some(v)).await.expect("list");
    assert_eq!(listed.len(), 2);
    let remove = listed
        .iter()
        .find(|g| g.grant.key == K::UsersRemove)
        .expect("users.remove grant");
    assert_eq!(
        remove.grant.expires_at,
        Some(audit::truncate_to_micros(expires))
    );
    assert_eq!(remove.grant.reason, reason);
    assert_eq!(remove.granted_by, Some(admin_user));
    assert_eq!(store.list_grants(org, None).await.expect("list"), listed);
    assert!(
        store
            .list_grants(org, Some(admin_user))
            .await
            .expect("list")
            .is_empty()
    );
    let loaded = member(env, org, v).await;
    assert_eq!(loaded.grants.len(), 2);
    assert!(
        loaded
            .grants
            .holds(K::UsersRemove, OffsetDateTime::now_utc())
    );
    assert!(!loaded.grants.holds(K::UsersRemove, expires));

    assert!(
        store
            .revoke_grant(&admin, org, v, K::UsersRemove)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_grant(&admin, org, v, K::UsersRemove)
            .await
            .expect("revoke again")
    );
    assert_eq!(env.version(org).await, 5);
    assert_eq!(env.audit_count().await, events + 4);
    assert_eq!(
        store.list_grants(org, Some(v)).await.expect("list").len(),
        1
    );
}

async fn members_load_with_roles_and_grants(env: &Env) {
    let (district, org) = (id(1), id(3));
    env.district(district).await;
    env.org(org, Some(district), None).await;
    let role = id(20);
    env.role(
        org,
        role,
        "treasurer",
        "board_member",
        &["budget.approve", "retired.key"],
    )
    .await;
    let (a, b, c, d) = (id(10), id(11), id(12), id(13));
    env.active_member(org, a, "admin").await;
    env.user(b, "active", false).await;
    env.member(org, b, Err(role), "invited").await;
    env.user(c, "disabled", false).await;
    env.member(org, c, Ok("volunteer"), "active").await;
    env.user(d, "active", true).await;
    env.member(org, d, Ok("committee_lead"), "suspended").await;
    let past = OffsetDateTime::now_utc() - Duration::days(1);
    env.store
        .grant(
            &ctx(ACTOR),
            org,
            b,
            K::EventsDelete,
            Some(past),
            Some("fair".to_owned()),
            None,
        )
        .await
        .expect("grant");
    env.store
        .grant(&ctx(ACTOR), org, b, K::BudgetView, None, None, None)
        .await
        .expect("grant");

    let loaded = member(env, org, b).await;
    assert_eq!(loaded.status, MemberStatus::Invited);
    assert!(loaded.user_active);
    assert_eq!(loaded.role.name, "treasurer");
    assert_eq!(loaded.role.counts_as, BoardMember);
    assert_eq!(
        loaded.role.extra_keys.iter().collect::<Vec<_>>(),
        [K::BudgetApprove],
        "unknown keys are skipped"
    );
    let mut grant_keys: Vec<K> = loaded.grants.as_slice().iter().map(|g| g.key).collect();
    grant_keys.sort();
    assert_eq!(
        grant_keys,
        [K::BudgetView, K::EventsDelete],
        "expired grants are loaded too"
    );
    assert_eq!(
        loaded
            .grants
            .of_key(K::EventsDelete)
            .next()
            .map(|g| (g.expires_at, g.reason.clone())),
        Some((
            Some(audit::truncate_to_micros(past)),
            Some("fair".to_owned())
        ))
    );
    assert_eq!(
        member(env, org, a).await,
        MemberContext::active(a, RoleRef::builtin(Admin))
    );
    assert!(!member(env, org, c).await.user_active, "disabled user");
    let suspended = member(env, org, d).await;
    assert!(!suspended.user_active, "soft-deleted user");
    assert_eq!(suspended.status, MemberStatus::Suspended);
    assert_eq!(env.store.load_member(org, id(404)).await, Ok(None));
    assert_eq!(env.store.load_member(id(404), a).await, Ok(None));

    let all = env.store.load_members(org).await.expect("members");
    let mut ids = vec![a, b, c, d];
    ids.sort();
    assert_eq!(all.iter().map(|m| m.user_id).collect::<Vec<_>>(), ids);
    for m in &all {
        assert_eq!(*m, member(env, org, m.user_id).await);
    }
    assert!(
        env.store
            .load_members(id(404))
            .await
            .expect("members")
            .is_empty()
    );

    // The port's chain is the versioned chain.
    let (chain, version) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    assert_eq!(version, 3, "two grants bumped the version");
    assert_eq!(chain.district.map(|l| l.id), Some(district));
    assert_eq!(chain.school, None);
    assert_eq!(
        PermissionStore::load_org_chain(&env.store, org)
            .await
            .expect("load"),
        Some(chain.clone())
    );
    assert_eq!(env.store.load_org_chain_versioned(id(404)).await, Ok(None));
    assert_eq!(env.store.permissions_version(id(404)).await, Ok(None));
}

async fn concurrent_saves_serialize_on_the_org_row(env: &Env) {
    let org = id(3);
    env.org(org, None, None).await;
    let events = env.audit_count().await;
    let keys = [
        K::EventsView,
        K::EventsCreate,
        K::BudgetView,
        K::UsersView,
        K::DocumentsView,
        K::FundraisingView,
    ];
    let mut tasks = Vec::new();
    for key in keys {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            let write = set(key, ScopedSetting::new(Admin, true));
            store
                .save_org_settings_audited(&ctx(ACTOR), org, 1, &write)
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(version) => {
                assert_eq!(version, 2);
                won += 1;
            }
            Err(error) => assert_eq!(
                error,
                UpdateSettingsError::VersionMismatch {
                    expected: 1,
                    actual: 2
                }
            ),
        }
    }
    assert_eq!(won, 1, "exactly one save based on version 1 wins");
    assert_eq!(env.version(org).await, 2);
    assert_eq!(env.audit_count().await, events + 1);
    let (chain, _) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load")
        .expect("org");
    assert_eq!(chain.org_settings.len(), 1);
}

async fn many_key_template_writes_are_versioned_and_all_or_nothing(env: &Env) {
    let (district, school) = (id(1), id(3));
    let (o1, o2) = (id(10), id(11));
    env.district(district).await;
    env.school(school, Some(district)).await;
    env.org(o1, Some(district), None).await;
    env.org(o2, Some(district), Some(school)).await;
    let admin = ctx(ACTOR);
    let store = &env.store;
    let d = TemplateScope::District(district);
    let s = TemplateScope::School(school);
    let set = |key, setting| TemplateChange {
        key,
        setting: Some(setting),
    };
    let template = store
        .load_template(d)
        .await
        .expect("load")
        .expect("district");
    assert_eq!((template.version, template.settings.len()), (0, 0));
    assert!(
        store
            .load_template(TemplateScope::District(id(404)))
            .await
            .expect("load")
            .is_none()
    );

    let events = env.audit_count().await;
    let update = TemplateUpdate {
        expected_version: Some(0),
        changes: vec![
            set(K::BudgetApprove, ScopedSetting::locked(BoardMember, true)),
            set(K::EventsCreate, ScopedSetting::locked(Admin, true)),
            set(K::EventsView, ScopedSetting::new(Volunteer, true)),
        ],
    };
    let saved = store
        .save_template_audited(&admin, d, &update)
        .await
        .expect("saved");
    let mut below = vec![o1, o2];
    below.sort();
    assert_eq!(saved.version, 1);
    assert_eq!(saved.affected_orgs, below);
    assert_eq!(
        env.audit_count().await,
        events + 3 * 3,
        "per key: the district's event and one in each org"
    );
    assert_eq!((env.version(o1).await, env.version(o2).await), (2, 2));
    let template = store
        .load_template(d)
        .await
        .expect("load")
        .expect("district");
    assert_eq!((template.version, template.settings.len()), (1, 3));

    // Stale: refused, nothing written.
    let stale = store.save_template_audited(&admin, d, &update).await;
    assert!(matches!(
        stale,
        Err(TemplateError::VersionMismatch {
            expected: 0,
            actual: 1
        })
    ));
    // The same settings again at the current version: nothing changes.
    let again = TemplateUpdate {
        expected_version: Some(1),
        ..update.clone()
    };
    let saved = store
        .save_template_audited(&admin, d, &again)
        .await
        .expect("no-op");
    assert_eq!((saved.version, saved.affected_orgs.len()), (1, 0));
    assert_eq!(env.audit_count().await, events + 9);

    // A school naming two keys its district locked: both named, nothing written.
    let refused = store
        .save_template_audited(
            &admin,
            s,
            &TemplateUpdate {
                expected_version: Some(0),
                changes: vec![
                    set(K::DocumentsView, ScopedSetting::new(Admin, true)),
                    set(K::EventsCreate, ScopedSetting::new(Volunteer, true)),
                    set(K::BudgetApprove, ScopedSetting::new(Volunteer, true)),
                ],
            },
        )
        .await;
    let Err(TemplateError::Locked(locked)) = refused else {
        panic!("locked: {refused:?}");
    };
    assert_eq!(
        locked.keys(),
        [K::EventsCreate, K::BudgetApprove].into_iter().collect()
    );
    assert!(
        locked
            .locks()
            .iter()
            .all(|l| l.by == ScopeRef::District(district))
    );
    let template = store.load_template(s).await.expect("load").expect("school");
    assert_eq!((template.version, template.settings.len()), (0, 0));
    assert_eq!(env.version(o2).await, 2);

    // A single-key write bumps the template version too (so a many-key write based on
    // an older read is stale).
    store
        .set_district_setting(
            &admin,
            district,
            K::DocumentsView,
            ScopedSetting::new(Admin, true),
        )
        .await
        .expect("set");
    let template = store
        .load_template(d)
        .await
        .expect("load")
        .expect("district");
    assert_eq!(template.version, 2);
    let removal = TemplateUpdate {
        expected_version: Some(2),
        changes: vec![
            TemplateChange {
                key: K::EventsCreate,
                setting: None,
            },
            TemplateChange {
                key: K::DocumentsView,
                setting: None,
            },
        ],
    };
    let saved = store
        .save_template_audited(&admin, d, &removal)
        .await
        .expect("removed");
    assert_eq!(saved.version, 3);
    let template = store
        .load_template(d)
        .await
        .expect("load")
        .expect("district");
    assert_eq!(
        template.settings.keys(),
        [K::BudgetApprove, K::EventsView].into_iter().collect()
    );
}

async fn grants_have_windows_and_locks_bind_them(env: &Env) {
    let (district, org, v, admin_user) = (id(1), id(3), id(10), id(11));
    env.district(district).await;
    env.org(org, Some(district), None).await;
    env.active_member(org, v, "volunteer").await;
    env.active_member(org, admin_user, "admin").await;
    let admin = ctx(admin_user);
    let store = &env.store;
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::days(2);
    let pending = NewGrant {
        user_id: v,
        key: K::BudgetApprove,
        starts_at: Some(later),
        expires_at: Some(later + Duration::days(1)),
        reason: Some("next week".to_owned()),
        granted_by: Some(admin_user),
    };
    store
        .save_grant_audited(&admin, org, &pending)
        .await
        .expect("grant");
    let now_grant = NewGrant {
        key: K::UsersRemove,
        starts_at: None,
        expires_at: None,
        ..pending.clone()
    };
    store
        .save_grant_audited(&admin, org, &now_grant)
        .await
        .expect("grant");
    let listed = store.list_grants(org, Some(v)).await.expect("list");
    let stored = listed
        .iter()
        .find(|g| g.grant.key == K::BudgetApprove)
        .expect("stored");
    assert_eq!(
        stored.grant.starts_at.map(|t| t.unix_timestamp()),
        Some(later.unix_timestamp())
    );
    let member = store
        .load_member(org, v)
        .await
        .expect("load")
        .expect("member");
    let compiled = store.compile_org(org).await.expect("compile").expect("org");
    assert!(
        !check(&compiled, &member, K::BudgetApprove, now),
        "not started"
    );
    assert!(
        check(&compiled, &member, K::BudgetApprove, later),
        "started"
    );
    assert!(check(&compiled, &member, K::UsersRemove, now));

    // The district locks users.remove: the existing grant stays stored but is inert,
    // and a new grant of the key is refused by the store itself.
    store
        .set_district_setting(
            &admin,
            district,
            K::UsersRemove,
            ScopedSetting::locked(Admin, true),
        )
        .await
        .expect("lock");
    let compiled = store.compile_org(org).await.expect("compile").expect("org");
    assert!(
        !check(&compiled, &member, K::UsersRemove, now),
        "inert under the lock"
    );
    assert_eq!(
        store.list_grants(org, Some(v)).await.expect("list").len(),
        2
    );
    let refused = store
        .save_grant_audited(
            &admin,
            org,
            &NewGrant {
                reason: Some("again".to_owned()),
                ..now_grant.clone()
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(GrantError::Locked(locked)) if *locked == LockedKeys::one(K::UsersRemove, ScopeRef::District(district))),
        "{refused:?}"
    );
    // Lifting the lock makes the stored grant count again.
    store
        .clear_district_setting(&admin, district, K::UsersRemove)
        .await
        .expect("unlock");
    let compiled = store.compile_org(org).await.expect("compile").expect("org");
    assert!(check(&compiled, &member, K::UsersRemove, now));
}
