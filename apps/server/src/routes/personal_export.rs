//! Personal data export (issue #17): a user asks for everything held about them
//! (`POST /api/v2/me/data-export`), an org's admin for what the org holds about a
//! member on the member's request (`POST /orgs/{org_id}/users/{user_id}/data-export`).
//! Each answers 202 with the request; the JSON file is built right after (a minute-ly
//! sweep re-runs a request a crash left queued) and downloaded from the request.

use actix_web::body::BoxBody;
use actix_web::{HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, Response, StatusCode};
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::{OrgId, UserId};
use tenancy_store::personal_data::{self, ExportRequest};
use uuid::Uuid;

use crate::auth::{Caller, OrgMember};
use crate::http::{Accepted, ApiError, ApiRoutes, ErrorCode, Fresh, Path, RouteDoc};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.post(
        "/api/v2/me/data-export",
        request_my_export,
        RouteDoc::new("request_my_data_export", "Ask for everything held about you (JSON)", "me")
            .description("Answers 202 with the request; the file is usually ready within seconds (follow `GET /api/v2/me/data-exports/{export_id}` until `status` is `succeeded`, then download it from `…/download`). It holds your account, every membership and profile (children, committee), removed memberships, privacy choices (your consents, with the notice version), invitations to your address, direct grants, district roles, sign-ins and sessions (time, address, browser), who read your record, and every audit and activity event where you are the actor or the subject (opened; a field erased earlier reads `[erased]`). Not your password (a one-way hash). The file is kept 7 days. Recorded as `data.export`.")
            .rate_class(RateClass::Export),
    );
    r.get(
        "/api/v2/me/data-exports/{export_id}",
        my_export,
        RouteDoc::new("get_my_data_export", "One of your data exports", "me")
            .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/me/data-exports/{export_id}/download",
        download_my_export,
        RouteDoc::new(
            "download_my_data_export",
            "Download your data export (JSON)",
            "me",
        )
        .description("404 until the export has `succeeded`, and after it expired.")
        .errors(&[ErrorCode::NotFound]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/{user_id}/data-export",
        request_member_export,
        RouteDoc::new("request_member_data_export", "Export what the org holds about a member, on their request (admins)", "members")
            .description("For a member's (or former member's) access request: the account as the org sees it, the membership and profile, a removed membership, privacy choices, invitations, direct grants, reads of their record, and the events of this org's audit trail where they are the actor or the subject. 202 with the request; follow and download it under `/api/v2/orgs/{org_id}/data-exports/{export_id}`. Recorded as `data.export` in the org's audit trail.")
            .org_admin()
            .rate_class(RateClass::Export)
            .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/data-exports/{export_id}",
        member_export,
        RouteDoc::new(
            "get_member_data_export",
            "A member data export of this org (admins)",
            "members",
        )
        .org_admin()
        .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/data-exports/{export_id}/download",
        download_member_export,
        RouteDoc::new(
            "download_member_data_export",
            "Download a member data export of this org (admins)",
            "members",
        )
        .org_admin()
        .errors(&[ErrorCode::NotFound]),
    );
}

/// A data export request.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DataExportView {
    /// The request's id.
    pub id: Uuid,
    /// Whose data.
    pub user_id: Uuid,
    /// The org, for an org admin's request.
    pub org_id: Option<Uuid>,
    /// `queued` (being built) or `succeeded` (ready to download).
    pub status: String,
    /// When it was asked for (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub requested_at: time::OffsetDateTime,
    /// When the file was ready (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<time::OffsetDateTime>,
    /// When the file is removed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: time::OffsetDateTime,
    /// The file's size in bytes, once ready.
    pub size: Option<u64>,
    /// Where to download the file once `status` is `succeeded`.
    pub download: String,
}

fn view(r: ExportRequest, download: String) -> DataExportView {
    DataExportView {
        id: r.id,
        user_id: r.user_id.as_uuid(),
        org_id: r.org_id.map(|o| o.as_uuid()),
        status: r.status,
        requested_at: r.created_at,
        finished_at: r.finished_at,
        expires_at: r.expires_at,
        size: r.size,
        download,
    }
}

/// Path of one of your exports.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MyExportPath {
    /// The export's id.
    pub export_id: Uuid,
}

/// Path of a member.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MemberPath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// The member's user id.
    pub user_id: Uuid,
}

/// Path of an org's export.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrgExportPath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// The export's id.
    pub export_id: Uuid,
}

/// The media type of an export file: JSON, named so that it is not taken for an API
/// envelope.
const EXPORT_MEDIA_TYPE: &str = "application/vnd.ptoc.personal-data-export+json";

/// A JSON file download.
#[derive(Debug)]
pub struct JsonFile {
    filename: String,
    body: Vec<u8>,
}

impl Responder for JsonFile {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(EXPORT_MEDIA_TYPE)
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", self.filename),
            ))
            .body(self.body)
    }
}

impl aide::OperationOutput for JsonFile {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(
            Some(StatusCode::Code(200)),
            Response {
                description: "The export file (JSON, `format`: `ptoc.personal-data-export/1`)"
                    .to_owned(),
                content: indexmap::IndexMap::from_iter([(
                    EXPORT_MEDIA_TYPE.to_owned(),
                    MediaType::default(),
                )]),
                ..Default::default()
            },
        )]
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("no such data export")
}

/// Builds the file now, off the request (a crash leaves it to the minute-ly sweep).
fn run_soon(state: &State, id: Uuid) {
    let db = state.db.clone();
    let archive = state.audit_archive_dir.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = personal_data::run_export(&db, &archive, id).await {
            tracing::warn!(error = %e, export_id = %id, "personal data export failed; retried within minutes");
        }
    });
}

async fn request_my_export(
    state: State,
    caller: Caller,
) -> Result<Accepted<DataExportView>, ApiError> {
    let me = caller.user_id();
    let request = personal_data::request_export(&state.db, &caller.audit_context(), me, None)
        .await?
        .ok_or_else(not_found)?;
    run_soon(&state, request.id);
    let download = format!("/api/v2/me/data-exports/{}/download", request.id);
    Ok(Accepted(view(request, download)))
}

/// `id` if it is one of `me`'s own exports (not an org's export about them).
async fn my_request(state: &State, me: UserId, id: Uuid) -> Result<ExportRequest, ApiError> {
    personal_data::find_request(&state.db, id)
        .await?
        .filter(|r| r.user_id == me && r.org_id.is_none())
        .ok_or_else(not_found)
}

async fn my_export(
    state: State,
    caller: Caller,
    Path(p): Path<MyExportPath>,
) -> Result<Fresh<DataExportView>, ApiError> {
    let request = my_request(&state, caller.user_id(), p.export_id).await?;
    let download = format!("/api/v2/me/data-exports/{}/download", request.id);
    Ok(Fresh(view(request, download)))
}

async fn download_my_export(
    state: State,
    caller: Caller,
    Path(p): Path<MyExportPath>,
) -> Result<JsonFile, ApiError> {
    let request = my_request(&state, caller.user_id(), p.export_id).await?;
    let body = personal_data::export_file(&state.db, request.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the export is not ready"))?;
    Ok(JsonFile {
        filename: format!("personal-data-{}.json", request.id),
        body,
    })
}

async fn request_member_export(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
) -> Result<Accepted<DataExportView>, ApiError> {
    let org = member.org_id();
    let request = personal_data::request_export(
        &state.db,
        &member.audit_context(),
        UserId::from_uuid(p.user_id),
        Some(org),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("no such member"))?;
    run_soon(&state, request.id);
    let download = format!("/api/v2/orgs/{org}/data-exports/{}/download", request.id);
    Ok(Accepted(view(request, download)))
}

/// `id` if it is an export of `org`.
async fn org_request(state: &State, org: OrgId, id: Uuid) -> Result<ExportRequest, ApiError> {
    personal_data::find_request(&state.db, id)
        .await?
        .filter(|r| r.org_id == Some(org))
        .ok_or_else(not_found)
}

async fn member_export(
    state: State,
    member: OrgMember,
    Path(p): Path<OrgExportPath>,
) -> Result<Fresh<DataExportView>, ApiError> {
    let org = member.org_id();
    let request = org_request(&state, org, p.export_id).await?;
    let download = format!("/api/v2/orgs/{org}/data-exports/{}/download", request.id);
    Ok(Fresh(view(request, download)))
}

async fn download_member_export(
    state: State,
    member: OrgMember,
    Path(p): Path<OrgExportPath>,
) -> Result<JsonFile, ApiError> {
    let request = org_request(&state, member.org_id(), p.export_id).await?;
    let body = personal_data::export_file(&state.db, request.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the export is not ready"))?;
    Ok(JsonFile {
        filename: format!("member-data-{}.json", request.id),
        body,
    })
}
