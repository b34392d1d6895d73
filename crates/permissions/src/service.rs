//! [`PermissionService`]: the domain operations that need the store.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::errors::{LoadError, UpdateSettingsError};
use crate::explain::{Explanation, explain};
use crate::keys::{Module, PermissionKey};
use crate::ports::PermissionStore;
use crate::settings::{SettingChange, SettingsUpdate};

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
}

#[cfg(test)]
mod tests {
    use std::future::{Future, ready};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use mockall::predicate::eq;
    use time::macros::datetime;

    use super::*;
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
            Err(UpdateSettingsError::Locked {
                key: PermissionKey::BudgetApprove,
                by: ScopeRef::District(DISTRICT)
            })
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
            UpdateSettingsError::Locked {
                key: PermissionKey::BudgetApprove,
                by: ScopeRef::District(DISTRICT),
            },
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
}
