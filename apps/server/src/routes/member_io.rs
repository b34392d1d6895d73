//! Adding members in bulk: import (CSV or XLSX upload; a dry run
//! reports errors and duplicates, a real run is a durable background job) and export
//! (CSV or XLSX, streamed; large exports run as a job with a download link).

use std::future::Future;
use std::pin::Pin;

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, RequestBody, Response, StatusCode};
use futures_util::StreamExt;
use futures_util::stream;
use garde::Validate;
use jobs::export::{ExportParams, ExportSpec, MemberPages, TempFile};
use jobs::import::{DryRun, DryRunReport, ExistingMembers, ImportParams};
use jobs::table::{Cancel, Counters, RawRow, ReadError, SheetFormat, SheetLimits};
use jobs::{JobKind, JobStoreError};
use permissions::PermissionKey;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::Deserialize;

use super::common::{FileStream, attachment, file_response};
use super::jobs::{JobView, job_view};
use super::members::{MemberFilterQuery, OrderDto, SortDto, StatusFilterDto};
use crate::auth::OrgMember;
use crate::http::extract::{BodyLimit, declared_over, too_large};
use crate::http::multipart::{ContentType, Event, MultipartError, MultipartReader, PartHeaders};
use crate::http::{Accepted, ApiError, ApiRoutes, ErrorCode, FieldError, Query, Reply, RouteDoc};
use crate::state::State;

/// Exports of orgs with more members than this run as a background job (unless the
/// caller asks otherwise with `async=false`).
pub const ASYNC_EXPORT_THRESHOLD: u64 = 5_000;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "members";
    r.get(
        "/api/v2/orgs/{org_id}/users/export",
        export_members,
        RouteDoc::new("export_members", "Export members as CSV or Excel", TAG)
            .description("The members' full records (for the printable directory members may see, use `/directory/export`): the whole list or a filtered list (same filters and sort as the list) or a search (`q`). Only the org's admins (not configurable, like the audit log): 403 for everyone else and for API keys. Orgs with more than 5,000 members (or `async=true`) get a background job instead (202): follow it at `/jobs/{job_id}` and download the file when it is done; the file is removed with the job. Recorded as a `data.export` activity with the format, the filter and the row count (a job records it when its file is stored).")
            .org_admin()
            .rate_class(RateClass::Export)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/import",
        import_members,
        RouteDoc::new("import_members", "Import members from a CSV or Excel file", TAG)
            .description("Send the file as the body (`text/csv` or the .xlsx type) or as the one part `file` of a `multipart/form-data` body (the part's Content-Type, else its file name's extension `.csv`/`.xlsx`, gives the format; any other part is refused with 422, options such as `dry_run` stay query parameters; a missing or invalid boundary, a missing or second `file` part, or a malformed body is 422 with `details.fields[0].code` naming it), up to 20 MiB in all (413 with `details.cap` `body_bytes`), with a header row naming the columns (`email`, `first_name`, `last_name`, `role`, `phone`, `committee`, `children` as `Ana (3); Ben (K)`; others are ignored, so an export imports back). Caps, checked while reading: 50,000 rows after the header, 64 columns, 4 KiB per cell, 64 KiB per row; an .xlsx may unpack to 64 MiB per part (96 MiB in all). A file past a size cap (rows, unpacked bytes) is refused with 413 (`details.cap` names it); a malformed file, a value beyond column 64, a cell or row too long, or a header naming a column twice (`email` and `E-mail`) with 422. `dry_run=true` validates every row and reports errors and duplicates by row number without writing. Otherwise the rows are added by a background job (202) that survives restarts and adds each row exactly once; failed rows are in its error report.")
            .permission(PermissionKey::UsersInvite)
            .rate_class(RateClass::Create)
            .upload()
            .errors(&[ErrorCode::ValidationFailed, ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType]),
    );
}

/// A file format.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatDto {
    /// CSV (RFC 4180, UTF-8).
    #[default]
    Csv,
    /// Excel workbook (.xlsx): a header row, dates as dates.
    Xlsx,
}

impl From<FormatDto> for SheetFormat {
    fn from(f: FormatDto) -> Self {
        match f {
            FormatDto::Csv => Self::Csv,
            FormatDto::Xlsx => Self::Xlsx,
        }
    }
}

/// What to export and how.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    #[garde(skip)]
    #[serde(default)]
    pub format: FormatDto,
    /// `true`: always a background job; `false`: always streamed now; absent: a job
    /// for orgs with more than 5,000 members.
    #[garde(skip)]
    #[serde(rename = "async")]
    pub run_async: Option<bool>,
    /// Export the results of this search instead of the list (best match first).
    #[garde(inner(length(chars, min = 1, max = 100)))]
    #[schemars(length(min = 1, max = 100))]
    pub q: Option<String>,
    /// Sort key of the list (default `name`).
    #[garde(skip)]
    #[serde(default)]
    pub sort: SortDto,
    /// Direction (default `asc`).
    #[garde(skip)]
    #[serde(default)]
    pub order: OrderDto,
    #[garde(dive)]
    #[serde(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub filter: MemberFilterQuery,
}

impl ExportQuery {
    fn spec(&self) -> ExportSpec {
        ExportSpec {
            role: self.filter.role.clone(),
            status: self.filter.status.map(|s| {
                match s {
                    StatusFilterDto::Active => "active",
                    StatusFilterDto::Invited => "invited",
                    StatusFilterDto::Suspended => "suspended",
                }
                .to_owned()
            }),
            committee: self.filter.committee.clone(),
            joined_from: self.filter.joined_from,
            joined_to: self.filter.joined_to,
            q: self.q.clone(),
            sort: Some(
                match self.sort {
                    SortDto::Name => "name",
                    SortDto::Email => "email",
                    SortDto::Joined => "joined",
                    SortDto::LastActive => "last_active",
                }
                .to_owned(),
            ),
            descending: matches!(self.order, OrderDto::Desc),
        }
    }
}

/// A streamed file attachment, or a background job (202).
pub enum ExportResponse {
    /// The file, streamed.
    File {
        /// Its format.
        format: SheetFormat,
        /// The download name.
        filename: String,
        /// The body.
        body: FileStream,
    },
    /// A job was created.
    Job(Box<Accepted<JobView>>),
}

impl std::fmt::Debug for ExportResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { filename, .. } => f
                .debug_struct("File")
                .field("filename", filename)
                .finish_non_exhaustive(),
            Self::Job(j) => f.debug_tuple("Job").field(j).finish(),
        }
    }
}

impl Responder for ExportResponse {
    type Body = BoxBody;
    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        match self {
            Self::File {
                format,
                filename,
                body,
            } => attachment(format.content_type(), &filename, body),
            Self::Job(j) => j.respond_to(req),
        }
    }
}

impl aide::OperationOutput for ExportResponse {
    type Inner = ();
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        let mut out = vec![(
            Some(StatusCode::Code(200)),
            file_response("The members: a header row, then one row per member"),
        )];
        out.extend(Accepted::<JobView>::inferred_responses(ctx, op));
        out
    }
}

/// Reads a file in chunks (off the async threads); the file is removed at the end.
pub(super) fn file_stream(file: TempFile) -> FileStream {
    let reader = std::fs::File::open(file.path());
    match reader {
        Err(e) => stream::once(async move { Err(e) }).boxed(),
        Ok(f) => stream::unfold(Some((f, file)), |state| async move {
            let (mut f, file) = state?;
            let read = tokio::task::spawn_blocking(move || {
                use std::io::Read as _;
                let mut buf = vec![0; 64 * 1024];
                let n = f.read(&mut buf);
                (
                    f,
                    n.map(|n| {
                        buf.truncate(n);
                        buf
                    }),
                )
            })
            .await;
            match read {
                Ok((f, Ok(buf))) if !buf.is_empty() => {
                    Some((Ok(Bytes::from(buf)), Some((f, file))))
                }
                Ok((_, Ok(_))) => None,
                Ok((_, Err(e))) => Some((Err(e), None)),
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        })
        .boxed(),
    }
}

fn storage(e: JobStoreError) -> ApiError {
    ApiError::internal(e.0)
}

fn bad_spec(e: jobs::export::BadSpec) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: e.field.into(),
        code: "invalid_value".into(),
        message: e.message,
    }])
}

async fn export_members(
    state: State,
    member: OrgMember,
    Query(q): Query<ExportQuery>,
) -> Result<ExportResponse, ApiError> {
    let org = member.org_id().as_uuid();
    let spec = q.spec();
    let format: SheetFormat = q.format.into();
    // Validate before recording anything.
    MemberPages::new(state.directory.clone(), org, &spec).map_err(bad_spec)?;
    let run_async = match q.run_async {
        Some(a) => a,
        None => {
            jobs::export::member_count(&state.db, org)
                .await
                .map_err(storage)?
                > ASYNC_EXPORT_THRESHOLD
        }
    };
    if run_async {
        // The job records the `data.export` activity (with its row count) in the
        // transaction that stores the file.
        let params = serde_json::to_value(ExportParams { format, spec })
            .map_err(|e| ApiError::internal(Box::new(e)))?;
        let draft = state
            .jobs
            .draft(
                org,
                JobKind::MemberExport,
                member.user_id().ok().map(|u| u.as_uuid()),
                params,
            )
            .await
            .map_err(storage)?;
        let job = draft.submit().await.map_err(storage)?;
        state.job_wake.notify_one();
        return Ok(ExportResponse::Job(Box::new(Accepted(job_view(
            &job,
            state.job_retention,
        )))));
    }
    let filename = format!("members-{org}.{}", format.extension());
    // Written whole to a temporary file first (one page in memory at a time), so the
    // activity is recorded with its row count before anything is sent.
    let (file, rows) = jobs::export::write_export_file(
        state.directory.clone(),
        org,
        &spec,
        format,
        &state.tmp_dir,
        None,
    )
    .await
    .map_err(|e| match e {
        jobs::export::ExportError::Storage(e) => ApiError::from(e),
        e => ApiError::internal(Box::new(e)),
    })?;
    let ctx = member.audit_context();
    let event = audit::NewAuditEvent::activity(
        audit::TenantScope::org(org),
        ctx.actor,
        audit::action::activity::DATA_EXPORT,
        "members",
        org.to_string(),
    )
    .with_request(&ctx.request)
    .with_new_value(jobs::export::export_details(format, &spec, rows, None));
    audit_store::AuditedTx::record_alone(&state.db, event)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let body = file_stream(file);
    Ok(ExportResponse::File {
        format,
        filename,
        body,
    })
}

/// An uploaded spreadsheet, staged in a temporary file (never held in memory whole).
pub struct Upload {
    file: TempFile,
    format: SheetFormat,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// How the request says the file comes.
enum UploadBody {
    /// The raw body is the file.
    Raw(SheetFormat),
    /// A `multipart/form-data` body with its (checked) boundary.
    Multipart(String),
}

/// The media types the body may be sent as, for the 415 message.
const UPLOAD_MEDIA_TYPES: &str = "send the file as the body (text/csv or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet) or as the `file` part of a multipart/form-data body";

/// The format named by a media type's essence (`text/csv`, the .xlsx type).
fn sheet_format_of(essence: &str) -> Option<SheetFormat> {
    match essence {
        "text/csv" | "application/csv" => Some(SheetFormat::Csv),
        t if t == SheetFormat::Xlsx.content_type() => Some(SheetFormat::Xlsx),
        _ => None,
    }
}

/// The format of the `file` part: its own Content-Type when that is a sheet type,
/// else its file name's extension (`.csv`, `.xlsx`).
fn part_format(part: &PartHeaders) -> Option<SheetFormat> {
    part.content_type
        .as_deref()
        .and_then(|ct| ContentType::parse(ct).ok())
        .and_then(|m| sheet_format_of(&m.essence))
        .or_else(|| {
            let name = part.filename.as_deref()?.to_ascii_lowercase();
            let (_, ext) = name.rsplit_once('.')?;
            match ext {
                "csv" => Some(SheetFormat::Csv),
                "xlsx" => Some(SheetFormat::Xlsx),
                _ => None,
            }
        })
}

/// 422 naming the problem with a multipart body (`details.fields[0]`).
fn multipart_refused(field: &str, code: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, message.clone()).with_details(serde_json::json!({
        "fields": [FieldError { field: field.to_owned(), code: code.to_owned(), message }]
    }))
}

fn malformed(e: &MultipartError) -> ApiError {
    multipart_refused("", e.code(), e.to_string())
}

/// The 413 answer of an upload over its body cap: `details.cap` is `body_bytes`, like
/// the caps of the file's content.
fn upload_too_large(limit: usize) -> ApiError {
    too_large(limit).with_details(serde_json::json!({
        "cap": "body_bytes",
        "limit": limit,
        "limit_bytes": limit,
    }))
}

fn unreadable_body() -> ApiError {
    ApiError::new(
        ErrorCode::ValidationFailed,
        "the request body could not be read",
    )
}

fn write_chunk(out: &mut std::fs::File, chunk: &[u8]) -> Result<(), ApiError> {
    std::io::Write::write_all(out, chunk).map_err(|e| ApiError::internal(Box::new(e)))
}

/// Streams a raw body (the file itself) to `tmp_dir`, within `limit`.
async fn read_raw(
    mut payload: Payload,
    format: SheetFormat,
    tmp_dir: &std::path::Path,
    limit: usize,
) -> Result<Upload, ApiError> {
    let file = TempFile::new_in(tmp_dir, format.extension());
    let mut out =
        std::fs::File::create(file.path()).map_err(|e| ApiError::internal(Box::new(e)))?;
    let mut size = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| unreadable_body())?;
        size += chunk.len();
        if size > limit {
            return Err(upload_too_large(limit));
        }
        write_chunk(&mut out, &chunk)?;
    }
    Ok(Upload { file, format })
}

/// Streams a `multipart/form-data` body to `tmp_dir`, within `limit` (the whole
/// body, parts and boundaries included): exactly one part, `file`, whose data is
/// written as it arrives; any other part is refused as soon as its headers are read.
async fn read_multipart(
    mut payload: Payload,
    boundary: &str,
    tmp_dir: &std::path::Path,
    limit: usize,
) -> Result<Upload, ApiError> {
    let mut reader = MultipartReader::new(boundary);
    // The `file` part once it began: the staged file, and whether it is still open.
    let mut staged: Option<(Upload, std::fs::File)> = None;
    let mut in_file = false;
    let mut size = 0;
    loop {
        let Some(chunk) = payload.next().await else {
            break;
        };
        let chunk = chunk.map_err(|_| unreadable_body())?;
        size += chunk.len();
        if size > limit {
            return Err(upload_too_large(limit));
        }
        reader.push(&chunk);
        while let Some(event) = reader.next_event().map_err(|e| malformed(&e))? {
            match event {
                Event::Part(part) if part.name == "file" => {
                    if staged.is_some() {
                        return Err(multipart_refused(
                            "file",
                            "duplicate_part",
                            "the multipart body has more than one `file` part: send one file"
                                .into(),
                        ));
                    }
                    let Some(format) = part_format(&part) else {
                        return Err(ApiError::new(
                            ErrorCode::UnsupportedMediaType,
                            "the `file` part is neither CSV nor XLSX: give it the Content-Type text/csv or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, or a file name ending in .csv or .xlsx",
                        ));
                    };
                    let file = TempFile::new_in(tmp_dir, format.extension());
                    let out = std::fs::File::create(file.path())
                        .map_err(|e| ApiError::internal(Box::new(e)))?;
                    staged = Some((Upload { file, format }, out));
                    in_file = true;
                }
                Event::Part(part) => {
                    let name: String = part.name.chars().take(64).collect();
                    return Err(multipart_refused(
                        &name,
                        "unknown_part",
                        format!(
                            "the multipart body has a part `{name}`: only `file` is read (options such as `dry_run` are query parameters)"
                        ),
                    ));
                }
                Event::Data(data) => {
                    if let (true, Some((_, out))) = (in_file, staged.as_mut()) {
                        write_chunk(out, &data)?;
                    }
                }
                Event::PartEnd => in_file = false,
            }
        }
    }
    reader.finish().map_err(|e| malformed(&e))?;
    let Some((upload, out)) = staged else {
        return Err(multipart_refused(
            "file",
            "missing_part",
            "the multipart body has no `file` part: send the CSV or XLSX file in a part named `file`".into(),
        ));
    };
    drop(out);
    Ok(upload)
}

impl FromRequest for Upload {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .map(|v| {
                // The raw body's type is read as before (its parameters are ignored); a
                // form's is parsed strictly for its boundary.
                let Ok(v) = v.to_str() else {
                    return Ok(None);
                };
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                if essence == "multipart/form-data" {
                    ContentType::parse(v)
                        .and_then(|m| m.boundary().map(str::to_owned))
                        .map(|b| Some(UploadBody::Multipart(b)))
                        .map_err(|e| malformed(&e))
                } else {
                    Ok(sheet_format_of(&essence).map(UploadBody::Raw))
                }
            })
            .unwrap_or(Ok(None));
        let tmp_dir = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map(|s| s.tmp_dir.clone());
        let limit = BodyLimit::of(req);
        let declared_too_large = declared_over(req, limit);
        let payload = payload.take();
        Box::pin(async move {
            if declared_too_large {
                return Err(upload_too_large(limit));
            }
            let Some(body) = body? else {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    UPLOAD_MEDIA_TYPES,
                ));
            };
            let tmp_dir =
                tmp_dir.ok_or_else(|| ApiError::internal("application state missing".into()))?;
            match body {
                UploadBody::Raw(format) => read_raw(payload, format, &tmp_dir, limit).await,
                UploadBody::Multipart(boundary) => {
                    read_multipart(payload, &boundary, &tmp_dir, limit).await
                }
            }
        })
    }
}

impl aide::OperationInput for Upload {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        aide::operation::set_body(
            ctx,
            operation,
            RequestBody {
                description: Some("The file: CSV or XLSX, with a header row; as the body itself, or as the one part `file` of a `multipart/form-data` body (its format from the part's Content-Type, else its file name's extension)".to_owned()),
                content: indexmap::IndexMap::from_iter([
                    ("text/csv".to_owned(), MediaType::default()),
                    (
                        SheetFormat::Xlsx.content_type().to_owned(),
                        MediaType::default(),
                    ),
                    ("multipart/form-data".to_owned(), multipart_media_type()),
                ]),
                required: true,
                extensions: indexmap::IndexMap::default(),
            },
        );
    }
}

/// The `multipart/form-data` form of an upload: one binary part, `file`.
fn multipart_media_type() -> MediaType {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The CSV or XLSX file. Its format is its part's Content-Type (`text/csv` or the .xlsx type), else its file name's extension (`.csv`, `.xlsx`)."
            }
        },
        "additionalProperties": false
    });
    MediaType {
        schema: Some(aide::openapi::SchemaObject {
            json_schema: schemars::Schema::try_from(schema).unwrap_or_default(),
            external_docs: None,
            example: None,
        }),
        encoding: indexmap::IndexMap::from_iter([(
            "file".to_owned(),
            aide::openapi::Encoding {
                content_type: Some(format!("text/csv, {}", SheetFormat::Xlsx.content_type())),
                ..Default::default()
            },
        )]),
        ..Default::default()
    }
}

/// Import options.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Only validate and report; write nothing.
    #[garde(skip)]
    #[serde(default)]
    pub dry_run: bool,
}

/// A dry run's report (200) or the import job (202).
pub enum ImportResponse {
    /// The dry run's findings.
    DryRun(Reply<DryRunReport>),
    /// The job adding the rows.
    Job(Accepted<JobView>),
}

impl std::fmt::Debug for ImportResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DryRun(r) => f.debug_tuple("DryRun").field(r).finish(),
            Self::Job(j) => f.debug_tuple("Job").field(j).finish(),
        }
    }
}

impl Responder for ImportResponse {
    type Body = BoxBody;
    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        match self {
            Self::DryRun(r) => r.respond_to(req),
            Self::Job(j) => j.respond_to(req),
        }
    }
}

impl aide::OperationOutput for ImportResponse {
    type Inner = ();
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        let mut out = Reply::<DryRunReport>::inferred_responses(ctx, op);
        out.extend(Accepted::<JobView>::inferred_responses(ctx, op));
        out
    }
}

/// A refused upload: 413 for the size caps (rows, unpacked bytes, shared strings, zip
/// parts; `details.cap` names it), 422 otherwise (malformed, too many columns, a cell
/// or row too long, a bad header), with a message saying which.
fn unreadable(e: ReadError) -> ApiError {
    use sheets::ReadError as Sheet;
    let message = e.to_string();
    if let ReadError::Sheet(Sheet::TooLarge { cap, limit }) = &e {
        return ApiError::new(ErrorCode::PayloadTooLarge, message)
            .with_details(serde_json::json!({ "cap": cap.as_str(), "limit": limit }));
    }
    let (field, code) = match &e {
        ReadError::Sheet(Sheet::TooManyColumns { .. }) => (String::new(), "too_many_columns"),
        ReadError::Sheet(Sheet::CellTooLarge { .. }) => (String::new(), "cell_too_large"),
        ReadError::Sheet(Sheet::RowTooLarge { .. }) => (String::new(), "row_too_large"),
        ReadError::DuplicateColumn { name, .. } => (name.clone(), "duplicate_column"),
        ReadError::MissingColumn(name) => ((*name).to_owned(), "missing_column"),
        ReadError::Sheet(_) => (String::new(), "unreadable_file"),
    };
    let fields = vec![FieldError {
        field,
        code: code.into(),
        message: message.clone(),
    }];
    ApiError::new(ErrorCode::ValidationFailed, message)
        .with_details(serde_json::json!({ "fields": fields }))
}

async fn import_members(
    state: State,
    member: OrgMember,
    Query(q): Query<ImportQuery>,
    upload: Upload,
) -> Result<ImportResponse, ApiError> {
    let org = member.org_id().as_uuid();
    let actor = member.user_id()?;
    let rank = member.rank()?;
    let Upload { file, format } = upload;
    if q.dry_run {
        let roles = jobs::import::roles_of(&state.db, org)
            .await
            .map_err(storage)?;
        let members = ExistingMembers::load(&state.db, org)
            .await
            .map_err(storage)?;
        let policy =
            tenancy::privacy::PrivacyRepository::policy(&state.privacy, member.org_id()).await?;
        let mut dry = DryRun::new(roles, rank, members).under_policy(policy);
        // The read stops at the next row once this future is dropped (the client went
        // away): the guard sets the flag the blocking reader checks per row.
        let cancel = Cancel::default();
        let _stop_when_dropped = cancel.on_drop();
        let report = tokio::task::spawn_blocking(move || {
            jobs::table::read_rows_until(
                file.path(),
                format,
                &SheetLimits::default(),
                &mut Counters::default(),
                &cancel,
                |row| {
                    dry.check(&row);
                    true
                },
            )
            .map(|()| dry.finish())
        })
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .map_err(unreadable)?;
        return Ok(ImportResponse::DryRun(Reply(report)));
    }
    let ctx = member.audit_context();
    let params = serde_json::to_value(ImportParams {
        actor: actor.as_uuid(),
        request: ctx.request,
        format,
        invitation_days: state.invitation_ttl_days,
    })
    .map_err(|e| ApiError::internal(Box::new(e)))?;
    let mut draft = state
        .jobs
        .draft(org, JobKind::MemberImport, Some(actor.as_uuid()), params)
        .await
        .map_err(storage)?;
    // The file is read on a blocking thread and handed over row by row (bounded), so
    // memory does not grow with the file; the rows are staged in batches, each
    // committed on its own (no transaction stays open while the file is read). When
    // this future is dropped the channel closes, which stops the reader at its next
    // row, and the dropped draft removes what it staged.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RawRow>(256);
    let reader = tokio::task::spawn_blocking(move || {
        jobs::table::read_rows(file.path(), format, |row| tx.blocking_send(row).is_ok())
    });
    let mut staged = Ok(());
    while let Some(row) = rx.recv().await {
        staged = match serde_json::to_value(&row) {
            Ok(value) => draft.push(row.row, value).await.map_err(storage),
            Err(e) => Err(ApiError::internal(Box::new(e))),
        };
        if staged.is_err() {
            break;
        }
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))
        .and_then(|r| r.map_err(unreadable));
    if let Err(e) = read.and(staged) {
        // Best effort: a dropped draft removes its rows too, and the sweep after it.
        let _ = draft.discard().await;
        return Err(e);
    }
    let job = draft.submit().await.map_err(storage)?;
    state.job_wake.notify_one();
    Ok(ImportResponse::Job(Accepted(job_view(
        &job,
        state.job_retention,
    ))))
}
