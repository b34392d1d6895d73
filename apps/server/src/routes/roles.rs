//! An org's custom roles (`/orgs/{org_id}/roles`): list, create, read, change, delete.
//!
//! Who may define what is "who may hand out what" (`tenancy::rules::check_role_definition`
//! and `check_role_edit`): a role at or below one's own rank, naming only keys one
//! holds, and only roles one could have created are changed or deleted.

use actix_web::http::Method;
use garde::Validate;
use permissions::{KeySet, PermissionKey};
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{CreateRoleRequest, OrgRepository, RoleChanges, UpdateRoleRequest};
use tenancy::{CustomRole, RoleId};
use uuid::Uuid;

use super::common::{domain_rule, required_version};
use super::permissions::RoleDto;
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, IfMatch, Json, NoContent, Order, PageQuery, Paged,
    Path, Query, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "roles";
    r.get(
        "/api/v2/orgs/{org_id}/roles",
        list_roles,
        RouteDoc::new("list_roles", "The org's custom roles", TAG)
            .description("In id (creation) order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
            .permission(PermissionKey::UsersView)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/roles",
        create_role,
        RouteDoc::new("create_role", "Define a custom role (e.g. Treasurer)", TAG)
            .description("The role counts as a rank at or below your own, and names only extra keys you hold now (403 otherwise, naming them in `details.keys_not_held`).")
            .permission(PermissionKey::UsersEditRoles)
            .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/roles/{role_id}",
        get_role,
        RouteDoc::new("get_role", "One custom role", TAG)
            .description("Carries an `ETag`; `If-None-Match` with it answers 304 while the role is unchanged.")
            .permission(PermissionKey::UsersView)
            .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::PATCH,
        "/api/v2/orgs/{org_id}/roles/{role_id}",
        update_role,
        RouteDoc::new("update_role", "Rename a custom role or change its rank, extra keys or maximum of holders", TAG)
            .description("Send the `version` you read (or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Who may hand out what: the role before and after the change must both be within your reach — at or below your rank, naming only keys you hold now (403, `details.keys_not_held`). A role counting as admin keeps its rank while its holders are the only active admins (409, `details.reason = last_admin`); the maximum cannot go below its current holders (409, `details.reason = below_holders`). Its holders' permissions change at once (every instance); audited `role.update`.")
            .permission(PermissionKey::UsersEditRoles)
            .rate_class(RateClass::Update)
            .errors(&[
                ErrorCode::NotFound,
                ErrorCode::Conflict,
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
                ErrorCode::ValidationFailed,
            ]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/roles/{role_id}",
        delete_role,
        RouteDoc::new("delete_role", "Delete a custom role nobody holds", TAG)
            .description("Send the `version` you read (`?version=` or `If-Match`): without either 428, a stale one 412. Refused with 409 `CONFLICT` (`details.reason = role_in_use`, with `members` and `pending_invitations`) while members hold the role or pending invitations offer it: give them another role first (`POST …/users/bulk-update`), so nobody's rights change as a side effect. Only roles within your reach (as for `PATCH`). Ended invitations that offered it keep its rank as a built-in role; a removed member restored later becomes `volunteer`. Answers 204; audited `role.delete`.")
            .permission(PermissionKey::UsersEditRoles)
            .rate_class(RateClass::Delete)
            .errors(&[
                ErrorCode::NotFound,
                ErrorCode::Conflict,
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
            ]),
    );
}

/// A custom role.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CustomRoleView {
    /// Role id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The built-in rank it counts as.
    pub counts_as: RoleDto,
    /// Keys its holders always hold.
    pub extra_keys: Vec<&'static str>,
    /// Maximum holders, if limited.
    pub max_holders: Option<u32>,
    /// Version, for `PATCH` and `DELETE`.
    pub version: i64,
}

fn custom_role_view(r: CustomRole) -> CustomRoleView {
    CustomRoleView {
        id: r.id.0,
        name: r.name,
        counts_as: r.counts_as.into(),
        extra_keys: r.extra_keys.iter().map(PermissionKey::as_str).collect(),
        max_holders: r.max_holders,
        version: r.version,
    }
}

async fn list_roles(
    state: State,
    member: OrgMember,
    Query(q): Query<PageQuery>,
) -> Result<Paged<CustomRoleView>, ApiError> {
    // An org has a handful of roles: read whole, paged here in id order.
    let roles = state.orgs.list_roles(member.org_id()).await?;
    Ok(Paged::from_all(
        roles,
        |r: &CustomRole| r.id.0,
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(custom_role_view))
}

/// A new custom role.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    /// Name, unique in the org (case-insensitively); not a built-in role's name.
    #[garde(length(chars, min = 2, max = 60))]
    pub name: String,
    /// The built-in rank it counts as.
    #[garde(skip)]
    pub counts_as: RoleDto,
    /// Keys its holders always hold.
    #[garde(length(max = 28), inner(custom(domain_rule(PermissionKey::parse))))]
    #[serde(default)]
    pub extra_keys: Vec<String>,
    /// At most this many holders (e.g. 1 for President).
    #[garde(inner(range(min = 1, max = 10000)))]
    #[schemars(range(min = 1, max = 10000))]
    pub max_holders: Option<u32>,
}

fn key_set(keys: &[String]) -> KeySet {
    keys.iter()
        .filter_map(|k| PermissionKey::parse(k).ok())
        .collect()
}

async fn create_role(
    state: State,
    member: OrgMember,
    Json(body): Json<CreateRoleBody>,
) -> Result<Created<CustomRoleView>, ApiError> {
    let counts_as: permissions::BuiltinRole = body.counts_as.into();
    let extra_keys = key_set(&body.extra_keys);
    // No rank above one's own, no key one doesn't hold now.
    let held = state
        .authz
        .keys_to_hand_out(member.org_id().as_uuid(), member.user_id()?.as_uuid())
        .await?;
    tenancy::rules::check_role_definition(member.rank()?, held, counts_as, extra_keys)?;
    // No extra key locked above the org (409 naming every locked key).
    super::permissions::service_as(&state, member.audit_context())
        .refuse_locked_exceptions(member.org_id().as_uuid(), extra_keys)
        .await?;
    let role = state
        .orgs
        .create_role(
            &member.audit_context(),
            CreateRoleRequest {
                org_id: member.org_id(),
                name: body.name,
                counts_as,
                extra_keys,
                max_holders: body.max_holders,
            },
        )
        .await?;
    let location = format!("/api/v2/orgs/{}/roles/{}", member.org_id(), role.id.0);
    Ok(Created::at(location, custom_role_view(role)))
}

/// Path of one custom role.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RolePath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Role id.
    pub role_id: Uuid,
}

async fn get_role(
    state: State,
    member: OrgMember,
    Path(p): Path<RolePath>,
) -> Result<Tagged<CustomRoleView>, ApiError> {
    let role = state
        .orgs
        .get_role(member.org_id(), RoleId(p.role_id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such role"))?;
    Ok(Tagged {
        version: role.version,
        data: custom_role_view(role),
    })
}

/// Absent → no change; `null` → no limit; a number → that limit.
fn max_change<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Changes to a custom role (absent fields stay as they are).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// New name, unique in the org (case-insensitively); not a built-in role's name.
    #[garde(inner(length(chars, min = 2, max = 60)))]
    #[schemars(length(min = 2, max = 60))]
    pub name: Option<String>,
    /// New rank it counts as.
    #[garde(skip)]
    pub counts_as: Option<RoleDto>,
    /// New extra keys (replaces the set; `[]` removes them all).
    #[garde(inner(length(max = 28), inner(custom(domain_rule(PermissionKey::parse)))))]
    pub extra_keys: Option<Vec<String>>,
    /// New maximum of holders (1–10000); `null` lifts the limit.
    #[garde(inner(inner(range(min = 1, max = 10000))))]
    #[serde(default, deserialize_with = "max_change")]
    #[schemars(with = "Option<u32>", range(min = 1, max = 10000))]
    pub max_holders: Option<Option<u32>>,
}

async fn update_role(
    state: State,
    member: OrgMember,
    Path(p): Path<RolePath>,
    if_match: IfMatch,
    Json(body): Json<UpdateRoleBody>,
) -> Result<Tagged<CustomRoleView>, ApiError> {
    let version = required_version(body.version, if_match)?;
    let extra_keys = body.extra_keys.as_deref().map(key_set);
    if let Some(keys) = extra_keys {
        // No extra key locked above the org (409 naming every locked key).
        super::permissions::service_as(&state, member.audit_context())
            .refuse_locked_exceptions(member.org_id().as_uuid(), keys)
            .await?;
    }
    let role = state
        .orgs
        .update_role(
            &member.audit_context(),
            UpdateRoleRequest {
                org_id: member.org_id(),
                actor: member.user_id()?,
                role_id: RoleId(p.role_id),
                expected_version: version,
                changes: RoleChanges {
                    name: body.name,
                    counts_as: body.counts_as.map(Into::into),
                    extra_keys,
                    max_holders: body.max_holders,
                },
            },
        )
        .await?;
    Ok(Tagged {
        version: role.version,
        data: custom_role_view(role),
    })
}

/// The version to delete.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
}

async fn delete_role(
    state: State,
    member: OrgMember,
    Path(p): Path<RolePath>,
    if_match: IfMatch,
    Query(q): Query<VersionQuery>,
) -> Result<NoContent, ApiError> {
    let version = required_version(q.version, if_match)?;
    state
        .orgs
        .delete_role(
            &member.audit_context(),
            member.org_id(),
            member.user_id()?,
            RoleId(p.role_id),
            version,
        )
        .await?;
    Ok(NoContent)
}
