//! [`PermissionService`]: the domain operations that need the store.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::errors::{
    ExceptionKeysError, GrantError, LoadError, MAX_GRANT_REASON_CHARS, RevokeGrantError,
    TemplateError, UpdateSettingsError,
};
use crate::explain::{Explanation, explain};
use crate::grants::NewGrant;
use crate::handout::{check_grant_window, check_holds, keys_to_hand_out};
use crate::keys::{KeySet, Module, PermissionKey};
use crate::locks::refuse_locked_exceptions;
use crate::ports::PermissionStore;
use crate::settings::{SettingChange, SettingsUpdate};
use crate::template::{Template, TemplateSaved, TemplateScope, TemplateUpdate};

/// Permission operations on top of a [`PermissionStore`]: loading, validating (locks) and
/// saving (optimistic version). Pure logic stays in the free functions of this crate.
#[derive(Debug, Clone)]
pub struct PermissionService<S> {
    store: S,
}

impl<S: PermissionStore> PermissionService<S> {
    /// A service over `store`.
    #[must_use]
    pub const fn new(store: S) -> Self {
        Self { store }
    }

    /// The store.
    #[must_use]
    pub const fn store(&self) -> &S {
        &self.store
    }

    /// The compiled table of `org_id`, stamped with `generation`; `None` for an unknown org.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails.
    pub async fn compile_org(
        &self,
        org_id: Uuid,
        generation: u64,
    ) -> Result<Option<CompiledOrg>, LoadError> {
        let chain = self.store.load_org_chain(org_id).await?;
        Ok(chain.map(|chain| CompiledOrg::compile(&chain, generation)))
    }

    /// Whether `user_id` may use `key` in `org_id` at `now`; `false` for an unknown org or a
    /// non-member. Loads and compiles the org on every call: the request hot path should
    /// keep [`CompiledOrg`]s in a cache and call [`check`](crate::check()) directly.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails.
    pub async fn check(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
        now: OffsetDateTime,
    ) -> Result<bool, LoadError> {
        let Some(org) = self.compile_org(org_id, 0).await? else {
            return Ok(false);
        };
        let member = self.store.load_member(org_id, user_id).await?;
        Ok(member.is_some_and(|member| check(&org, &member, key, now)))
    }

    /// Explains the check of `key` for `user_id` in `org_id` at `now`; `None` for an unknown
    /// org or a non-member.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails.
    pub async fn explain(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
        now: OffsetDateTime,
    ) -> Result<Option<Explanation>, LoadError> {
        let Some(chain) = self.store.load_org_chain(org_id).await? else {
            return Ok(None);
        };
        let member = self.store.load_member(org_id, user_id).await?;
        Ok(member.map(|member| explain(&chain, &member, key, now)))
    }

    /// Applies `changes` to the org's settings, all or nothing, if the settings are still at
    /// `expected_version`; returns the new version. The store plans them against the
    /// org's settings under its lock ([`SettingsUpdate::plan`]): locks are checked once,
    /// against the settings in force, before anything is written.
    ///
    /// # Errors
    /// [`UpdateSettingsError::Locked`] for a key locked above the org,
    /// [`UpdateSettingsError::NotFound`] for an unknown org, and the store's errors
    /// ([`UpdateSettingsError::VersionMismatch`], [`UpdateSettingsError::Unexpected`]).
    pub async fn update_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        changes: &[SettingChange],
    ) -> Result<u64, UpdateSettingsError> {
        let update = SettingsUpdate::Change(changes.to_vec());
        self.store
            .save_org_settings(org_id, expected_version, &update)
            .await
    }

    /// Removes the org's own settings (only those of `module` when given) so it inherits
    /// again, if the settings are still at `expected_version`; returns the new version.
    ///
    /// # Errors
    /// [`UpdateSettingsError::NotFound`] for an unknown org, and the store's errors.
    pub async fn reset_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        module: Option<Module>,
    ) -> Result<u64, UpdateSettingsError> {
        self.store
            .save_org_settings(org_id, expected_version, &SettingsUpdate::Reset(module))
            .await
    }

    /// `actor` grants `grant.key` directly to member `grant.user_id` of `org_id` at `now`
    /// (recorded as granted by `actor`); returns the org's new version. The rules, in
    /// order:
    ///
    /// 1. the window `starts_at <= now < expires_at` must be able to open
    ///    ([`check_grant_window`]); the reason is at most [`MAX_GRANT_REASON_CHARS`];
    /// 2. nobody grants themselves anything;
    /// 3. a key locked above the org is refused (a grant of it would not count);
    /// 4. nobody grants what they don't hold through their own role
    ///    ([`keys_to_hand_out`]: a key disabled for the org is held by nobody).
    ///
    /// The store re-checks the lock under the org's lock when it writes.
    ///
    /// # Errors
    /// [`GrantError::Window`], [`GrantError::ReasonTooLong`], [`GrantError::SelfGrant`],
    /// [`GrantError::OrgNotFound`], [`GrantError::Locked`], [`GrantError::NotHeld`], and
    /// the store's errors.
    pub async fn grant(
        &self,
        org_id: Uuid,
        actor: Uuid,
        grant: NewGrant,
        now: OffsetDateTime,
    ) -> Result<u64, GrantError> {
        check_grant_window(grant.starts_at, grant.expires_at, now)?;
        if grant
            .reason
            .as_ref()
            .is_some_and(|reason| reason.chars().count() > MAX_GRANT_REASON_CHARS)
        {
            return Err(GrantError::ReasonTooLong);
        }
        if grant.user_id == actor {
            return Err(GrantError::SelfGrant);
        }
        let chain = self
            .store
            .load_org_chain(org_id)
            .await?
            .ok_or(GrantError::OrgNotFound)?;
        let wanted: KeySet = [grant.key].into_iter().collect();
        refuse_locked_exceptions(&chain, wanted).map_err(GrantError::Locked)?;
        let held = match self.store.load_member(org_id, actor).await? {
            Some(member) => keys_to_hand_out(&CompiledOrg::compile(&chain, 0), &member, now),
            None => KeySet::new(),
        };
        check_holds(held, wanted)?;
        let grant = NewGrant {
            granted_by: Some(actor),
            ..grant
        };
        self.store.save_grant(org_id, &grant).await
    }

    /// Revokes member `user_id`'s direct grant of `key` in `org_id`: whether there was one.
    ///
    /// # Errors
    /// The store's [`RevokeGrantError`].
    pub async fn revoke_grant(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> Result<bool, RevokeGrantError> {
        self.store.delete_grant(org_id, user_id, key).await
    }

    /// Refuses `keys` as org-level exceptions (a custom role's extra keys) when any is
    /// locked above `org_id` — every locked key is named, with who locked it. For the
    /// custom-role writes of the tenancy side, before they store the role.
    ///
    /// # Errors
    /// [`ExceptionKeysError::Locked`], [`ExceptionKeysError::OrgNotFound`],
    /// [`ExceptionKeysError::Storage`].
    pub async fn refuse_locked_exceptions(
        &self,
        org_id: Uuid,
        keys: KeySet,
    ) -> Result<(), ExceptionKeysError> {
        if keys.is_empty() {
            return Ok(());
        }
        let chain = self
            .store
            .load_org_chain(org_id)
            .await?
            .ok_or(ExceptionKeysError::OrgNotFound)?;
        refuse_locked_exceptions(&chain, keys).map_err(ExceptionKeysError::Locked)
    }

    /// The settings `scope` holds and their version; `None` for an unknown district or
    /// school.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails.
    pub async fn template(&self, scope: TemplateScope) -> Result<Option<Template>, LoadError> {
        self.store.load_template(scope).await
    }

    /// Changes `scope`'s template, all or nothing: the store plans `update` under the
    /// scope's lock ([`plan_template`](crate::plan_template): a school cannot set what its
    /// district locked; a stale `expected_version` is refused) and has every org below
    /// re-resolve.
    ///
    /// # Errors
    /// The store's [`TemplateError`].
    pub async fn change_template(
        &self,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> Result<TemplateSaved, TemplateError> {
        self.store.save_template(scope, update).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Future, ready};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use mockall::predicate::eq;
    use time::macros::datetime;

    use super::*;
    use crate::errors::StoreFailure;
    use crate::handout::GrantWindowError;
    use crate::locks::LockedKeys;
    use crate::member::{MemberContext, RoleRef};
    use crate::ports::MockPermissionStore;
    use crate::role::BuiltinRole;
    use crate::scope::{OrgChain, ScopeRef, ScopeSettings, ScopedSetting};

    const ORG: Uuid = Uuid::from_u128(0x0);
    const DISTRICT: Uuid = Uuid::from_u128(0xd);
    const USER: Uuid = Uuid::from_u128(0x1);
    const NOW: time::OffsetDateTime = datetime!(2025-03-01 9:00 UTC);

    /// Drives a future whose every await is immediately ready (the mock's futures are).
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }

    fn chain() -> OrgChain {
        let district: ScopeSettings = [(
            PermissionKey::BudgetApprove,
            ScopedSetting::locked(BuiltinRole::Admin, true),
        )]
        .into_iter()
        .collect();
        OrgChain::standalone(ORG).with_district(DISTRICT, district)
    }

    fn store_with_chain(chain: Option<OrgChain>) -> MockPermissionStore {
        let mut store = MockPermissionStore::new();
        store
            .expect_load_org_chain()
            .with(eq(ORG))
            .returning(move |_| Box::pin(ready(Ok(chain.clone()))));
        store
    }

    #[test]
    fn update_settings_hands_the_changes_to_the_store_to_plan_under_its_lock() {
        let change = SettingChange {
            key: PermissionKey::EventsCreate,
            min_role: Some(BuiltinRole::Volunteer),
            enabled: None,
        };
        let mut store = MockPermissionStore::new();
        // No chain read outside the store's transaction.
        store.expect_load_org_chain().never();
        store
            .expect_save_org_settings()
            .withf(move |org, version, update| {
                *org == ORG && *version == 4 && *update == SettingsUpdate::Change(vec![change])
            })
            .times(1)
            .returning(|_, _, _| Box::pin(ready(Ok(5))));
        let service = PermissionService::new(store);
        assert_eq!(block_on(service.update_settings(ORG, 4, &[change])), Ok(5));
    }

    #[test]
    fn a_plan_refuses_a_key_locked_above_and_writes_the_rest() {
        let locked = SettingChange {
            key: PermissionKey::BudgetApprove,
            min_role: None,
            enabled: Some(false),
        };
        let free = SettingChange {
            key: PermissionKey::EventsCreate,
            min_role: Some(BuiltinRole::Volunteer),
            enabled: None,
        };
        assert_eq!(
            SettingsUpdate::Change(vec![free, locked]).plan(&chain()),
            Err(UpdateSettingsError::Locked(LockedKeys::one(
                PermissionKey::BudgetApprove,
                ScopeRef::District(DISTRICT)
            )))
        );
        let writes = SettingsUpdate::Change(vec![free])
            .plan(&chain())
            .expect("free");
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].key, PermissionKey::EventsCreate);
        assert_eq!(
            writes[0].after,
            Some(ScopedSetting::new(BuiltinRole::Volunteer, true))
        );
    }

    #[test]
    fn update_settings_passes_the_stores_refusals_through() {
        for refusal in [
            UpdateSettingsError::NotFound,
            UpdateSettingsError::VersionMismatch {
                expected: 2,
                actual: 3,
            },
            UpdateSettingsError::Locked(LockedKeys::one(
                PermissionKey::BudgetApprove,
                ScopeRef::District(DISTRICT),
            )),
        ] {
            let mut store = MockPermissionStore::new();
            let answer = refusal.clone();
            store
                .expect_save_org_settings()
                .returning(move |_, _, _| Box::pin(ready(Err(answer.clone()))));
            let service = PermissionService::new(store);
            assert_eq!(block_on(service.update_settings(ORG, 2, &[])), Err(refusal));
        }
    }

    #[test]
    fn a_reset_plan_deletes_the_orgs_rows_of_the_module() {
        let mut org_settings = ScopeSettings::new();
        org_settings.set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        org_settings.set(
            PermissionKey::BudgetView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        let chain = chain().with_org_settings(org_settings);
        let writes = SettingsUpdate::Reset(Some(Module::Events))
            .plan(&chain)
            .expect("a reset is never locked");
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].key, PermissionKey::EventsView);
        assert!(writes[0].after.is_none());
        let mut store = MockPermissionStore::new();
        store
            .expect_save_org_settings()
            .withf(|_, _, update| *update == SettingsUpdate::Reset(Some(Module::Events)))
            .returning(|_, version, _| Box::pin(ready(Ok(version + 1))));
        let service = PermissionService::new(store);
        assert_eq!(
            block_on(service.reset_settings(ORG, 7, Some(Module::Events))),
            Ok(8)
        );
    }

    #[test]
    fn check_and_explain_load_the_org_and_the_member() {
        let mut store = store_with_chain(Some(chain()));
        store
            .expect_load_member()
            .with(eq(ORG), eq(USER))
            .returning(|_, _| {
                let member =
                    MemberContext::active(USER, RoleRef::builtin(BuiltinRole::BoardMember));
                Box::pin(ready(Ok(Some(member))))
            });
        store
            .expect_load_member()
            .returning(|_, _| Box::pin(ready(Ok(None))));
        let service = PermissionService::new(store);
        assert_eq!(
            block_on(service.check(ORG, USER, PermissionKey::BudgetDelete, NOW)),
            Ok(true)
        );
        assert_eq!(
            block_on(service.check(ORG, USER, PermissionKey::BudgetApprove, NOW)),
            Ok(false)
        );
        assert_eq!(
            block_on(service.check(ORG, Uuid::from_u128(0x99), PermissionKey::EventsView, NOW)),
            Ok(false)
        );
        let explanation = block_on(service.explain(ORG, USER, PermissionKey::BudgetApprove, NOW))
            .expect("store works")
            .expect("member exists");
        assert!(!explanation.allowed);
        assert_eq!(
            explanation.effective.locked_by,
            Some(ScopeRef::District(DISTRICT))
        );
    }

    #[test]
    fn check_on_unknown_org_is_false_without_loading_a_member() {
        let mut store = store_with_chain(None);
        store.expect_load_member().never();
        let service = PermissionService::new(store);
        assert_eq!(
            block_on(service.check(ORG, USER, PermissionKey::EventsView, NOW)),
            Ok(false)
        );
        assert_eq!(
            block_on(service.explain(ORG, USER, PermissionKey::EventsView, NOW)),
            Ok(None)
        );
        assert_eq!(block_on(service.compile_org(ORG, 1)), Ok(None));
    }

    const ADMIN: Uuid = Uuid::from_u128(0xa);

    fn new_grant(key: PermissionKey) -> NewGrant {
        NewGrant {
            user_id: USER,
            key,
            starts_at: None,
            expires_at: None,
            reason: Some("cover".to_owned()),
            granted_by: None,
        }
    }

    /// A store whose org has `chain()` and whose `ADMIN` is an admin, or a board member.
    fn store_with_actor(role: BuiltinRole) -> MockPermissionStore {
        let mut store = store_with_chain(Some(chain()));
        store
            .expect_load_member()
            .with(eq(ORG), eq(ADMIN))
            .returning(move |_, _| {
                Box::pin(ready(Ok(Some(MemberContext::active(
                    ADMIN,
                    RoleRef::builtin(role),
                )))))
            });
        store
    }

    #[test]
    fn a_grant_is_saved_as_granted_by_the_actor() {
        let mut store = store_with_actor(BuiltinRole::Admin);
        store
            .expect_save_grant()
            .withf(|org, grant| {
                *org == ORG
                    && grant.granted_by == Some(ADMIN)
                    && grant.key == PermissionKey::EventsDelete
                    && grant.user_id == USER
            })
            .times(1)
            .returning(|_, _| Box::pin(ready(Ok(9))));
        let service = PermissionService::new(store);
        let saved =
            block_on(service.grant(ORG, ADMIN, new_grant(PermissionKey::EventsDelete), NOW));
        assert_eq!(saved.expect("granted"), 9);
    }

    #[test]
    fn a_grant_breaking_a_rule_never_reaches_the_store() {
        let refused = |actor: Uuid, role: BuiltinRole, grant: NewGrant| {
            let mut store = store_with_actor(role);
            store.expect_save_grant().never();
            let service = PermissionService::new(store);
            block_on(service.grant(ORG, actor, grant, NOW)).expect_err("refused")
        };
        assert!(matches!(
            refused(
                USER,
                BuiltinRole::Admin,
                new_grant(PermissionKey::EventsView)
            ),
            GrantError::SelfGrant
        ));
        let expired = NewGrant {
            expires_at: Some(NOW),
            ..new_grant(PermissionKey::EventsView)
        };
        assert!(matches!(
            refused(ADMIN, BuiltinRole::Admin, expired),
            GrantError::Window(GrantWindowError::Expired(_))
        ));
        let backwards = NewGrant {
            starts_at: Some(NOW + time::Duration::DAY),
            expires_at: Some(NOW + time::Duration::HOUR),
            ..new_grant(PermissionKey::EventsView)
        };
        assert!(matches!(
            refused(ADMIN, BuiltinRole::Admin, backwards),
            GrantError::Window(GrantWindowError::EndsBeforeStart { .. })
        ));
        let long = NewGrant {
            reason: Some("x".repeat(MAX_GRANT_REASON_CHARS + 1)),
            ..new_grant(PermissionKey::EventsView)
        };
        assert!(matches!(
            refused(ADMIN, BuiltinRole::Admin, long),
            GrantError::ReasonTooLong
        ));
        // Locked by the district: refused even for an admin, who holds it.
        let GrantError::Locked(locked) = refused(
            ADMIN,
            BuiltinRole::Admin,
            new_grant(PermissionKey::BudgetApprove),
        ) else {
            panic!("locked");
        };
        assert_eq!(
            locked,
            LockedKeys::one(PermissionKey::BudgetApprove, ScopeRef::District(DISTRICT))
        );
        // A board member does not hold users.remove (admin by default).
        let GrantError::NotHeld(not_held) = refused(
            ADMIN,
            BuiltinRole::BoardMember,
            new_grant(PermissionKey::UsersRemove),
        ) else {
            panic!("not held");
        };
        assert_eq!(not_held.key_names(), ["users.remove"]);
    }

    #[test]
    fn a_store_outage_keeps_its_cause() {
        let mut store = MockPermissionStore::new();
        store.expect_load_org_chain().returning(|_| {
            Box::pin(ready(Err(LoadError::Unavailable(
                "connection refused".into(),
            ))))
        });
        store.expect_save_grant().never();
        let service = PermissionService::new(store);
        let error = block_on(service.grant(ORG, ADMIN, new_grant(PermissionKey::EventsView), NOW))
            .expect_err("down");
        let source = std::error::Error::source(&error).expect("a source");
        assert_eq!(
            source.downcast_ref::<LoadError>(),
            Some(&LoadError::Unavailable("connection refused".into())),
            "the store's error itself, not its text"
        );
        let mut store = MockPermissionStore::new();
        store.expect_delete_grant().returning(|_, _, _| {
            Box::pin(ready(Err(RevokeGrantError::Storage(StoreFailure::new(
                LoadError::Unavailable("gone".into()),
            )))))
        });
        let service = PermissionService::new(store);
        let error =
            block_on(service.revoke_grant(ORG, USER, PermissionKey::EventsView)).expect_err("down");
        assert!(
            std::error::Error::source(&error)
                .and_then(|s| s.downcast_ref::<LoadError>())
                .is_some_and(LoadError::is_unavailable)
        );
    }

    #[test]
    fn custom_role_extra_keys_locked_above_are_refused_all_at_once() {
        let store = store_with_chain(Some(chain()));
        let service = PermissionService::new(store);
        let keys: KeySet = [PermissionKey::BudgetApprove, PermissionKey::EventsCreate]
            .into_iter()
            .collect();
        let Err(ExceptionKeysError::Locked(locked)) =
            block_on(service.refuse_locked_exceptions(ORG, keys))
        else {
            panic!("locked");
        };
        assert_eq!(
            locked.keys(),
            [PermissionKey::BudgetApprove].into_iter().collect()
        );
        let free: KeySet = [PermissionKey::EventsCreate].into_iter().collect();
        assert!(block_on(service.refuse_locked_exceptions(ORG, free)).is_ok());
        assert!(block_on(service.refuse_locked_exceptions(ORG, KeySet::new())).is_ok());
        let service = PermissionService::new(store_with_chain(None));
        assert!(matches!(
            block_on(service.refuse_locked_exceptions(ORG, free)),
            Err(ExceptionKeysError::OrgNotFound)
        ));
    }

    #[test]
    fn template_changes_go_to_the_store_whole() {
        let scope = TemplateScope::School(Uuid::from_u128(0x5));
        let update = TemplateUpdate {
            expected_version: Some(2),
            changes: vec![
                crate::template::TemplateChange {
                    key: PermissionKey::EventsView,
                    setting: Some(ScopedSetting::new(BuiltinRole::Admin, true)),
                },
                crate::template::TemplateChange {
                    key: PermissionKey::EventsEdit,
                    setting: None,
                },
            ],
        };
        let mut store = MockPermissionStore::new();
        let expected = update.clone();
        store
            .expect_save_template()
            .withf(move |s, u| *s == scope && *u == expected)
            .times(1)
            .returning(|_, _| {
                Box::pin(ready(Ok(TemplateSaved {
                    version: 3,
                    affected_orgs: vec![ORG],
                })))
            });
        store.expect_load_template().returning(|_| {
            Box::pin(ready(Ok(Some(Template {
                settings: ScopeSettings::new(),
                version: 3,
            }))))
        });
        let service = PermissionService::new(store);
        let saved = block_on(service.change_template(scope, &update)).expect("saved");
        assert_eq!(saved.affected_orgs, [ORG]);
        assert_eq!(
            block_on(service.template(scope))
                .expect("read")
                .map(|t| t.version),
            Some(3)
        );
    }
}
