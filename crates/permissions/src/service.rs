//! [`PermissionService`]: the domain operations that need the store.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::check;
use crate::compiled::CompiledOrg;
use crate::errors::{LoadError, UpdateSettingsError};
use crate::explain::{Explanation, explain};
use crate::keys::{Module, PermissionKey};
use crate::ports::PermissionStore;
use crate::settings::{SettingChange, SettingWrite, plan_org_changes, plan_reset};

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
    /// `expected_version`; returns the new version.
    ///
    /// # Errors
    /// [`UpdateSettingsError::Locked`] (checked before anything is written) for a key locked
    /// above the org, [`UpdateSettingsError::NotFound`] for an unknown org, and the store's
    /// errors ([`UpdateSettingsError::VersionMismatch`], [`UpdateSettingsError::Unexpected`]).
    pub async fn update_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        changes: &[SettingChange],
    ) -> Result<u64, UpdateSettingsError> {
        let chain = self
            .store
            .load_org_chain(org_id)
            .await?
            .ok_or(UpdateSettingsError::NotFound)?;
        let writes = plan_org_changes(&chain, changes)?;
        self.save(org_id, expected_version, &writes).await
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
        let chain = self
            .store
            .load_org_chain(org_id)
            .await?
            .ok_or(UpdateSettingsError::NotFound)?;
        let writes = plan_reset(&chain, module);
        self.save(org_id, expected_version, &writes).await
    }

    async fn save(
        &self,
        org_id: Uuid,
        expected_version: u64,
        writes: &[SettingWrite],
    ) -> Result<u64, UpdateSettingsError> {
        self.store
            .save_org_settings(org_id, expected_version, writes)
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
    fn update_settings_saves_the_planned_writes() {
        let mut store = store_with_chain(Some(chain()));
        store
            .expect_save_org_settings()
            .withf(|org, version, writes| {
                *org == ORG
                    && *version == 4
                    && writes.len() == 1
                    && writes[0].key == PermissionKey::EventsCreate
                    && writes[0].after == Some(ScopedSetting::new(BuiltinRole::Volunteer, true))
            })
            .times(1)
            .returning(|_, _, _| Box::pin(ready(Ok(5))));
        let service = PermissionService::new(store);
        let change = SettingChange {
            key: PermissionKey::EventsCreate,
            min_role: Some(BuiltinRole::Volunteer),
            enabled: None,
        };
        assert_eq!(block_on(service.update_settings(ORG, 4, &[change])), Ok(5));
    }

    #[test]
    fn update_settings_refuses_a_locked_key_without_saving() {
        let mut store = store_with_chain(Some(chain()));
        store.expect_save_org_settings().never();
        let service = PermissionService::new(store);
        let change = SettingChange {
            key: PermissionKey::BudgetApprove,
            min_role: None,
            enabled: Some(false),
        };
        assert_eq!(
            block_on(service.update_settings(ORG, 4, &[change])),
            Err(UpdateSettingsError::Locked {
                key: PermissionKey::BudgetApprove,
                by: ScopeRef::District(DISTRICT)
            })
        );
    }

    #[test]
    fn update_settings_reports_unknown_org_and_store_errors() {
        let mut store = store_with_chain(None);
        store.expect_save_org_settings().never();
        let service = PermissionService::new(store);
        assert_eq!(
            block_on(service.update_settings(ORG, 1, &[])),
            Err(UpdateSettingsError::NotFound)
        );

        let mut failing = MockPermissionStore::new();
        failing
            .expect_load_org_chain()
            .returning(|_| Box::pin(ready(Err(LoadError::Unexpected("down".to_owned())))));
        let service = PermissionService::new(failing);
        assert!(matches!(
            block_on(service.update_settings(ORG, 1, &[])),
            Err(UpdateSettingsError::Unexpected(_))
        ));
    }

    #[test]
    fn update_settings_passes_version_mismatch_through() {
        let mut store = store_with_chain(Some(chain()));
        store
            .expect_save_org_settings()
            .returning(|_, expected, _| {
                Box::pin(ready(Err(UpdateSettingsError::VersionMismatch {
                    expected,
                    actual: expected + 1,
                })))
            });
        let service = PermissionService::new(store);
        assert_eq!(
            block_on(service.update_settings(ORG, 2, &[])),
            Err(UpdateSettingsError::VersionMismatch {
                expected: 2,
                actual: 3
            })
        );
    }

    #[test]
    fn reset_settings_deletes_the_orgs_rows_of_the_module() {
        let mut org_settings = ScopeSettings::new();
        org_settings.set(
            PermissionKey::EventsView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        org_settings.set(
            PermissionKey::BudgetView,
            ScopedSetting::new(BuiltinRole::Admin, true),
        );
        let mut store = store_with_chain(Some(chain().with_org_settings(org_settings)));
        store
            .expect_save_org_settings()
            .withf(|_, _, writes| {
                writes.len() == 1
                    && writes[0].key == PermissionKey::EventsView
                    && writes[0].after.is_none()
            })
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
