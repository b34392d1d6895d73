//! The permission system over HTTP: catalog, matrices, check (single and batch),
//! explain, preview, bulk update, reset, grants and reverse lookup.

use actix_web::http::Method;
use garde::Validate;
use permissions::{
    BuiltinRole, Module, NewGrant, PermissionKey, PermissionService, ScopeRef, SettingChange,
    UpdateSettingsError,
};
use permissions_store::{GrantRecord, SeaOrmPermissionStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::common::{domain_rule, required_version};
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, Fresh, IfMatch, Json, NoContent, Order,
    PageQuery, Paged, Path, Query, Reply, RouteDoc,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "permissions";
    r.get(
        "/api/v2/permissions/catalog",
        catalog,
        RouteDoc::new(
            "permission_catalog",
            "The 28 configurable permissions with their platform defaults",
            TAG,
        )
        .public(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions",
        org_matrix,
        RouteDoc::new(
            "permission_matrix",
            "The org's effective settings: one row per key, with source and lock",
            TAG,
        )
        .org_admin(),
    );
    r.route(
        Method::PUT,
        "/api/v2/orgs/{org_id}/permissions/settings",
        update_settings,
        RouteDoc::new("update_permission_settings", "Change settings in bulk: all or nothing", TAG)
            .description("Send the matrix `version` you read (in the body or as `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Keys locked by the district or school answer 409 `PERMISSION_LOCKED` naming every locked key of the batch and who locked it (`details.locked_keys`). The response's `version` is also a consistency token.")
            .org_admin()
            .errors(&[ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::PermissionLocked, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/permissions/reset",
        reset_settings,
        RouteDoc::new(
            "reset_permission_settings",
            "Reset the org (or one module) to inherited settings",
            TAG,
        )
        .org_admin()
        .errors(&[ErrorCode::VersionMismatch]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/permissions/preview",
        preview,
        RouteDoc::new(
            "preview_permission_settings",
            "What-if: who would gain or lose which permission",
            TAG,
        )
        .org_admin()
        .errors(&[ErrorCode::PermissionLocked]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions/check",
        check_one,
        RouteDoc::new(
            "check_permission",
            "Check one key: the caller's own, or (admins) another member's",
            TAG,
        )
        .errors(&[ErrorCode::ValidationFailed, ErrorCode::NotFound]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/permissions/check",
        check_batch,
        RouteDoc::new("check_permissions", "Check many keys for one member", TAG)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions/explain",
        explain,
        RouteDoc::new("explain_permission", "The steps that decide a check", TAG)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions/holders",
        holders,
        RouteDoc::new(
            "permission_holders",
            "Members holding a key: complete, cursor-paginated",
            TAG,
        )
        .org_admin(),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions/grants",
        list_grants,
        RouteDoc::new("list_permission_grants", "Direct grants of the org", TAG)
            .description("By member, then key; paginated (`limit`, `cursor`: the `next_cursor` of the previous page); `meta.pagination.total` counts them all.")
            .org_admin()
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/permissions/grants",
        create_grant,
        RouteDoc::new(
            "grant_permission",
            "Grant one key to one member (optionally from and until a time)",
            TAG,
        )
        .description("Answers 201 with the grant (and the org's new settings `version`, a consistency token) and its `Location`; granting a key the member already holds by grant replaces that grant. A grant counts while `starts_at <= now < expires_at`. Nobody grants what they don't hold: a key disabled for the org is held by nobody, so granting it is refused (403, `details.keys_not_held`). Nobody grants themselves anything. A key locked by the district or school is refused with 409 `PERMISSION_LOCKED` (a grant of it would not count).")
        .org_admin()
        .errors(&[
            ErrorCode::ValidationFailed,
            ErrorCode::PermissionDenied,
            ErrorCode::PermissionLocked,
            ErrorCode::NotFound,
        ]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/permissions/grants/{user_id}/{key}",
        get_grant,
        RouteDoc::new("get_permission_grant", "One direct grant", TAG)
            .description("404 when the member has no grant of the key. A grant whose window has not started or has passed is still shown (see `starts_at`, `expires_at`).")
            .org_admin()
            .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/permissions/grants/{user_id}/{key}",
        revoke_grant,
        RouteDoc::new("revoke_permission_grant", "Revoke a direct grant", TAG)
            .description("Answers 204; 404 when the member has no grant of the key.")
            .org_admin()
            .errors(&[ErrorCode::NotFound]),
    );
}

/// A built-in role.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Rank 1.
    Volunteer,
    /// Rank 2.
    CommitteeLead,
    /// Rank 3.
    BoardMember,
    /// Rank 4.
    Admin,
}

impl From<BuiltinRole> for RoleDto {
    fn from(r: BuiltinRole) -> Self {
        match r {
            BuiltinRole::Volunteer => Self::Volunteer,
            BuiltinRole::CommitteeLead => Self::CommitteeLead,
            BuiltinRole::BoardMember => Self::BoardMember,
            BuiltinRole::Admin => Self::Admin,
        }
    }
}

impl From<RoleDto> for BuiltinRole {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Volunteer => Self::Volunteer,
            RoleDto::CommitteeLead => Self::CommitteeLead,
            RoleDto::BoardMember => Self::BoardMember,
            RoleDto::Admin => Self::Admin,
        }
    }
}

/// A scope of the hierarchy.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScopeDto {
    /// `platform`, `district`, `school` or `org`.
    pub kind: &'static str,
    /// Its id (absent for the platform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}

impl From<ScopeRef> for ScopeDto {
    fn from(s: ScopeRef) -> Self {
        match s {
            ScopeRef::Platform => Self {
                kind: "platform",
                id: None,
            },
            ScopeRef::District(id) => Self {
                kind: "district",
                id: Some(id),
            },
            ScopeRef::School(id) => Self {
                kind: "school",
                id: Some(id),
            },
            ScopeRef::Org(id) => Self {
                kind: "org",
                id: Some(id),
            },
        }
    }
}

/// A catalog entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CatalogEntryDto {
    /// The key, e.g. `budget.approve`.
    pub key: &'static str,
    /// Its module.
    pub module: &'static str,
    /// What it allows.
    pub description: &'static str,
    /// Platform default minimum role.
    pub default_min_role: RoleDto,
    /// Platform default enabled flag.
    pub default_enabled: bool,
}

/// The catalog.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CatalogDto {
    /// Catalog version.
    pub version: u32,
    /// The 28 entries, in module order.
    pub permissions: Vec<CatalogEntryDto>,
}

async fn catalog() -> Reply<CatalogDto> {
    Reply(CatalogDto {
        version: permissions::CATALOG_VERSION,
        permissions: permissions::catalog()
            .iter()
            .map(|e| CatalogEntryDto {
                key: e.key.as_str(),
                module: e.module.as_str(),
                description: e.description,
                default_min_role: e.default.min_role.into(),
                default_enabled: e.default.enabled,
            })
            .collect(),
    })
}

/// One row of the org's matrix.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MatrixRowDto {
    /// The key.
    pub key: &'static str,
    /// Its module.
    pub module: &'static str,
    /// Effective minimum role.
    pub min_role: RoleDto,
    /// Effective enabled flag.
    pub enabled: bool,
    /// The scope the setting comes from.
    pub source: ScopeDto,
    /// The scope that locked it (greyed out for the org), if any.
    pub locked_by: Option<ScopeDto>,
}

/// The org's matrix.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MatrixDto {
    /// The settings version: send it back with updates (and as a consistency token).
    pub version: u64,
    /// One row per key.
    pub permissions: Vec<MatrixRowDto>,
}

async fn compiled(
    state: &State,
    member: &OrgMember,
) -> Result<std::sync::Arc<permissions::CompiledOrg>, ApiError> {
    state
        .authz
        .compiled(member.org_id().as_uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("no such organization"))
}

async fn org_matrix(state: State, member: OrgMember) -> Result<Reply<MatrixDto>, ApiError> {
    let org = compiled(&state, &member).await?;
    Ok(Reply(MatrixDto {
        version: org.generation(),
        permissions: permissions::org_matrix(&org)
            .iter()
            .map(|row| MatrixRowDto {
                key: row.key.as_str(),
                module: row.module.as_str(),
                min_role: row.min_role.into(),
                enabled: row.enabled,
                source: row.source.into(),
                locked_by: row.locked_by.map(Into::into),
            })
            .collect(),
    }))
}

/// One change of a bulk update.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangeDto {
    /// The key, e.g. `events.create`.
    #[garde(custom(domain_rule(PermissionKey::parse)))]
    pub key: String,
    /// New minimum role.
    #[garde(skip)]
    pub min_role: Option<RoleDto>,
    /// New enabled flag.
    #[garde(skip)]
    pub enabled: Option<bool>,
}

/// A bulk update.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = update_example())]
pub struct UpdateSettingsBody {
    /// The matrix version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<u64>,
    /// The changes, applied all or nothing.
    #[garde(length(min = 1, max = 28), dive)]
    pub changes: Vec<ChangeDto>,
}

fn update_example() -> serde_json::Value {
    serde_json::json!({"version": 3, "changes": [{"key": "events.create", "min_role": "volunteer"}, {"key": "budget.delete", "enabled": false}]})
}

fn to_changes(changes: &[ChangeDto]) -> Result<Vec<SettingChange>, ApiError> {
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = PermissionKey::parse(&c.key).map_err(|e| {
                ApiError::validation(vec![FieldError {
                    field: format!("changes[{i}].key"),
                    code: "invalid".into(),
                    message: e.to_string(),
                }])
            })?;
            Ok(SettingChange {
                key,
                min_role: c.min_role.map(Into::into),
                enabled: c.enabled,
            })
        })
        .collect()
}

/// The outcome of a settings write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingsWritten {
    /// The new settings version; also a consistency token.
    pub version: u64,
}

fn settings_error(e: UpdateSettingsError) -> ApiError {
    match e {
        UpdateSettingsError::Locked(locked) => locked.into(),
        UpdateSettingsError::VersionMismatch { expected, actual } => ApiError::new(
            ErrorCode::VersionMismatch,
            "the settings changed since you read them",
        )
        .with_details(serde_json::json!({"expected_version": expected, "current_version": actual})),
        UpdateSettingsError::NotFound => ApiError::not_found("no such organization"),
        e @ (UpdateSettingsError::Unexpected(_) | UpdateSettingsError::Unavailable(_)) => {
            ApiError::internal(Box::new(e))
        }
    }
}

/// The permission service of a request.
pub(super) type Service = PermissionService<
    permissions_cache::CachedPermissionStore<permissions_store::AuditedPermissionStore>,
>;

/// The permission service over the store audited as `ctx`, behind the cache: members
/// come from the cache, and a write's committed change events invalidate every instance
/// (the after-commit dispatcher).
pub(super) fn service_as(state: &State, ctx: tenancy::ports::AuditContext) -> Service {
    PermissionService::new(
        state
            .authz
            .cache()
            .port(state.authz.store().with_context(ctx)),
    )
}

/// [`service_as`] the org member's audit context.
fn service(state: &State, member: &OrgMember) -> Service {
    service_as(state, member.audit_context())
}

async fn update_settings(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<UpdateSettingsBody>,
) -> Result<Reply<SettingsWritten>, ApiError> {
    let sent = body.version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    // A negative `If-Match` names no version there ever was: stale.
    let expected = u64::try_from(required_version(sent, if_match)?).unwrap_or(u64::MAX);
    let changes = to_changes(&body.changes)?;
    let version = service(&state, &member)
        .update_settings(member.org_id().as_uuid(), expected, &changes)
        .await
        .map_err(settings_error)?;
    Ok(Reply(SettingsWritten { version }))
}

/// A reset.
/// The seven permission modules, as the `module` field's schema (parsed by the domain).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "schema only")]
enum ModuleName {
    Communications,
    Budget,
    Events,
    Fundraising,
    Documents,
    TeacherRequests,
    UserManagement,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The matrix version you read.
    #[garde(skip)]
    pub version: u64,
    /// Only this module (e.g. `budget`); all modules when absent.
    #[garde(inner(custom(domain_rule(Module::parse))))]
    #[schemars(with = "Option<ModuleName>")]
    pub module: Option<String>,
}

async fn reset_settings(
    state: State,
    member: OrgMember,
    Json(body): Json<ResetBody>,
) -> Result<Reply<SettingsWritten>, ApiError> {
    let module = body
        .module
        .as_deref()
        .map(Module::parse)
        .transpose()
        .map_err(|e| {
            ApiError::validation(vec![FieldError {
                field: "module".into(),
                code: "invalid".into(),
                message: e.to_string(),
            }])
        })?;
    let version = service(&state, &member)
        .reset_settings(member.org_id().as_uuid(), body.version, module)
        .await
        .map_err(settings_error)?;
    Ok(Reply(SettingsWritten { version }))
}

/// Proposed changes to preview.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// The changes, as for an update.
    #[garde(length(min = 1, max = 28), dive)]
    pub changes: Vec<ChangeDto>,
}

/// One member's change of answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreviewChangeDto {
    /// The member.
    pub user_id: Uuid,
    /// The key.
    pub key: &'static str,
    /// `gained` or `lost`.
    pub change: &'static str,
}

async fn preview(
    state: State,
    member: OrgMember,
    Json(body): Json<PreviewBody>,
) -> Result<Reply<Vec<PreviewChangeDto>>, ApiError> {
    let changes = to_changes(&body.changes)?;
    let store: &SeaOrmPermissionStore = state.authz.store();
    let org = member.org_id().as_uuid();
    let Some((chain, version)) = store
        .load_org_chain_versioned(org)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
    else {
        return Err(ApiError::not_found("no such organization"));
    };
    let after_chain = permissions::apply_org_changes(&chain, &changes).map_err(settings_error)?;
    let before = permissions::CompiledOrg::compile(&chain, version);
    let after = permissions::CompiledOrg::compile(&after_chain, version);
    let members = store
        .load_members(org)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Reply(
        permissions::preview(&before, &after, &members, OffsetDateTime::now_utc())
            .into_iter()
            .map(|c| PreviewChangeDto {
                user_id: c.user_id,
                key: c.key.as_str(),
                change: match c.change {
                    permissions::ChangeKind::Gained => "gained",
                    permissions::ChangeKind::Lost => "lost",
                },
            })
            .collect(),
    ))
}

/// Which check.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// The key, e.g. `budget.approve`.
    #[garde(custom(domain_rule(PermissionKey::parse)))]
    pub key: String,
    /// Whose permission (default: the caller). Checking someone else needs `admin`.
    #[garde(skip)]
    pub user_id: Option<Uuid>,
}

/// The effective setting behind a check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EffectiveDto {
    /// Minimum role.
    pub min_role: RoleDto,
    /// Enabled flag.
    pub enabled: bool,
    /// Where it comes from.
    pub source: ScopeDto,
    /// Who locked it, if anyone.
    pub locked_by: Option<ScopeDto>,
}

/// A check's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckDto {
    /// The answer.
    pub allowed: bool,
    /// The key.
    pub key: &'static str,
    /// Whose.
    pub user_id: Uuid,
    /// The effective setting.
    pub effective: EffectiveDto,
}

fn subject(member: &OrgMember, user: Option<Uuid>) -> Result<Uuid, ApiError> {
    let me = member.user_id()?.as_uuid();
    match user {
        Some(u) if u != me && !member.is_admin() => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only an admin may check another member's permissions",
        )
        .with_details(serde_json::json!({"required_role": "admin"}))),
        Some(u) => Ok(u),
        None => Ok(me),
    }
}

fn parse_key(raw: &str) -> Result<PermissionKey, ApiError> {
    PermissionKey::parse(raw).map_err(|e| {
        ApiError::validation(vec![FieldError {
            field: "key".into(),
            code: "invalid".into(),
            message: e.to_string(),
        }])
    })
}

async fn member_context(
    state: &State,
    org: Uuid,
    user: Uuid,
) -> Result<std::sync::Arc<permissions::MemberContext>, ApiError> {
    state
        .authz
        .member(org, user)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))
}

fn effective_dto(e: &permissions::Effective) -> EffectiveDto {
    EffectiveDto {
        min_role: e.min_role.into(),
        enabled: e.enabled,
        source: e.source.into(),
        locked_by: e.locked_by.map(Into::into),
    }
}

async fn check_one(
    state: State,
    member: OrgMember,
    Query(q): Query<CheckQuery>,
) -> Result<Reply<CheckDto>, ApiError> {
    let key = parse_key(&q.key)?;
    let user = subject(&member, q.user_id)?;
    let org = compiled(&state, &member).await?;
    let m = member_context(&state, member.org_id().as_uuid(), user).await?;
    Ok(Reply(CheckDto {
        allowed: permissions::check(&org, &m, key, OffsetDateTime::now_utc()),
        key: key.as_str(),
        user_id: user,
        effective: effective_dto(org.effective(key)),
    }))
}

/// A batch check.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BatchCheckBody {
    /// Whose permissions (default: the caller).
    #[garde(skip)]
    pub user_id: Option<Uuid>,
    /// The keys (at most 28).
    #[garde(
        length(min = 1, max = 28),
        inner(custom(domain_rule(PermissionKey::parse)))
    )]
    pub keys: Vec<String>,
}

/// One answer of a batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchAnswer {
    /// The key.
    pub key: &'static str,
    /// The answer.
    pub allowed: bool,
}

async fn check_batch(
    state: State,
    member: OrgMember,
    Json(body): Json<BatchCheckBody>,
) -> Result<Reply<Vec<BatchAnswer>>, ApiError> {
    let user = subject(&member, body.user_id)?;
    let org = compiled(&state, &member).await?;
    let m = member_context(&state, member.org_id().as_uuid(), user).await?;
    let now = OffsetDateTime::now_utc();
    body.keys
        .iter()
        .map(|k| {
            let key = parse_key(k)?;
            Ok(BatchAnswer {
                key: key.as_str(),
                allowed: permissions::check(&org, &m, key, now),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()
        .map(Reply)
}

/// An explanation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExplainDto {
    /// The answer (always equal to the check's).
    pub allowed: bool,
    /// The key.
    pub key: &'static str,
    /// Whose.
    pub user_id: Uuid,
    /// The effective setting.
    pub effective: EffectiveDto,
    /// The ordered steps: platform default, district, school, org, membership, user,
    /// enabled, role rank, extra key, grant, decision.
    pub steps: Vec<serde_json::Value>,
}

async fn explain(
    state: State,
    member: OrgMember,
    Query(q): Query<CheckQuery>,
) -> Result<Reply<ExplainDto>, ApiError> {
    let key = parse_key(&q.key)?;
    let user = subject(&member, q.user_id)?;
    let Some((chain, _)) = state
        .authz
        .store()
        .load_org_chain_versioned(member.org_id().as_uuid())
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
    else {
        return Err(ApiError::not_found("no such organization"));
    };
    let m = member_context(&state, member.org_id().as_uuid(), user).await?;
    let e = permissions::explain(&chain, &m, key, OffsetDateTime::now_utc());
    Ok(Reply(ExplainDto {
        allowed: e.allowed,
        key: key.as_str(),
        user_id: user,
        effective: effective_dto(&e.effective),
        steps: e
            .steps
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect(),
    }))
}

/// A reverse lookup page request.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct HoldersQuery {
    /// The key.
    #[garde(custom(domain_rule(PermissionKey::parse)))]
    pub key: String,
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–500 (default 100).
    #[garde(inner(range(min = 1, max = 500)))]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

async fn holders(
    state: State,
    member: OrgMember,
    Query(q): Query<HoldersQuery>,
) -> Result<crate::http::Paged<Uuid>, ApiError> {
    let key = parse_key(&q.key)?;
    let limit = q.limit.unwrap_or(100);
    let page = state
        .authz
        .store()
        .members_holding(
            member.org_id().as_uuid(),
            key,
            OffsetDateTime::now_utc(),
            q.cursor,
            limit as usize,
        )
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .ok_or_else(|| ApiError::not_found("no such organization"))?;
    Ok(crate::http::Paged {
        items: page.user_ids,
        pagination: crate::http::Pagination {
            limit,
            next_cursor: page.next_cursor.map(|c| c.to_string()),
            total: None,
        },
    })
}

/// A direct grant.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GrantDto {
    /// The member.
    pub user_id: Uuid,
    /// The key.
    pub key: &'static str,
    /// From when (RFC 3339), if it starts later than its creation.
    pub starts_at: Option<String>,
    /// Until when (RFC 3339), if limited.
    pub expires_at: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Who granted it.
    pub granted_by: Option<Uuid>,
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Where a page of grants starts: after the grant of `key` to the member, in member
/// then key order. Written `<user_id>:<key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GrantCursor(Uuid, &'static str);

impl std::fmt::Display for GrantCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl GrantCursor {
    /// A cursor as written by [`Display`](std::fmt::Display); 422 on `cursor` otherwise.
    fn parse(text: &str) -> Result<Self, ApiError> {
        text.split_once(':')
            .and_then(|(user, key)| {
                Some(Self(
                    Uuid::parse_str(user).ok()?,
                    PermissionKey::parse(key).ok()?.as_str(),
                ))
            })
            .ok_or_else(|| {
                ApiError::validation(vec![FieldError {
                    field: "cursor".to_owned(),
                    code: "invalid_value".to_owned(),
                    message: "must be the `next_cursor` of a previous page".to_owned(),
                }])
            })
    }
}

async fn list_grants(
    state: State,
    member: OrgMember,
    Query(q): Query<PageQuery<String>>,
) -> Result<Paged<GrantDto>, ApiError> {
    let after = q.cursor.as_deref().map(GrantCursor::parse).transpose()?;
    // An org's direct grants are few: read whole, paged here by member, then key.
    let grants = state
        .authz
        .store()
        .list_grants(member.org_id().as_uuid(), None)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(Paged::from_all(
        grants,
        |g| GrantCursor(g.user_id, g.grant.key.as_str()),
        Order::Ascending,
        after.as_ref(),
        q.limit(),
    )
    .map(grant_dto))
}

fn grant_dto(g: GrantRecord) -> GrantDto {
    GrantDto {
        user_id: g.user_id,
        key: g.grant.key.as_str(),
        starts_at: g.grant.starts_at.and_then(rfc3339),
        expires_at: g.grant.expires_at.and_then(rfc3339),
        reason: g.grant.reason,
        granted_by: g.granted_by,
    }
}

/// A grant as created: the grant and the org's settings version after the write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GrantCreated {
    /// The grant.
    #[serde(flatten)]
    pub grant: GrantDto,
    /// The org's new settings version; also a consistency token.
    pub version: u64,
}

/// The path of one grant, as a `Location`.
fn grant_location(org_id: Uuid, user_id: Uuid, key: PermissionKey) -> String {
    format!(
        "/api/v2/orgs/{org_id}/permissions/grants/{user_id}/{}",
        key.as_str()
    )
}

async fn get_grant(
    state: State,
    member: OrgMember,
    Path(p): Path<GrantPath>,
) -> Result<Fresh<GrantDto>, ApiError> {
    let key = PermissionKey::parse(&p.key).map_err(|_| ApiError::not_found("no such grant"))?;
    // A member's grants are few: read theirs, found here.
    let grants = state
        .authz
        .store()
        .list_grants(member.org_id().as_uuid(), Some(p.user_id))
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    grants
        .into_iter()
        .find(|g| g.grant.key == key)
        .map(|g| Fresh(grant_dto(g)))
        .ok_or_else(|| ApiError::not_found("no such grant"))
}

/// A new grant.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The member.
    #[garde(skip)]
    pub user_id: Uuid,
    /// The key.
    #[garde(custom(domain_rule(PermissionKey::parse)))]
    pub key: String,
    /// From when (RFC 3339); at once when absent. Until then the grant is stored but does
    /// not count.
    #[garde(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub starts_at: Option<OffsetDateTime>,
    /// Until when (RFC 3339, after now and after `starts_at`: otherwise 422);
    /// permanent when absent.
    #[garde(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub expires_at: Option<OffsetDateTime>,
    /// Why (shown in the audit log).
    #[garde(inner(length(chars, max = 500)))]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
}

async fn create_grant(
    state: State,
    member: OrgMember,
    Json(body): Json<GrantBody>,
) -> Result<Created<GrantCreated>, ApiError> {
    let key = parse_key(&body.key)?;
    let actor = member.user_id()?.as_uuid();
    let org_id = member.org_id().as_uuid();
    let grant = NewGrant {
        user_id: body.user_id,
        key,
        starts_at: body.starts_at,
        expires_at: body.expires_at,
        reason: body.reason,
        granted_by: None,
    };
    let version = service(&state, &member)
        .grant(org_id, actor, grant, OffsetDateTime::now_utc())
        .await?;
    // Read back as stored, so the answer is what `GET` of its `Location` shows.
    let shown = state
        .authz
        .store()
        .list_grants(org_id, Some(body.user_id))
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .into_iter()
        .find(|g| g.grant.key == key)
        .map(grant_dto)
        .ok_or_else(|| ApiError::not_found("the grant was revoked meanwhile"))?;
    Ok(Created::at(
        grant_location(org_id, body.user_id, key),
        GrantCreated {
            grant: shown,
            version,
        },
    ))
}

/// Path of one grant.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GrantPath {
    /// Org id.
    pub org_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// The key.
    pub key: String,
}

async fn revoke_grant(
    state: State,
    member: OrgMember,
    Path(p): Path<GrantPath>,
) -> Result<NoContent, ApiError> {
    let key = PermissionKey::parse(&p.key).map_err(|_| ApiError::not_found("no such grant"))?;
    let revoked = service(&state, &member)
        .revoke_grant(p.org_id, p.user_id, key)
        .await?;
    if !revoked {
        return Err(ApiError::not_found("no such grant"));
    }
    Ok(NoContent)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The names a schema-only enum documents.
    pub(crate) fn documented<T: JsonSchema>() -> Vec<String> {
        let schema = schemars::schema_for!(T);
        schema
            .get("enum")
            .and_then(serde_json::Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_documented_modules_are_the_domains() {
        let expected: Vec<String> = Module::ALL.iter().map(|m| m.as_str().to_owned()).collect();
        assert_eq!(documented::<ModuleName>(), expected);
    }
}
