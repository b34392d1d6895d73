//! Ports: what the permission domain needs from the outside world, in its own words.
//! Adapters (SQL, cache) implement them elsewhere.

use std::future::Future;

use uuid::Uuid;

use crate::errors::{LoadError, UpdateSettingsError};
use crate::member::MemberContext;
use crate::scope::OrgChain;
use crate::settings::SettingsUpdate;

/// Where orgs' settings chains and members live. Shared across request handlers, hence
/// `Send + Sync`; every method's future is `Send`.
#[cfg_attr(test, mockall::automock)]
pub trait PermissionStore: Send + Sync {
    /// The chain of `org_id` (its district's and school's settings and its own), or `None`
    /// when the org doesn't exist (or is deleted).
    fn load_org_chain(
        &self,
        org_id: Uuid,
    ) -> impl Future<Output = Result<Option<OrgChain>, LoadError>> + Send;

    /// The membership of `user_id` in `org_id` with its role and grants, or `None` when the
    /// user is not a member at all.
    fn load_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<MemberContext>, LoadError>> + Send;

    /// Atomically applies `update` to the org's settings if its settings version is
    /// still `expected_version`, bumps the version and returns the new one; returns it
    /// unchanged, writing nothing, when the update changes nothing.
    ///
    /// Inside one transaction, holding the org's row lock: read the org's chain, plan
    /// the update against it with [`SettingsUpdate::plan`] (the domain's lock rule,
    /// applied once, to the settings in force), check the version, write each row and
    /// its audit entry (from the write's `before`/`after`). A lock is reported before a
    /// stale version.
    ///
    /// # Errors
    /// [`UpdateSettingsError::Locked`] for a key locked above the org,
    /// [`UpdateSettingsError::VersionMismatch`] on a stale version,
    /// [`UpdateSettingsError::NotFound`] when the org is gone,
    /// [`UpdateSettingsError::Unexpected`] when the store fails.
    fn save_org_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        update: &SettingsUpdate,
    ) -> impl Future<Output = Result<u64, UpdateSettingsError>> + Send;
}
