//! Adding someone to an org (`POST /orgs/{org_id}/users`) creates an invitation; the
//! org's admins list and revoke them (`/orgs/{org_id}/invitations`). See
//! docs/decisions.md, "Invitations instead of attached accounts".

use actix_web::http::Method;
use garde::Validate;
use permissions::PermissionKey;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{
    AddMemberRequest, InvitationRepository, MemberAdder, RevokeInvitationError, RoleChoice,
};
use tenancy::{Email, Invitation, InvitationId, InvitationStatus, PersonName, RoleId};
use uuid::Uuid;

use super::members::{ChildDto, RoleChoiceDto, RoleView, children, role_view};
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, Json, NoContent, Paged, Path, Query,
    Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "members";
    r.post(
        "/api/v2/orgs/{org_id}/users",
        add_member,
        RouteDoc::new("add_member", "Invite someone to the org", TAG)
            .description("Creates an invitation of the org for the e-mail address, with the role and the profile exactly as sent; it is pending for `INVITATION_TTL_DAYS` (default 14). No account is looked up or created: the answer is built from the request alone and is the same whether or not the address has an account. The person becomes a member when they accept it with a proven address. You cannot assign a role above your own; 409 if the address is a member of this org or has a pending invitation to it.")
            .permission(PermissionKey::UsersInvite)
            .rate_class(RateClass::Create)
            .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed, ErrorCode::PermissionDenied]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/invitations",
        list_invitations,
        RouteDoc::new(
            "list_invitations",
            "The org's invitations, newest first (cursor-paginated)",
            TAG,
        )
        .description(
            "A pending invitation past its expiry is listed as `expired`. Filter by `status`.",
        )
        .permission(PermissionKey::UsersInvite)
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/invitations/{invitation_id}",
        get_invitation,
        RouteDoc::new("get_invitation", "One invitation of the org", TAG)
            .description("What `POST …/users` created (its `Location`): status (a pending invitation past its expiry reads `expired`), role and profile as sent. Carries an `ETag`; `If-None-Match` with it answers 304 while the invitation is unchanged.")
            .permission(PermissionKey::UsersInvite)
            .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/invitations/{invitation_id}",
        revoke_invitation,
        RouteDoc::new("revoke_invitation", "Revoke a pending invitation", TAG)
            .description("Answers 204; the invitation stays listed as `revoked` (audited `invitation.revoke`). 409 if it is no longer pending (accepted, declined, expired or revoked already).")
            .permission(PermissionKey::UsersInvite)
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/invitations/{invitation_id}/resend",
        resend_invitation,
        RouteDoc::new("resend_invitation", "Send a pending invitation again", TAG)
            .description("A new e-mail with a new link; the earlier link stops working (audited `invitation.resend`). 409 if it is no longer pending.")
            .permission(PermissionKey::UsersInvite)
            .rate_class(RateClass::Create)
            .errors(&[ErrorCode::Conflict]),
    );
}

/// Someone to invite: their address, role and profile as the org knows them.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    /// E-mail address.
    #[garde(
        length(chars, max = 254),
        custom(super::common::domain_rule(Email::parse))
    )]
    pub email: String,
    /// Given name.
    #[garde(custom(super::common::domain_rule(PersonName::parse)))]
    pub first_name: String,
    /// Family name.
    #[garde(custom(super::common::domain_rule(PersonName::parse)))]
    pub last_name: String,
    /// Phone (up to 40 characters).
    #[garde(inner(length(chars, max = 40)))]
    #[schemars(length(max = 40))]
    pub phone: Option<String>,
    /// Role: a built-in name or `{"custom_role_id": "…"}` (default `volunteer`).
    #[garde(skip)]
    pub role: Option<RoleChoiceDto>,
    /// Committee (up to 100 characters).
    #[garde(inner(length(chars, max = 100)))]
    #[schemars(length(max = 100))]
    pub committee: Option<String>,
    /// Children (at most 20).
    #[garde(dive, length(max = 20))]
    pub children: Option<Vec<ChildDto>>,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatusDto {
    /// Open.
    Pending,
    /// Accepted: the person is a member.
    Accepted,
    /// Declined by the person.
    Declined,
    /// Not answered in time.
    Expired,
    /// Withdrawn by the org.
    Revoked,
}

impl From<InvitationStatus> for InvitationStatusDto {
    fn from(s: InvitationStatus) -> Self {
        match s {
            InvitationStatus::Pending => Self::Pending,
            InvitationStatus::Accepted => Self::Accepted,
            InvitationStatus::Declined => Self::Declined,
            InvitationStatus::Expired => Self::Expired,
            InvitationStatus::Revoked => Self::Revoked,
        }
    }
}

impl From<InvitationStatusDto> for InvitationStatus {
    fn from(s: InvitationStatusDto) -> Self {
        match s {
            InvitationStatusDto::Pending => Self::Pending,
            InvitationStatusDto::Accepted => Self::Accepted,
            InvitationStatusDto::Declined => Self::Declined,
            InvitationStatusDto::Expired => Self::Expired,
            InvitationStatusDto::Revoked => Self::Revoked,
        }
    }
}

/// An invitation of the org: only what the org itself typed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InvitationView {
    /// Invitation id.
    pub id: Uuid,
    /// The invited address.
    pub email: String,
    /// Given name, as typed.
    pub first_name: String,
    /// Family name, as typed.
    pub last_name: String,
    /// Phone, as typed.
    pub phone: Option<String>,
    /// The role they get on accepting.
    pub role: RoleView,
    /// Committee, as typed.
    pub committee: Option<String>,
    /// Children, as typed.
    pub children: Vec<ChildDto>,
    /// Where it stands now.
    pub status: InvitationStatusDto,
    /// The member who invited (absent for invitations from before invitations existed).
    pub invited_by: Option<Uuid>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it expires if still pending (RFC 3339).
    pub expires_at: String,
    /// Version.
    pub version: i64,
}

/// A timestamp as RFC 3339 (UTC as stored).
pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn invitation_view(inv: Invitation, now: time::OffsetDateTime) -> InvitationView {
    InvitationView {
        id: inv.id.as_uuid(),
        status: inv.status_at(now).into(),
        email: inv.email.to_string(),
        first_name: inv.profile.first_name.to_string(),
        last_name: inv.profile.last_name.to_string(),
        phone: inv.profile.phone,
        role: role_view(&inv.role),
        committee: inv.profile.committee,
        children: inv
            .profile
            .children
            .into_iter()
            .map(ChildDto::from)
            .collect(),
        invited_by: inv.invited_by.map(|u| u.as_uuid()),
        created_at: rfc3339(inv.created_at),
        expires_at: rfc3339(inv.expires_at),
        version: inv.version,
    }
}

async fn add_member(
    state: State,
    member: OrgMember,
    Json(body): Json<AddMemberBody>,
) -> Result<Created<InvitationView>, ApiError> {
    let invalid = |field: &str, msg: String| {
        ApiError::validation(vec![FieldError {
            field: field.into(),
            code: "invalid_value".into(),
            message: msg,
        }])
    };
    let email = Email::parse(&body.email).map_err(|e| invalid("email", e.to_string()))?;
    let first_name =
        PersonName::parse(&body.first_name).map_err(|e| invalid("first_name", e.to_string()))?;
    let last_name =
        PersonName::parse(&body.last_name).map_err(|e| invalid("last_name", e.to_string()))?;
    let role = match body.role {
        None => RoleChoice::Builtin(permissions::BuiltinRole::Volunteer),
        Some(RoleChoiceDto::Builtin(b)) => RoleChoice::Builtin(b.into()),
        Some(RoleChoiceDto::Custom { custom_role_id }) => {
            RoleChoice::Custom(RoleId(custom_role_id))
        }
    };
    let invitation = state
        .orgs
        .add_member(
            &member.audit_context(),
            AddMemberRequest {
                org_id: member.org_id(),
                actor: member.user_id()?,
                email,
                first_name,
                last_name,
                phone: body.phone,
                role,
                committee: body.committee,
                children: children(body.children).unwrap_or_default(),
                valid_for: time::Duration::days(i64::from(state.invitation_ttl_days)),
            },
        )
        .await?;
    let location = format!(
        "/api/v2/orgs/{}/invitations/{}",
        member.org_id(),
        invitation.id
    );
    Ok(Created::at(
        location,
        invitation_view(invitation, time::OffsetDateTime::now_utc()),
    ))
}

/// Which invitations, and a page of them.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct InvitationsQuery {
    /// Only invitations with this status (as of now).
    #[garde(skip)]
    pub status: Option<InvitationStatusDto>,
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

async fn list_invitations(
    state: State,
    member: OrgMember,
    Query(q): Query<InvitationsQuery>,
) -> Result<Paged<InvitationView>, ApiError> {
    let limit = crate::http::paging::page_limit(q.limit);
    let now = time::OffsetDateTime::now_utc();
    let rows = state
        .orgs
        .list_invitations(
            member.org_id(),
            q.status.map(Into::into),
            q.cursor.map(InvitationId::from_uuid),
            u64::from(limit) + 1,
            now,
        )
        .await?;
    Ok(Paged::from_overfetch(rows, limit, |i| i.id, None).map(|i| invitation_view(i, now)))
}

/// Path of one invitation.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InvitationPath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Invitation id.
    pub invitation_id: Uuid,
}

async fn get_invitation(
    state: State,
    member: OrgMember,
    Path(p): Path<InvitationPath>,
) -> Result<Tagged<InvitationView>, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let inv = state
        .orgs
        .get_invitation(member.org_id(), InvitationId::from_uuid(p.invitation_id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such invitation"))?;
    let version = inv.version;
    Ok(Tagged {
        data: invitation_view(inv, now),
        version,
    })
}

fn pending_only(e: RevokeInvitationError) -> ApiError {
    match e {
        RevokeInvitationError::NotFound => ApiError::not_found("no such invitation"),
        RevokeInvitationError::Ended(ended) => {
            ApiError::new(ErrorCode::Conflict, ended.to_string())
        }
        RevokeInvitationError::Unexpected(e) => ApiError::internal(e.0),
    }
}

async fn revoke_invitation(
    state: State,
    member: OrgMember,
    Path(p): Path<InvitationPath>,
) -> Result<NoContent, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    state
        .orgs
        .revoke_invitation(
            &member.audit_context(),
            member.org_id(),
            InvitationId::from_uuid(p.invitation_id),
            now,
        )
        .await
        .map_err(pending_only)?;
    Ok(NoContent)
}

async fn resend_invitation(
    state: State,
    member: OrgMember,
    Path(p): Path<InvitationPath>,
) -> Result<Reply<InvitationView>, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let sent = state
        .orgs
        .resend_invitation(
            &member.audit_context(),
            member.org_id(),
            InvitationId::from_uuid(p.invitation_id),
            now,
        )
        .await
        .map_err(pending_only)?;
    Ok(Reply(invitation_view(sent, now)))
}
