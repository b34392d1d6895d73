//! The permission engine as the app uses it (shared by the org extractors and the
//! guard).

use std::sync::Arc;

use permissions::{CompiledOrg, KeySet, MemberContext, PermissionKey};
use permissions_cache::PermissionCache;
use permissions_store::SeaOrmPermissionStore;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::ApiError;

/// The permission engine as the app uses it: compiled org tables and member contexts
/// from the two-level cache (moka L1 → Redis L2 → store), checked with the pure
/// domain `check`.
#[derive(Clone)]
pub struct Authz {
    store: SeaOrmPermissionStore,
    cache: PermissionCache,
}

impl Authz {
    /// An engine over the store and its cache.
    #[must_use]
    pub fn new(store: SeaOrmPermissionStore, cache: PermissionCache) -> Self {
        Self { store, cache }
    }

    /// The cache (for invalidation after writes and for metrics).
    #[must_use]
    pub fn cache(&self) -> &PermissionCache {
        &self.cache
    }

    /// The underlying store (for writes and admin reads).
    #[must_use]
    pub fn store(&self) -> &SeaOrmPermissionStore {
        &self.store
    }

    /// The org's compiled table.
    pub async fn compiled(&self, org: Uuid) -> Result<Option<Arc<CompiledOrg>>, ApiError> {
        self.cache
            .compiled_org(org, crate::http::request_context::consistency_token())
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))
    }

    /// A member's context.
    pub async fn member(
        &self,
        org: Uuid,
        user: Uuid,
    ) -> Result<Option<Arc<MemberContext>>, ApiError> {
        self.cache
            .member(org, user, crate::http::request_context::consistency_token())
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))
    }

    /// Whether `user` holds `key` in `org` now (false for non-members and unknown orgs).
    pub async fn check(&self, org: Uuid, user: Uuid, key: PermissionKey) -> Result<bool, ApiError> {
        Ok(self
            .cache
            .check(
                org,
                user,
                key,
                OffsetDateTime::now_utc(),
                crate::http::request_context::consistency_token(),
            )
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))?
            .unwrap_or(false))
    }

    /// The keys `user` may hand out in `org` now ([`permissions::keys_to_hand_out`]: held
    /// through their rank or role; empty for non-members and unknown orgs). From the
    /// cache, like [`check`](Self::check).
    pub async fn keys_to_hand_out(&self, org: Uuid, user: Uuid) -> Result<KeySet, ApiError> {
        let Some(compiled) = self.compiled(org).await? else {
            return Ok(KeySet::new());
        };
        let Some(member) = self.member(org, user).await? else {
            return Ok(KeySet::new());
        };
        Ok(permissions::keys_to_hand_out(
            &compiled,
            &member,
            OffsetDateTime::now_utc(),
        ))
    }

    /// Whether an API key of `org` granting `granted`, created by `creator`, may use
    /// `key` now ([`permissions::api_key_allows`]): the org's current settings and the
    /// creator's current rights decide, from the same cache as members' checks (no
    /// database read when warm).
    pub async fn api_key_allows(
        &self,
        org: Uuid,
        creator: Uuid,
        granted: KeySet,
        key: PermissionKey,
    ) -> Result<bool, ApiError> {
        let Some(compiled) = self.compiled(org).await? else {
            return Ok(false);
        };
        let creator = self.member(org, creator).await?;
        Ok(permissions::api_key_allows(
            &compiled,
            creator.as_deref(),
            granted,
            key,
            OffsetDateTime::now_utc(),
        ))
    }

    /// After a write that changed orgs' settings (or their district/school): every
    /// instance re-resolves them on its next request.
    pub async fn orgs_changed(&self, orgs: &[Uuid]) {
        self.cache.org_changed(orgs).await;
    }

    /// After a change of one member (role, status, membership).
    pub async fn member_changed(&self, org: Uuid, user: Uuid) {
        self.cache.member_changed(org, user).await;
    }
}
