//! Ports: what the permission domain needs from the outside world, in its own words.
//! Adapters (SQL, cache) implement them elsewhere.

use std::future::Future;

use uuid::Uuid;

use crate::errors::{GrantError, LoadError, RevokeGrantError, TemplateError, UpdateSettingsError};
use crate::grants::NewGrant;
use crate::keys::PermissionKey;
use crate::member::MemberContext;
use crate::scope::OrgChain;
use crate::settings::SettingsUpdate;
use crate::template::{Template, TemplateSaved, TemplateScope, TemplateUpdate};

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

    /// Stores `grant` (replacing the member's grant of the same key, if any), bumps the
    /// org's `permissions_version` and records the change for the audit log, in one
    /// transaction; returns the org's new version (unchanged when the same grant exists).
    ///
    /// Inside the transaction, holding the org's lock, the store refuses a key locked
    /// above the org as its chain stands then
    /// ([`refuse_locked_exceptions`](crate::refuse_locked_exceptions)).
    ///
    /// # Errors
    /// [`GrantError::OrgNotFound`], [`GrantError::NotMember`] (any membership status
    /// counts), [`GrantError::ReasonTooLong`], [`GrantError::Locked`],
    /// [`GrantError::Storage`].
    fn save_grant(
        &self,
        org_id: Uuid,
        grant: &NewGrant,
    ) -> impl Future<Output = Result<u64, GrantError>> + Send;

    /// Deletes member `user_id`'s grant of `key` in `org_id` (bumping the version and
    /// recording the change, in one transaction): whether there was one.
    ///
    /// # Errors
    /// [`RevokeGrantError::OrgNotFound`], [`RevokeGrantError::Storage`].
    fn delete_grant(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> impl Future<Output = Result<bool, RevokeGrantError>> + Send;

    /// The settings `scope` holds and their version; `None` for an unknown district or
    /// school.
    fn load_template(
        &self,
        scope: TemplateScope,
    ) -> impl Future<Output = Result<Option<Template>, LoadError>> + Send;

    /// Applies `update` to `scope`'s template, all or nothing, in one transaction holding
    /// the scope's lock and its orgs' locks: read the template (and, for a school, its
    /// district's settings), plan with [`plan_template`](crate::plan_template), write the
    /// rows, bump the template's version and every org's `permissions_version`, and
    /// record one audit event per key in the scope's chain and one per key in each org
    /// below (the change event that has every org re-resolve). Nothing is written or
    /// bumped when nothing changes.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`], [`TemplateError::Locked`],
    /// [`TemplateError::VersionMismatch`], [`TemplateError::Storage`].
    fn save_template(
        &self,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> impl Future<Output = Result<TemplateSaved, TemplateError>> + Send;
}
