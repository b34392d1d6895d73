//! [`SeaOrmPermissionStore`]: the [`PermissionStore`] port and the store's own operations.

use audit::{Actor, RequestMeta};
use permissions::{
    CompiledOrg, GrantError, LoadError, MemberContext, NewGrant, OrgChain, PermissionKey,
    PermissionStore, RevokeGrantError, ScopeSettings, ScopedSetting, SettingsUpdate, Template,
    TemplateError, TemplateSaved, TemplateScope, TemplateUpdate, UpdateSettingsError,
};
use persistence::Database;
use sea_orm::ConnectionTrait;
use tenancy::ports::AuditContext;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain;
use crate::convert::{db, get, invalid};
use crate::error::Failure;
use crate::grants::{self, GrantRecord};
use crate::lookup::{self, HoldersPage};
use crate::members;
use crate::sql::Sql;
use crate::templates::{self, Level};

/// Runs `body` in one write transaction: committed when it succeeds, rolled back (dropped)
/// when it fails.
macro_rules! in_write_tx {
    ($db:expr, |$txn:ident| $body:expr) => {{
        let $txn = $db.begin_write().await.map_err(Failure::from)?;
        let value = $body.await?;
        $txn.commit().await.map_err(Failure::from)?;
        Ok(value)
    }};
}
use crate::write;

/// The permission store on SeaORM (PostgreSQL or SQLite).
///
/// Implements [`PermissionStore`]; its [`save_org_settings`](PermissionStore::save_org_settings)
/// records the [`Actor::System`] as the actor, because the port carries no caller. Request
/// handlers use [`with_context`](Self::with_context) (or
/// [`save_org_settings_audited`](Self::save_org_settings_audited)) so the audit log names
/// the real actor. Cloning is cheap (the pools are shared).
#[derive(Debug, Clone)]
pub struct SeaOrmPermissionStore {
    db: Database,
}

/// The context of changes made through the port without one.
fn system_context() -> AuditContext {
    AuditContext {
        actor: Actor::System,
        request: RequestMeta::default(),
    }
}

impl SeaOrmPermissionStore {
    /// A store over `db` (migrated).
    #[must_use]
    pub const fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    #[must_use]
    pub const fn database(&self) -> &Database {
        &self.db
    }

    /// This store as a [`PermissionStore`] whose writes are audited as made by `ctx`'s
    /// actor from `ctx`'s request (e.g. `PermissionService::new(store.with_context(ctx))`).
    #[must_use]
    pub fn with_context(&self, ctx: AuditContext) -> AuditedPermissionStore {
        AuditedPermissionStore {
            store: self.clone(),
            ctx,
        }
    }

    /// The chain of `org_id` and its `permissions_version`, read by one statement (a
    /// `UNION ALL` over the district, school and org settings joined from the org row);
    /// `None` for an unknown org. Compile the chain stamped with the version
    /// ([`CompiledOrg::compile`]) and a cached table can be checked for staleness with
    /// [`permissions_version`](Self::permissions_version).
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn load_org_chain_versioned(
        &self,
        org_id: Uuid,
    ) -> Result<Option<(OrgChain, u64)>, LoadError> {
        Ok(chain::load(self.db.primary(), org_id)
            .await?
            .map(|loaded| (loaded.chain, loaded.version)))
    }

    /// The compiled table of `org_id`, stamped with its `permissions_version` as
    /// generation; `None` for an unknown org.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn compile_org(&self, org_id: Uuid) -> Result<Option<CompiledOrg>, LoadError> {
        Ok(self
            .load_org_chain_versioned(org_id)
            .await?
            .map(|(chain, version)| CompiledOrg::compile(&chain, version)))
    }

    /// The current `permissions_version` of `org_id` (one indexed read); `None` for an
    /// unknown org. Every change that can alter the org's effective settings or its
    /// members' grants bumps it in the same transaction.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails.
    pub async fn permissions_version(&self, org_id: Uuid) -> Result<Option<u64>, LoadError> {
        let conn = self.db.primary();
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT permissions_version FROM organizations WHERE id = ")
            .bind(org_id);
        let Some(row) = conn.query_one_raw(sql.build()).await.map_err(db)? else {
            return Ok(None);
        };
        let version: i64 = get(&row, "permissions_version")?;
        u64::try_from(version).map(Some).map_err(|_| {
            invalid(format!(
                "organization {org_id}: negative permissions_version"
            ))
        })
    }

    /// Every member of `org_id` (any status) with role and all grants, ordered by user id,
    /// read by one statement; empty for an unknown org. For previews and matrices.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn load_members(&self, org_id: Uuid) -> Result<Vec<MemberContext>, LoadError> {
        members::load_all(self.db.primary(), org_id).await
    }

    /// Applies `update` to the org's settings in one transaction, audited as `ctx`:
    ///
    /// 1. lock the org row (`WriteTx::lock_org`);
    /// 2. read the chain under that lock and plan the update against it
    ///    ([`SettingsUpdate::plan`], the domain's rule, applied once): a change of a key
    ///    locked by the **current** district or school settings is refused
    ///    ([`UpdateSettingsError::Locked`], naming the first); a reset is never refused
    ///    (it only cleans up shadowed org settings, as [`permissions::plan_reset`] plans);
    /// 3. compare `permissions_version` with `expected_version`
    ///    ([`UpdateSettingsError::VersionMismatch`]);
    /// 4. upsert (`after: Some`) or delete (`after: None`) one `org_permission_settings`
    ///    row per changed key, append one `permission.update` audit event per changed key
    ///    (entity `permission_setting` / key; change `CREATE`, `UPDATE`, or `RESET` for a
    ///    removal; old and new values the settings as JSON), bump `permissions_version`.
    ///
    /// Returns the new version — or the current one, unchanged and with nothing written,
    /// when the update changes nothing.
    ///
    /// # Errors
    /// [`UpdateSettingsError::NotFound`] for an unknown org, `Locked`, `VersionMismatch`,
    /// and `Unexpected` when the store or the audit log fails.
    pub async fn save_org_settings_audited(
        &self,
        ctx: &AuditContext,
        org_id: Uuid,
        expected_version: u64,
        update: &SettingsUpdate,
    ) -> Result<u64, UpdateSettingsError> {
        let txn = self.db.begin_write().await.map_err(Failure::from)?;
        let version = write::save_org_settings(&txn, ctx, org_id, expected_version, update).await?;
        txn.commit().await.map_err(Failure::from)?;
        Ok(version)
    }

    /// Applies `update` to `scope`'s template in one transaction, audited as `ctx`: lock
    /// the district or school row, read its settings and `template_version` (and a
    /// school's district's settings), plan with [`permissions::plan_template`] (a school
    /// cannot set what its district locked — every locked key is named; a stale
    /// `expected_version` is refused after that), lock the orgs below in id order, write
    /// every changed row, bump `template_version` and every org's `permissions_version`,
    /// and append per changed key a `permission.update` event in the scope's chain
    /// (`district_permission_setting` / `school_permission_setting`, id = the key) and a
    /// `permission.inherited_update` event in each org below (which the after-commit
    /// dispatcher turns into the orgs' invalidation). Returns the new version and the
    /// orgs below, in id order — the current version and no orgs, with nothing written,
    /// when nothing changes.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`], [`TemplateError::Locked`],
    /// [`TemplateError::VersionMismatch`], [`TemplateError::Storage`].
    pub async fn save_template_audited(
        &self,
        ctx: &AuditContext,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> Result<TemplateSaved, TemplateError> {
        in_write_tx!(self.db, |txn| templates::save(&txn, ctx, scope, update))
    }

    /// The settings `scope` holds and their `template_version`; `None` for an unknown
    /// district or school.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn load_template(&self, scope: TemplateScope) -> Result<Option<Template>, LoadError> {
        templates::load(self.db.primary(), scope).await
    }

    async fn change_template(
        &self,
        ctx: &AuditContext,
        level: Level,
        id: Uuid,
        key: PermissionKey,
        setting: Option<ScopedSetting>,
    ) -> Result<Vec<Uuid>, TemplateError> {
        let scope = match level {
            Level::District => TemplateScope::District(id),
            Level::School => TemplateScope::School(id),
        };
        self.save_template_audited(ctx, scope, &TemplateUpdate::one(key, setting))
            .await
            .map(|saved| saved.affected_orgs)
    }

    /// Sets the district's setting of `key` (its template), in one audited transaction
    /// that also bumps `permissions_version` of every org of the district. Returns those
    /// orgs, in id order, for the cache to invalidate; empty (and nothing written) when
    /// the district already holds exactly this setting.
    ///
    /// Audited as `permission.update` on `district_permission_setting` / key in the
    /// district's chain (`CREATE` or `UPDATE`; values carry the setting and its scope).
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] for an unknown district, `Storage` on failure.
    pub async fn set_district_setting(
        &self,
        ctx: &AuditContext,
        district_id: Uuid,
        key: PermissionKey,
        setting: ScopedSetting,
    ) -> Result<Vec<Uuid>, TemplateError> {
        self.change_template(ctx, Level::District, district_id, key, Some(setting))
            .await
    }

    /// Removes the district's setting of `key` (audited as `DELETE`), bumping its orgs'
    /// versions; returns the orgs, or nothing when there was no such setting.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] for an unknown district, `Storage` on failure.
    pub async fn clear_district_setting(
        &self,
        ctx: &AuditContext,
        district_id: Uuid,
        key: PermissionKey,
    ) -> Result<Vec<Uuid>, TemplateError> {
        self.change_template(ctx, Level::District, district_id, key, None)
            .await
    }

    /// The settings the district holds; `None` for an unknown district.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn list_district_settings(
        &self,
        district_id: Uuid,
    ) -> Result<Option<ScopeSettings>, LoadError> {
        let settings = Level::District.settings();
        chain::load_scope(
            self.db.primary(),
            Level::District.owner(),
            settings.table,
            settings.fk,
            district_id,
        )
        .await
    }

    /// Sets the school's setting of `key`, in one audited transaction that also bumps
    /// `permissions_version` of every org of the school; returns those orgs (empty when
    /// nothing changed). Audited in the school's district's chain (the platform chain for
    /// a standalone school) as `permission.update` on `school_permission_setting` / key.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] for an unknown school; [`TemplateError::Locked`] when
    /// the school's district locked `key` (checked inside the transaction); `Storage`.
    pub async fn set_school_setting(
        &self,
        ctx: &AuditContext,
        school_id: Uuid,
        key: PermissionKey,
        setting: ScopedSetting,
    ) -> Result<Vec<Uuid>, TemplateError> {
        self.change_template(ctx, Level::School, school_id, key, Some(setting))
            .await
    }

    /// Removes the school's setting of `key` (audited as `DELETE`; allowed even when the
    /// district locked the key), bumping its orgs' versions; returns the orgs, or nothing
    /// when there was no such setting.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] for an unknown school, `Storage` on failure.
    pub async fn clear_school_setting(
        &self,
        ctx: &AuditContext,
        school_id: Uuid,
        key: PermissionKey,
    ) -> Result<Vec<Uuid>, TemplateError> {
        self.change_template(ctx, Level::School, school_id, key, None)
            .await
    }

    /// The settings the school holds; `None` for an unknown school.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn list_school_settings(
        &self,
        school_id: Uuid,
    ) -> Result<Option<ScopeSettings>, LoadError> {
        let settings = Level::School.settings();
        chain::load_scope(
            self.db.primary(),
            Level::School.owner(),
            settings.table,
            settings.fk,
            school_id,
        )
        .await
    }

    /// Grants `key` directly to member `user_id` of `org_id` (or replaces their grant of
    /// it), optionally until `expires_at` (stored in UTC, to the microsecond), in one
    /// transaction that locks the org row, bumps its `permissions_version` and appends a
    /// `permission.grant` audit event (`permission_grant` / `<user>:<key>`, `CREATE` or
    /// `UPDATE`). A grant cannot beat a disabled key; that is the check's business, not
    /// the store's. Returns the org's new version (the current one, with nothing written,
    /// when the very same grant exists).
    ///
    /// # Errors
    /// [`GrantError::OrgNotFound`], [`GrantError::NotMember`] (any membership status
    /// counts as a member), [`GrantError::ReasonTooLong`], `Storage` on failure
    /// (including a `granted_by` that is not a user).
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the grant's columns; a request struct would only rename them"
    )]
    pub async fn grant(
        &self,
        ctx: &AuditContext,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
        expires_at: Option<OffsetDateTime>,
        reason: Option<String>,
        granted_by: Option<Uuid>,
    ) -> Result<u64, GrantError> {
        let new = NewGrant {
            user_id,
            key,
            starts_at: None,
            expires_at,
            reason,
            granted_by,
        };
        self.save_grant_audited(ctx, org_id, &new).await
    }

    /// Stores `grant` for `org_id` (replacing the member's grant of the same key), audited
    /// as `ctx`, in one transaction that locks the org row, refuses a key locked above the
    /// org as its chain stands now ([`permissions::refuse_locked_exceptions`]), bumps its
    /// `permissions_version` and appends a `permission.grant` audit event
    /// (`permission_grant` / `<user>:<key>`, `CREATE` or `UPDATE`; `starts_at` and
    /// `expires_at` stored in UTC, to the microsecond). Returns the org's new version (the
    /// current one, with nothing written, when the very same grant exists).
    ///
    /// # Errors
    /// [`GrantError::OrgNotFound`], [`GrantError::NotMember`], [`GrantError::ReasonTooLong`],
    /// [`GrantError::Locked`], [`GrantError::Storage`].
    pub async fn save_grant_audited(
        &self,
        ctx: &AuditContext,
        org_id: Uuid,
        grant: &NewGrant,
    ) -> Result<u64, GrantError> {
        in_write_tx!(self.db, |txn| grants::grant(&txn, ctx, org_id, grant))
    }

    /// Revokes member `user_id`'s direct grant of `key` in `org_id`: whether there was one.
    /// When there was, in one transaction: delete it, bump the org's
    /// `permissions_version`, append a `permission.revoke` audit event (`DELETE`).
    ///
    /// # Errors
    /// [`RevokeGrantError::OrgNotFound`], `Storage` on failure.
    pub async fn revoke_grant(
        &self,
        ctx: &AuditContext,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> Result<bool, RevokeGrantError> {
        in_write_tx!(self.db, |txn| grants::revoke(
            &txn, ctx, org_id, user_id, key
        ))
    }

    /// The direct grants in `org_id` (of one member when `user_id` is given), expired ones
    /// included, ordered by user id then key.
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn list_grants(
        &self,
        org_id: Uuid,
        user_id: Option<Uuid>,
    ) -> Result<Vec<GrantRecord>, LoadError> {
        grants::list(self.db.primary(), org_id, user_id).await
    }

    /// Which members of `org_id` hold `key` at `now`: the page of at most `limit` (at
    /// least 1) user ids greater than `after`, ascending, and the cursor of the next page.
    /// `None` for an unknown org.
    ///
    /// Complete and exact: the org's table is compiled, SQL narrows the members to a
    /// superset of the holders (see the crate documentation) in user-id order after the
    /// cursor, and the domain's [`permissions::check`] decides each candidate (grant
    /// expiry included). Walking all pages gives exactly
    /// [`permissions::members_holding`] over [`load_members`](Self::load_members).
    ///
    /// # Errors
    /// [`LoadError`] when the store fails or holds invalid data.
    pub async fn members_holding(
        &self,
        org_id: Uuid,
        key: PermissionKey,
        now: OffsetDateTime,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<HoldersPage>, LoadError> {
        let Some(org) = self.compile_org(org_id).await? else {
            return Ok(None);
        };
        lookup::members_holding(self.db.primary(), &org, key, now, after, limit)
            .await
            .map(Some)
    }
}

impl PermissionStore for SeaOrmPermissionStore {
    async fn load_org_chain(&self, org_id: Uuid) -> Result<Option<OrgChain>, LoadError> {
        Ok(self
            .load_org_chain_versioned(org_id)
            .await?
            .map(|(chain, _)| chain))
    }

    async fn load_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MemberContext>, LoadError> {
        members::load_one(self.db.primary(), org_id, user_id).await
    }

    /// Saves audited as [`Actor::System`]; see
    /// [`SeaOrmPermissionStore::save_org_settings_audited`].
    async fn save_org_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        update: &SettingsUpdate,
    ) -> Result<u64, UpdateSettingsError> {
        self.save_org_settings_audited(&system_context(), org_id, expected_version, update)
            .await
    }

    /// Audited as [`Actor::System`]; see [`SeaOrmPermissionStore::save_grant_audited`].
    async fn save_grant(&self, org_id: Uuid, grant: &NewGrant) -> Result<u64, GrantError> {
        self.save_grant_audited(&system_context(), org_id, grant)
            .await
    }

    /// Audited as [`Actor::System`]; see [`SeaOrmPermissionStore::revoke_grant`].
    async fn delete_grant(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> Result<bool, RevokeGrantError> {
        self.revoke_grant(&system_context(), org_id, user_id, key)
            .await
    }

    async fn load_template(&self, scope: TemplateScope) -> Result<Option<Template>, LoadError> {
        Self::load_template(self, scope).await
    }

    /// Audited as [`Actor::System`]; see [`SeaOrmPermissionStore::save_template_audited`].
    async fn save_template(
        &self,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> Result<TemplateSaved, TemplateError> {
        self.save_template_audited(&system_context(), scope, update)
            .await
    }
}

/// A [`SeaOrmPermissionStore`] bound to the [`AuditContext`] of one request: as a
/// [`PermissionStore`], its writes are audited as made by that actor. Made by
/// [`SeaOrmPermissionStore::with_context`].
#[derive(Debug, Clone)]
pub struct AuditedPermissionStore {
    store: SeaOrmPermissionStore,
    ctx: AuditContext,
}

impl AuditedPermissionStore {
    /// The underlying store.
    #[must_use]
    pub const fn store(&self) -> &SeaOrmPermissionStore {
        &self.store
    }

    /// The actor and request the writes are audited as.
    #[must_use]
    pub const fn context(&self) -> &AuditContext {
        &self.ctx
    }
}

impl PermissionStore for AuditedPermissionStore {
    async fn load_org_chain(&self, org_id: Uuid) -> Result<Option<OrgChain>, LoadError> {
        self.store.load_org_chain(org_id).await
    }

    async fn load_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MemberContext>, LoadError> {
        self.store.load_member(org_id, user_id).await
    }

    /// See [`SeaOrmPermissionStore::save_org_settings_audited`].
    async fn save_org_settings(
        &self,
        org_id: Uuid,
        expected_version: u64,
        update: &SettingsUpdate,
    ) -> Result<u64, UpdateSettingsError> {
        self.store
            .save_org_settings_audited(&self.ctx, org_id, expected_version, update)
            .await
    }

    /// See [`SeaOrmPermissionStore::save_grant_audited`].
    async fn save_grant(&self, org_id: Uuid, grant: &NewGrant) -> Result<u64, GrantError> {
        self.store
            .save_grant_audited(&self.ctx, org_id, grant)
            .await
    }

    /// See [`SeaOrmPermissionStore::revoke_grant`].
    async fn delete_grant(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        key: PermissionKey,
    ) -> Result<bool, RevokeGrantError> {
        self.store
            .revoke_grant(&self.ctx, org_id, user_id, key)
            .await
    }

    async fn load_template(&self, scope: TemplateScope) -> Result<Option<Template>, LoadError> {
        self.store.load_template(scope).await
    }

    /// See [`SeaOrmPermissionStore::save_template_audited`].
    async fn save_template(
        &self,
        scope: TemplateScope,
        update: &TemplateUpdate,
    ) -> Result<TemplateSaved, TemplateError> {
        self.store
            .save_template_audited(&self.ctx, scope, update)
            .await
    }
}
