//! Background jobs of an org: progress, an import's error report, an export's file.

use actix_web::body::BoxBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{Operation, Response, StatusCode};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use garde::Validate;
use jobs::export::ExportParams;
use jobs::table::{SheetFormat, push_csv_line};
use jobs::{Job, JobFilter, JobKind, JobStatus};
use permissions::PermissionKey;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::common::{attachment, file_response};
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, Fresh, Paged, Pagination, Path, Query, Reply, RouteDoc,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "jobs";
    r.get(
        "/api/v2/orgs/{org_id}/jobs",
        list_jobs,
        RouteDoc::new("list_jobs", "The org's background jobs, newest first", TAG)
            .description("Filter by `kind` and `status`; paginated (`limit`, `cursor`), with `meta.pagination.total`. Admins see every job of the org, other members the jobs they started (as for `GET …/jobs/{job_id}`); an API key sees none.")
            .permission(PermissionKey::UsersView)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/jobs/{job_id}",
        get_job,
        RouteDoc::new("get_job", "A background job's progress", TAG)
            .description("Rows done out of the total, failures so far, and links to the error report (imports) or the file (exports, when done). Visible to the member who started the job and to admins.")
            .permission(PermissionKey::UsersView),
    );
    r.post(
        "/api/v2/orgs/{org_id}/jobs/{job_id}/cancel",
        cancel_job,
        RouteDoc::new("cancel_job", "Cancel a queued or running job", TAG)
            .description("The job stops at its next step; rows an import applied before stay applied (each audited) and are counted in `succeeded_rows`, no row is ever half-applied. Its uploaded input rows are deleted. 409 once the job has ended. Allowed to the member who started the job and to admins; audited (`job.cancel`).")
            .permission(PermissionKey::UsersView)
            .rate_class(rate_limit::RateClass::Update)
            .errors(&[ErrorCode::Conflict]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/jobs/{job_id}/errors",
        job_errors,
        RouteDoc::new(
            "job_error_report",
            "An import's failed rows with the reason (CSV)",
            TAG,
        )
        .permission(PermissionKey::UsersView)
        .rate_class(rate_limit::RateClass::Export),
    );
    r.get(
        "/api/v2/orgs/{org_id}/jobs/{job_id}/download",
        download,
        RouteDoc::new("job_download", "An export job's file", TAG)
            .description("404 until the job has succeeded.")
            .permission(PermissionKey::UsersView)
            .rate_class(rate_limit::RateClass::Export),
    );
}

/// A background job.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobView {
    /// Job id.
    pub id: Uuid,
    /// `member_import` or `member_export`.
    pub kind: &'static str,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: &'static str,
    /// Rows in the input (import) or written (export, when done).
    pub total_rows: i64,
    /// Rows processed so far.
    pub processed_rows: i64,
    /// Rows applied.
    pub succeeded_rows: i64,
    /// Rows refused (see the error report).
    pub failed_rows: i64,
    /// Why the job failed, or the last transient error.
    pub error: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// When an ended job, with its error report and file, will be deleted (RFC 3339).
    pub expires_at: Option<String>,
    /// Where to follow it.
    pub status_url: String,
    /// The error report (imports).
    pub error_report_url: Option<String>,
    /// The file (exports, once succeeded).
    pub download_url: Option<String>,
}

/// The API view of a job, kept for `retention` after it ends.
pub(super) fn job_view(job: &Job, retention: std::time::Duration) -> JobView {
    let base = format!("/api/v2/orgs/{}/jobs/{}", job.org_id, job.id);
    JobView {
        id: job.id,
        kind: job.kind.as_str(),
        status: job.status.as_str(),
        total_rows: job.total,
        processed_rows: job.succeeded + job.failed,
        succeeded_rows: job.succeeded,
        failed_rows: job.failed,
        error: job.error.clone(),
        created_at: job.created_at.format(&Rfc3339).unwrap_or_default(),
        finished_at: job.finished_at.and_then(|t| t.format(&Rfc3339).ok()),
        expires_at: job
            .finished_at
            .filter(|_| job.status.is_finished())
            .and_then(|t| t.checked_add(time::Duration::try_from(retention).ok()?))
            .and_then(|t| t.format(&Rfc3339).ok()),
        error_report_url: (job.kind == JobKind::MemberImport).then(|| format!("{base}/errors")),
        download_url: (job.kind == JobKind::MemberExport && job.status == JobStatus::Succeeded)
            .then(|| format!("{base}/download")),
        status_url: base,
    }
}

/// A job kind to filter by.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKindDto {
    /// Member imports.
    MemberImport,
    /// Member exports.
    MemberExport,
}

/// A job status to filter by.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatusDto {
    /// Waiting for a worker.
    Queued,
    /// Being worked on.
    Running,
    /// Done.
    Succeeded,
    /// Given up.
    Failed,
    /// Stopped on request.
    Cancelled,
}

/// Filters and paging of the job list.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// Only jobs of this kind.
    #[garde(skip)]
    pub kind: Option<JobKindDto>,
    /// Only jobs in this status.
    #[garde(skip)]
    pub status: Option<JobStatusDto>,
}

async fn list_jobs(
    state: State,
    member: OrgMember,
    Query(q): Query<JobListQuery>,
) -> Result<Paged<JobView>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    // Who may see each job: its creator and the org's admins (an API key: none).
    let created_by = if member.is_admin() {
        None
    } else {
        match member.user_id() {
            Ok(me) => Some(me.as_uuid()),
            Err(_) => {
                return Ok(Paged {
                    items: Vec::new(),
                    pagination: Pagination {
                        limit,
                        next_cursor: None,
                        total: Some(0),
                    },
                });
            }
        }
    };
    let filter = JobFilter {
        kind: q.kind.map(|k| match k {
            JobKindDto::MemberImport => JobKind::MemberImport,
            JobKindDto::MemberExport => JobKind::MemberExport,
        }),
        status: q.status.map(|s| match s {
            JobStatusDto::Queued => JobStatus::Queued,
            JobStatusDto::Running => JobStatus::Running,
            JobStatusDto::Succeeded => JobStatus::Succeeded,
            JobStatusDto::Failed => JobStatus::Failed,
            JobStatusDto::Cancelled => JobStatus::Cancelled,
        }),
        created_by,
    };
    let (mut jobs, total) = state
        .jobs
        .list(
            member.org_id().as_uuid(),
            &filter,
            q.cursor,
            u64::from(limit) + 1,
        )
        .await
        .map_err(|e| ApiError::internal(e.0))?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = more
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Paged {
        items: jobs
            .iter()
            .map(|j| job_view(j, state.job_retention))
            .collect(),
        pagination: Pagination {
            limit,
            next_cursor,
            total: Some(total),
        },
    })
}

/// Path of one job.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobPath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Job id.
    pub job_id: Uuid,
}

/// The job if it is this org's and the caller may see it (its creator or an admin);
/// 404 otherwise, so ids cannot be probed.
async fn visible_job(state: &State, member: &OrgMember, id: Uuid) -> Result<Job, ApiError> {
    let job = state
        .jobs
        .get(member.org_id().as_uuid(), id)
        .await
        .map_err(|e| ApiError::internal(e.0))?
        .ok_or_else(|| ApiError::not_found("no such job"))?;
    let mine = member
        .user_id()
        .is_ok_and(|u| job.created_by == Some(u.as_uuid()));
    if !mine && !member.is_admin() {
        return Err(ApiError::not_found("no such job"));
    }
    Ok(job)
}

async fn get_job(
    state: State,
    member: OrgMember,
    Path(p): Path<JobPath>,
) -> Result<Fresh<JobView>, ApiError> {
    Ok(Fresh(job_view(
        &visible_job(&state, &member, p.job_id).await?,
        state.job_retention,
    )))
}

async fn cancel_job(
    state: State,
    member: OrgMember,
    Path(p): Path<JobPath>,
) -> Result<Reply<JobView>, ApiError> {
    let job = visible_job(&state, &member, p.job_id).await?;
    let ended = || {
        ApiError::new(
            ErrorCode::Conflict,
            "the job has already ended and cannot be cancelled",
        )
    };
    if job.status.is_finished() {
        return Err(ended());
    }
    let Some(cancelled) = state
        .jobs
        .cancel(&member.audit_context(), &job)
        .await
        .map_err(|e| ApiError::internal(e.0))?
    else {
        // It ended between the read and the update.
        return Err(ended());
    };
    Ok(Reply(job_view(&cancelled, state.job_retention)))
}

type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A file download (CSV or XLSX).
pub struct Download {
    content_type: &'static str,
    filename: String,
    body: Body,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

impl Responder for Download {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        attachment(self.content_type, &self.filename, self.body)
    }
}

impl aide::OperationOutput for Download {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(Some(StatusCode::Code(200)), file_response("The file"))]
    }
}

/// Failed rows per read while streaming the error report.
const REPORT_PAGE: u64 = 500;

/// The error report's columns.
const REPORT_COLUMNS: [&str; 9] = [
    "row",
    "reason",
    "email",
    "first_name",
    "last_name",
    "role",
    "phone",
    "committee",
    "children",
];

async fn job_errors(
    state: State,
    member: OrgMember,
    Path(p): Path<JobPath>,
) -> Result<Download, ApiError> {
    let job = visible_job(&state, &member, p.job_id).await?;
    if job.kind != JobKind::MemberImport {
        return Err(ApiError::not_found("only imports have an error report"));
    }
    let mut header = String::new();
    push_csv_line(&mut header, &REPORT_COLUMNS);
    let queue = state.jobs.clone();
    let (org, id) = (job.org_id, job.id);
    let pages = stream::unfold(Some(0_i64), move |after| {
        let queue = queue.clone();
        async move {
            let after = after?;
            match queue.failures(org, id, after, REPORT_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let mut buf = String::new();
                    let last = rows.last().map_or(after, |r| r.seq);
                    for r in rows {
                        let cell = |k: &str| {
                            r.payload
                                .get("cells")
                                .and_then(|c| c.get(k))
                                .and_then(serde_json::Value::as_str)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let mut cells = vec![r.seq.to_string(), r.reason.clone()];
                        cells.extend(REPORT_COLUMNS[2..].iter().map(|k| cell(k)));
                        push_csv_line(&mut buf, &cells);
                    }
                    Some((Ok(Bytes::from(buf)), Some(last)))
                }
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        }
    });
    Ok(Download {
        content_type: SheetFormat::Csv.content_type(),
        filename: format!("import-errors-{id}.csv"),
        body: stream::once(async move { Ok(Bytes::from(header)) })
            .chain(pages)
            .boxed(),
    })
}

async fn download(
    state: State,
    member: OrgMember,
    Path(p): Path<JobPath>,
) -> Result<Download, ApiError> {
    let job = visible_job(&state, &member, p.job_id).await?;
    if job.kind != JobKind::MemberExport || job.status != JobStatus::Succeeded {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the export is not ready",
        ));
    }
    let format = serde_json::from_value::<ExportParams>(job.params.clone())
        .map(|p| p.format)
        .unwrap_or(SheetFormat::Csv);
    let queue = state.jobs.clone();
    let (org, id) = (job.org_id, job.id);
    // One stored part (≤ 1 MiB) in memory at a time.
    let body = stream::unfold(Some(0_i32), move |part| {
        let queue = queue.clone();
        async move {
            let part = part?;
            match queue.file_part(org, id, part).await {
                Ok(Some(data)) => Some((Ok(Bytes::from(data)), Some(part + 1))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        }
    })
    .boxed();
    Ok(Download {
        content_type: format.content_type(),
        filename: format!("members-{org}.{}", format.extension()),
        body,
    })
}
