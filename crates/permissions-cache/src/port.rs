//! [`CachedPermissionStore`]: the cache behind the domain's [`PermissionStore`] port.

use permissions::{
    GrantError, LoadError, MemberContext, NewGrant, OrgChain, PermissionKey, PermissionStore,
    RevokeGrantError, SettingsUpdate, Template, TemplateError, TemplateSaved, TemplateScope,
    TemplateUpdate, UpdateSettingsError,
};
use uuid::Uuid;

use crate::error::CacheError;
use crate::permission_cache::PermissionCache;

/// A [`PermissionStore`] (typically the request's audited SeaORM store) with the cache in
/// front: members are read through the cache; saves go to the store, whose committed
/// change event reaches [`PermissionCache::org_changed`] through the app's after-commit
/// dispatcher (`persistence::Database::set_after_commit`), before the save returns.
/// Made by [`PermissionCache::port`].
///
/// Org chains are read from the inner store (the cache keeps compiled tables, not chains;
/// use [`PermissionCache::compiled_org`] for those).
#[derive(Debug, Clone)]
pub struct CachedPermissionStore<S> {
    cache: PermissionCache,
    store: S,
}

impl<S> CachedPermissionStore<S> {
    pub(crate) const fn new(cache: PermissionCache, store: S) -> Self {
        Self { cache, store }
    }

    /// The cache.
    #[must_use]
    pub const fn cache(&self) -> &PermissionCache {
        &self.cache
    }

    /// The inner store.
    #[must_use]
    pub const fn store(&self) -> &S {
        &self.store
    }
}

impl<S: PermissionStore> PermissionStore for CachedPermissionStore<S> {
    async fn load_org_chain(&self, org_id: Uuid) -> Result<Option<OrgChain>, LoadError> {
        self.store.load_org_chain(org_id).await
    }

    /// From the cache (cloned out of its `Arc`).
    async fn load_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MemberContext>, LoadError> {
        match self.cache.member(org_id, user_id, None).await {
            Ok(member) => Ok(member.map(|member| MemberContext::clone(&member))),
            Err(CacheError::Load(error)) => Err(error),
            Err(other) => Err(LoadError::Unexpected(other.to_string())),
        }
    }

    /// Saves through the inner store (its commit dispatches the invalidation). Returns
    /// the new version: the consistency token.
    async fn save_org_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        update: &SettingsUpdate,
    ) -> Result<u64, UpdateSettingsError> {
        self.store
            .save_org_settings(org_id, expected_version, update)
            .await
    }

    /// Through the inner store (its commit dispatches the invalidation).
    async fn save_grant(&self, org_id: Uuid, grant: &NewGrant) -> Result<u64, GrantError> {
        self.store.save_grant(org_id, grant).await
    }

    /// Through the inner store (its commit dispatches the invalidation).
    async fn delete_grant(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> Result<bool, RevokeGrantError> {
        self.store.delete_grant(org_id, user_id, key).await
    }

    async fn load_template(&self, scope: TemplateScope) -> Result<Option<Template>, LoadError> {
        self.store.load_template(scope).await
    }

    /// Through the inner store: its commit dispatches the invalidation of every org below.
    async fn save_template(
        &self,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> Result<TemplateSaved, TemplateError> {
        self.store.save_template(scope, update).await
    }
}
