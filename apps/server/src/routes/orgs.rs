//! Organizations: create, list the caller's, read, edit, rotate the signup code, join.

use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{CreateOrgRequest, OrgChanges, OrgRepository};
use tenancy::{Membership, MembershipStatus, OrgKind, Organization, SignupCode};

use super::common::{domain_rule, generate_code};
use crate::auth::{Caller, OrgMember};
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, Json, NoContent, Order, PageQuery, Paged, Query,
    Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.get(
        "/api/v2/me",
        me,
        RouteDoc::new("me", "The caller, with their memberships", "me"),
    );
    r.post(
        "/api/v2/orgs",
        create_org,
        RouteDoc::new(
            "create_org",
            "Create a standalone organization; the caller becomes its first admin",
            "orgs",
        )
        .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs",
        list_my_orgs,
        RouteDoc::new(
            "list_orgs",
            "The organizations the caller belongs to",
            "orgs",
        )
        .description(
            "In id order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.",
        )
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/join",
        join_org,
        RouteDoc::new(
            "join_org",
            "Join an organization with its signup code (as a volunteer)",
            "orgs",
        )
        .description(
            "A member an admin removed cannot rejoin with the code (403): an admin \
             restores the membership instead. Someone who left on their own may rejoin.",
        )
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PermissionDenied,
        ]),
    );
    r.get(
        "/api/v2/orgs/{org_id}",
        get_org,
        RouteDoc::new("get_org", "One organization (members only)", "orgs")
            .description("Carries an `ETag`; `If-None-Match` with it answers 304 while the organization is unchanged."),
    );
    r.route(
        actix_web::http::Method::PATCH,
        "/api/v2/orgs/{org_id}",
        update_org,
        RouteDoc::new("update_org", "Edit the organization's settings", "orgs")
            .description(
                "Send the `version` you read (or `If-Match` with the `ETag`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.",
            )
            .org_admin()
            .errors(&[
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
                ErrorCode::Conflict,
            ]),
    );
    r.route(
        actix_web::http::Method::DELETE,
        "/api/v2/orgs/{org_id}",
        delete_org,
        RouteDoc::new("delete_org", "Delete the organization (its admins)", "orgs")
            .description(
                "Send the `version` you read (`?version=` or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412. \
                 The org is closed at once for everyone: every membership ends (the org disappears from `GET /me` and `GET /orgs`, its routes answer 404), \
                 pending invitations and API keys are revoked, queued and running jobs are cancelled, its signup code stops working and it leaves its school and district. \
                 Nothing is erased: the org is archived with its settings, roles and the ended memberships, and its audit chain stays intact and verifiable. \
                 Answers 204; audited `org.delete` (with `api_key.revoke` and `job.cancel` for what it stopped).",
            )
            .org_admin()
            .rate_class(rate_limit::RateClass::Delete)
            .errors(&[
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
            ]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/signup-code",
        rotate_signup_code,
        RouteDoc::new(
            "rotate_signup_code",
            "Replace the signup code; the old one stops working",
            "orgs",
        )
        .org_admin()
        .errors(&[ErrorCode::Conflict]),
    );
}

/// The kind of organization.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgKindDto {
    /// Parent-Teacher Organization.
    Pto,
    /// Parent-Teacher Association.
    Pta,
    /// Parent-Teacher-Student Association.
    Ptsa,
    /// Another parent group.
    Other,
}

impl From<OrgKindDto> for OrgKind {
    fn from(k: OrgKindDto) -> Self {
        match k {
            OrgKindDto::Pto => Self::Pto,
            OrgKindDto::Pta => Self::Pta,
            OrgKindDto::Ptsa => Self::Ptsa,
            OrgKindDto::Other => Self::Other,
        }
    }
}

/// An organization as members see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrgView {
    /// Org id.
    pub id: uuid::Uuid,
    /// Name.
    pub name: String,
    /// `pto`, `pta`, `ptsa` or `other`.
    pub kind: String,
    /// Its school, if any.
    pub school_id: Option<uuid::Uuid>,
    /// Its district, if any.
    pub district_id: Option<uuid::Uuid>,
    /// Signup code (shown to admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signup_code: Option<String>,
    /// Branding.
    pub branding: serde_json::Value,
    /// `active`, `suspended` or `archived`.
    pub status: String,
    /// Version, for `PATCH`.
    pub version: i64,
}

fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn org_view(o: Organization, show_code: bool) -> OrgView {
    OrgView {
        id: o.id.as_uuid(),
        name: o.name,
        kind: enum_str(&o.kind),
        school_id: o.school_id,
        district_id: o.district_id,
        signup_code: show_code.then(|| o.signup_code.to_string()),
        branding: o.branding,
        status: enum_str(&o.status),
        version: o.version,
    }
}

/// A membership as its member sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MembershipView {
    /// Org id.
    pub org_id: uuid::Uuid,
    /// Org name.
    pub org_name: String,
    /// Role name (`admin`, or a custom role's name).
    pub role: String,
    /// The built-in rank the role counts as.
    pub rank: String,
    /// `active`, `invited` or `suspended`.
    pub status: String,
}

fn membership_view(org: &Organization, m: &Membership) -> MembershipView {
    MembershipView {
        org_id: org.id.as_uuid(),
        org_name: org.name.clone(),
        role: m.role.name().to_owned(),
        rank: m.role.rank().as_str().to_owned(),
        status: enum_str(&m.status),
    }
}

/// The caller.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MeView {
    /// The user.
    pub user: super::auth::UserView,
    /// Whether the address is proven (a verification or invitation link).
    pub email_verified: bool,
    /// The language of the account's e-mail (`null`: English); `PATCH /me` changes it.
    pub locale: Option<String>,
    /// The account's version, for `PATCH /me`.
    pub version: i64,
    /// Their memberships.
    pub memberships: Vec<MembershipView>,
}

async fn me(state: State, caller: Caller) -> Result<Tagged<MeView>, ApiError> {
    // From the account views' cache (retired by every change it shows).
    let account = state
        .account_views
        .account(caller.user_id())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
    Ok(Tagged {
        version: account.version,
        data: MeView {
            email_verified: account.email_verified,
            locale: account.locale.map(String::from),
            version: account.version,
            user: account.user.into(),
            memberships: account
                .memberships
                .into_iter()
                .map(|m| MembershipView {
                    org_id: m.org_id.as_uuid(),
                    org_name: m.org_name,
                    role: m.role.name().to_owned(),
                    rank: m.role.rank().as_str().to_owned(),
                    status: enum_str(&m.status),
                })
                .collect(),
        },
    })
}

/// A new organization.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = create_org_example())]
pub struct CreateOrgBody {
    /// Display name.
    #[garde(length(chars, min = 2, max = 200))]
    pub name: String,
    /// `pto`, `pta`, `ptsa` or `other` (default `pto`).
    #[garde(skip)]
    pub kind: Option<OrgKindDto>,
    /// Signup code (4–32 letters/digits); generated when absent.
    #[garde(inner(custom(domain_rule(SignupCode::parse))))]
    pub signup_code: Option<String>,
}

fn create_org_example() -> serde_json::Value {
    serde_json::json!({"name": "Sunset Elementary PTO", "kind": "pto", "signup_code": "SUNSET2024"})
}

/// An org with the caller's membership in it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrgWithMembership {
    /// The org.
    pub org: OrgView,
    /// The caller's membership.
    pub membership: MembershipView,
}

async fn create_org(
    state: State,
    caller: Caller,
    Json(body): Json<CreateOrgBody>,
) -> Result<Created<OrgWithMembership>, ApiError> {
    let signup_code = match &body.signup_code {
        Some(c) => SignupCode::parse(c)
            .map_err(|e| ApiError::validation(vec![super::auth::field("signup_code", e)]))?,
        None => generate_code(),
    };
    let (org, membership) = state
        .orgs
        .create_org(
            &caller.audit_context(),
            CreateOrgRequest {
                name: body.name,
                kind: body.kind.map_or(OrgKind::Pto, OrgKind::from),
                school_id: None,
                signup_code,
                creator: caller.user_id(),
            },
        )
        .await?;
    let membership = membership_view(&org, &membership);
    Ok(Created::at(
        format!("/api/v2/orgs/{}", org.id),
        OrgWithMembership {
            org: org_view(org, true),
            membership,
        },
    ))
}

async fn list_my_orgs(
    state: State,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Paged<OrgWithMembership>, ApiError> {
    // A user's memberships are few: read whole, paged here in org id order.
    let mut list = state.orgs.memberships_of(caller.user_id()).await?;
    list.retain(|(_, m)| m.status == MembershipStatus::Active);
    Ok(Paged::from_all(
        list,
        |(o, _)| o.id.as_uuid(),
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(|(o, m)| {
        let membership = membership_view(&o, &m);
        let admin = m.is_active_admin();
        OrgWithMembership {
            org: org_view(o, admin),
            membership,
        }
    }))
}

/// A signup code.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The organization's signup code (case and separators do not matter).
    #[garde(length(chars, max = 64))]
    pub signup_code: String,
}

async fn join_org(
    state: State,
    caller: Caller,
    Json(body): Json<JoinBody>,
) -> Result<Created<OrgWithMembership>, ApiError> {
    let unknown =
        || ApiError::not_found("no organization has that signup code; check it with your PTO");
    let code = SignupCode::parse(&body.signup_code).map_err(|_| unknown())?;
    let (org, m) = state
        .orgs
        .join_by_code(&caller.audit_context(), &code, caller.user_id())
        .await?;
    let membership = membership_view(&org, &m);
    Ok(Created::at(
        format!("/api/v2/orgs/{}/users/{}", org.id, caller.user_id()),
        OrgWithMembership {
            org: org_view(org, false),
            membership,
        },
    ))
}

async fn get_org(state: State, member: OrgMember) -> Result<Tagged<OrgView>, ApiError> {
    let org = state
        .orgs
        .get_org(member.org_id())
        .await?
        .ok_or_else(|| ApiError::not_found("no such organization"))?;
    Ok(Tagged {
        version: org.version,
        data: org_view(org, member.is_admin()),
    })
}

/// Changes to an organization.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgBody {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// New name.
    #[garde(inner(length(chars, min = 2, max = 200)))]
    #[schemars(length(min = 2, max = 200))]
    pub name: Option<String>,
    /// New kind.
    #[garde(skip)]
    pub kind: Option<OrgKindDto>,
    /// New branding (JSON object).
    #[garde(skip)]
    pub branding: Option<serde_json::Map<String, serde_json::Value>>,
}

async fn update_org(
    state: State,
    member: OrgMember,
    if_match: crate::http::IfMatch,
    Json(body): Json<UpdateOrgBody>,
) -> Result<Tagged<OrgView>, ApiError> {
    let version = Some(super::common::required_version(body.version, if_match)?);
    let org = state
        .orgs
        .update_org(
            &member.audit_context(),
            member.org_id(),
            version,
            OrgChanges {
                name: body.name,
                kind: body.kind.map(OrgKind::from),
                branding: body.branding.map(serde_json::Value::Object),
                signup_code: None,
            },
        )
        .await?;
    Ok(Tagged {
        version: org.version,
        data: org_view(org, true),
    })
}

async fn rotate_signup_code(state: State, member: OrgMember) -> Result<Reply<OrgView>, ApiError> {
    let org = state
        .orgs
        .update_org(
            &member.audit_context(),
            member.org_id(),
            None,
            OrgChanges {
                signup_code: Some(generate_code()),
                ..OrgChanges::default()
            },
        )
        .await?;
    Ok(Reply(org_view(org, true)))
}

/// The version to delete.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrgQuery {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
}

async fn delete_org(
    state: State,
    member: OrgMember,
    if_match: crate::http::IfMatch,
    crate::http::Query(q): crate::http::Query<DeleteOrgQuery>,
) -> Result<NoContent, ApiError> {
    member.user_id()?;
    let version = super::common::required_version(q.version, if_match)?;
    let ctx = member.audit_context();
    let org = member.org_id();
    let deleted = state.orgs.delete_org(&ctx, org, version).await?;
    tracing::info!(%org, members = deleted.members, invitations = deleted.invitations, api_keys = deleted.api_keys, "organization deleted");
    // Its unfinished jobs stop too. Should this fail, they stop on their own: nobody
    // is a member any more, so every row an import applies is refused.
    if let Err(e) = state.jobs.cancel_unfinished(&ctx, org.as_uuid()).await {
        tracing::warn!(error = %e, %org, "could not cancel the deleted organization's jobs");
    }
    Ok(NoContent)
}
