//! An org's members (`/orgs/{org_id}/users`: a user as seen in that org) and its
//! custom roles.

use actix_web::http::Method;
use garde::Validate;
use permissions::{KeySet, PermissionKey};
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{
    ChangeMemberError, ChangeMemberRequest, CreateRoleError, CreateRoleRequest, OrgRepository,
    RoleChoice,
};
use tenancy::{CustomRole, Membership, MembershipStatus, RoleAssignment, RoleId, User, UserId};
use uuid::Uuid;

use super::auth::domain_rule;
use super::permissions::RoleDto;
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, IfMatch, Json, Paged, Pagination, Path,
    Query, Reply, RouteDoc, State,
};

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "members";
    r.get(
        "/api/v2/orgs/{org_id}/users",
        list_members,
        RouteDoc::new(
            "list_members",
            "The org's members, ordered by user id (cursor-paginated)",
            TAG,
        )
        .permission(PermissionKey::UsersView)
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/users/{user_id}",
        get_member,
        RouteDoc::new("get_member", "One member", TAG).permission(PermissionKey::UsersView),
    );
    r.route(
        Method::PATCH,
        "/api/v2/orgs/{org_id}/users/{user_id}",
        update_member,
        RouteDoc::new("update_member", "Change a member's role, status or term", TAG)
            .description("Nobody raises their own role or assigns a role above their own; the last active admin cannot be demoted or suspended (409). Send `version` or `If-Match`.")
            .permission(PermissionKey::UsersEditRoles)
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::Conflict, ErrorCode::VersionMismatch, ErrorCode::ValidationFailed]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/users/{user_id}",
        remove_member,
        RouteDoc::new("remove_member", "Remove a member from the org", TAG)
            .description("The last active admin cannot be removed (409).")
            .permission(PermissionKey::UsersRemove)
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/roles",
        list_roles,
        RouteDoc::new("list_roles", "The org's custom roles", TAG)
            .permission(PermissionKey::UsersView),
    );
    r.post(
        "/api/v2/orgs/{org_id}/roles",
        create_role,
        RouteDoc::new("create_role", "Define a custom role (e.g. Treasurer)", TAG)
            .permission(PermissionKey::UsersEditRoles)
            .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
}

/// A member's role.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RoleView {
    /// `builtin` or `custom`.
    pub kind: &'static str,
    /// Role name.
    pub name: String,
    /// The built-in rank it counts as.
    pub rank: RoleDto,
    /// The custom role's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}

/// A member as the org sees them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberView {
    /// User id.
    pub user_id: Uuid,
    /// E-mail.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Their role.
    pub role: RoleView,
    /// `active`, `invited` or `suspended`.
    pub status: &'static str,
    /// Committee, if any.
    pub committee: Option<String>,
    /// End of the officer term (RFC 3339), if any.
    pub role_ends_at: Option<String>,
    /// Version, for updates.
    pub version: i64,
}

fn status_str(s: MembershipStatus) -> &'static str {
    match s {
        MembershipStatus::Active => "active",
        MembershipStatus::Invited => "invited",
        MembershipStatus::Suspended => "suspended",
    }
}

fn role_view(r: &RoleAssignment) -> RoleView {
    match r {
        RoleAssignment::Builtin { role } => RoleView {
            kind: "builtin",
            name: role.as_str().to_owned(),
            rank: (*role).into(),
            id: None,
        },
        RoleAssignment::Custom {
            id,
            name,
            counts_as,
            ..
        } => RoleView {
            kind: "custom",
            name: name.clone(),
            rank: (*counts_as).into(),
            id: Some(id.0),
        },
    }
}

fn member_view(u: User, m: Membership) -> MemberView {
    MemberView {
        user_id: u.id.as_uuid(),
        email: u.email.to_string(),
        first_name: u.first_name.to_string(),
        last_name: u.last_name.to_string(),
        role: role_view(&m.role),
        status: status_str(m.status),
        committee: m.committee,
        role_ends_at: m.role_ends_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        version: m.version,
    }
}

/// Paging of the member list.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct MemberPageQuery {
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    pub limit: Option<u32>,
}

async fn list_members(
    state: State,
    member: OrgMember,
    Query(q): Query<MemberPageQuery>,
) -> Result<Paged<MemberView>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let mut rows = state
        .orgs
        .list_members(
            member.org_id(),
            q.cursor.map(UserId::from_uuid),
            u64::from(limit) + 1,
        )
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|(u, _)| u.id.to_string())
    } else {
        None
    };
    Ok(Paged {
        items: rows.into_iter().map(|(u, m)| member_view(u, m)).collect(),
        pagination: Pagination {
            limit,
            next_cursor,
            total: None,
        },
    })
}

/// Path of one member.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MemberPath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// User id.
    pub user_id: Uuid,
}

async fn get_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
) -> Result<Reply<MemberView>, ApiError> {
    let (u, m) = state
        .orgs
        .get_member(member.org_id(), UserId::from_uuid(p.user_id))
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    Ok(Reply(member_view(u, m)))
}

/// A role named by the client.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RoleChoiceDto {
    /// A built-in role by name.
    Builtin(RoleDto),
    /// A custom role of the org by id.
    Custom {
        /// The custom role's id.
        custom_role_id: Uuid,
    },
}

/// Status a member may be set to.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusDto {
    /// Active.
    Active,
    /// Suspended (holds no permissions).
    Suspended,
}

/// Changes to a member.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberBody {
    /// The version you read.
    #[garde(skip)]
    pub version: Option<i64>,
    /// New role: a built-in name (`board_member`) or `{"custom_role_id": "…"}`.
    #[garde(skip)]
    pub role: Option<RoleChoiceDto>,
    /// New status.
    #[garde(skip)]
    pub status: Option<StatusDto>,
    /// End of the officer term (RFC 3339); `null` clears it.
    #[garde(skip)]
    #[serde(default, deserialize_with = "term_end")]
    #[schemars(with = "Option<String>")]
    pub role_ends_at: Option<Option<time::OffsetDateTime>>,
}

/// Absent → no change; `null` → clear; an RFC 3339 time → set.
fn term_end<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<time::OffsetDateTime>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    match raw {
        None => Ok(Some(None)),
        Some(s) => time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .map(|t| Some(Some(t)))
            .map_err(serde::de::Error::custom),
    }
}

fn change_error(e: ChangeMemberError) -> ApiError {
    match e {
        ChangeMemberError::NotFound => ApiError::not_found("no such member"),
        ChangeMemberError::UnknownRole => ApiError::validation(vec![FieldError {
            field: "role.custom_role_id".into(),
            code: "unknown".into(),
            message: "no such role in this organization".into(),
        }]),
        ChangeMemberError::VersionMismatch { current } => ApiError::new(
            ErrorCode::VersionMismatch,
            "the member changed since you read it",
        )
        .with_details(serde_json::json!({"current_version": current})),
        ChangeMemberError::Refused(r) => {
            let code = match r {
                tenancy::rules::RoleChangeRefused::LastAdmin
                | tenancy::rules::RoleChangeRefused::RoleFull { .. } => ErrorCode::Conflict,
                _ => ErrorCode::PermissionDenied,
            };
            ApiError::new(code, r.to_string())
        }
        ChangeMemberError::Unexpected(e) => ApiError::internal(e.0),
    }
}

async fn update_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
    if_match: IfMatch,
    Json(body): Json<UpdateMemberBody>,
) -> Result<Reply<MemberView>, ApiError> {
    let target = UserId::from_uuid(p.user_id);
    state
        .orgs
        .change_member(
            &member.audit_context(),
            ChangeMemberRequest {
                org_id: member.org_id(),
                actor: member.user_id()?,
                target,
                expected_version: body.version.or(if_match.0),
                role: body.role.map(|r| match r {
                    RoleChoiceDto::Builtin(b) => RoleChoice::Builtin(b.into()),
                    RoleChoiceDto::Custom { custom_role_id } => {
                        RoleChoice::Custom(RoleId(custom_role_id))
                    }
                }),
                status: body.status.map(|s| match s {
                    StatusDto::Active => MembershipStatus::Active,
                    StatusDto::Suspended => MembershipStatus::Suspended,
                }),
                role_ends_at: body.role_ends_at,
            },
        )
        .await
        .map_err(change_error)?;
    state
        .authz
        .member_changed(member.org_id().as_uuid(), target.as_uuid())
        .await;
    let (u, m) = state
        .orgs
        .get_member(member.org_id(), target)
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    Ok(Reply(member_view(u, m)))
}

/// The outcome of a removal.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Removed {
    /// Always `true`.
    pub removed: bool,
}

async fn remove_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
) -> Result<Reply<Removed>, ApiError> {
    state
        .orgs
        .remove_member(
            &member.audit_context(),
            member.org_id(),
            member.user_id()?,
            UserId::from_uuid(p.user_id),
        )
        .await
        .map_err(change_error)?;
    state
        .authz
        .member_changed(member.org_id().as_uuid(), p.user_id)
        .await;
    Ok(Reply(Removed { removed: true }))
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
}

fn custom_role_view(r: CustomRole) -> CustomRoleView {
    CustomRoleView {
        id: r.id.0,
        name: r.name,
        counts_as: r.counts_as.into(),
        extra_keys: r.extra_keys.iter().map(PermissionKey::as_str).collect(),
        max_holders: r.max_holders,
    }
}

async fn list_roles(
    state: State,
    member: OrgMember,
) -> Result<Reply<Vec<CustomRoleView>>, ApiError> {
    let roles = state
        .orgs
        .list_roles(member.org_id())
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    Ok(Reply(roles.into_iter().map(custom_role_view).collect()))
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
    pub max_holders: Option<u32>,
}

async fn create_role(
    state: State,
    member: OrgMember,
    Json(body): Json<CreateRoleBody>,
) -> Result<Created<CustomRoleView>, ApiError> {
    let counts_as: permissions::BuiltinRole = body.counts_as.into();
    if counts_as > member.membership()?.role.rank() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "you cannot define a role above your own",
        ));
    }
    let extra_keys: KeySet = body
        .extra_keys
        .iter()
        .filter_map(|k| PermissionKey::parse(k).ok())
        .collect();
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
        .await
        .map_err(|e| match e {
            CreateRoleError::DuplicateName => {
                ApiError::new(ErrorCode::Conflict, "a role with this name exists")
            }
            CreateRoleError::ReservedName => ApiError::validation(vec![FieldError {
                field: "name".into(),
                code: "reserved".into(),
                message: "the name of a built-in role cannot be reused".into(),
            }]),
            CreateRoleError::OrgNotFound => ApiError::not_found("no such organization"),
            CreateRoleError::Unexpected(e) => ApiError::internal(e.0),
        })?;
    Ok(Created(custom_role_view(role)))
}
