//! Member export: the pages of a (filtered or searched) member list, written as CSV or
//! XLSX; and the export job that writes a large export into the database for download.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tenancy::directory::{
    Audience, MemberCursor, MemberDirectory, MemberFilter, MemberListRequest, MemberPage,
    MemberRow, MemberSearchRequest, MemberSort, RoleFilter,
};
use tenancy::ports::StorageFailure;
use tenancy::search::SearchQuery;
use tenancy::{MembershipStatus, OrgId, RoleId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::queue::{JobQueue, JobStoreError, Lease};
use crate::table::{SheetFormat, XlsxWriter, csv_header, push_csv_line, text_cells};

/// Rows per directory page while exporting.
pub const EXPORT_PAGE: u32 = 500;

/// Bytes per stored part of an export file.
///
/// Small on purpose: a database connection keeps the capacity of the largest message it
/// has sent or received (sqlx never shrinks its buffers), and the parts of one download
/// are read on whichever pooled connections come up, so every connection that carried a
/// part keeps a buffer of this size. With 1 MiB parts, downloading a 100,000-member export
/// (16 parts) left 5–6 MiB more resident than a 10,000-member one (2 parts), up to pool
/// size × 1 MiB.
pub const FILE_PART_BYTES: usize = 256 * 1024;

/// What to export: the list's filters and sort, or a search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    /// Only this role: a built-in name or a custom role id.
    pub role: Option<String>,
    /// Only this status (`active`, `invited`, `suspended`).
    pub status: Option<String>,
    /// Only this committee.
    pub committee: Option<String>,
    /// Joined at or after.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub joined_from: Option<OffsetDateTime>,
    /// Joined before.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub joined_to: Option<OffsetDateTime>,
    /// A search instead of the list (ranked, best first).
    pub q: Option<String>,
    /// Sort of the list (`name`, `email`, `joined`, `last_active`).
    pub sort: Option<String>,
    /// Descending.
    #[serde(default)]
    pub descending: bool,
}

/// An export spec that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadSpec {
    /// The parameter.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ExportSpec {
    /// The domain filter.
    ///
    /// # Errors
    /// [`BadSpec`] for an unknown role, status or sort.
    pub fn filter(&self) -> Result<MemberFilter, BadSpec> {
        let role = match self.role.as_deref() {
            None => None,
            Some(r) => Some(match Uuid::parse_str(r) {
                Ok(id) => RoleFilter::Custom(RoleId(id)),
                Err(_) => {
                    RoleFilter::Builtin(permissions::BuiltinRole::parse(r).map_err(|_| {
                        BadSpec {
                            field: "role",
                            message: "a built-in role name or a custom role id".into(),
                        }
                    })?)
                }
            }),
        };
        let status = match self.status.as_deref() {
            None => None,
            Some("active") => Some(MembershipStatus::Active),
            Some("invited") => Some(MembershipStatus::Invited),
            Some("suspended") => Some(MembershipStatus::Suspended),
            Some(_) => {
                return Err(BadSpec {
                    field: "status",
                    message: "active, invited or suspended".into(),
                });
            }
        };
        Ok(MemberFilter {
            role,
            status,
            committee: self.committee.clone(),
            joined_from: self.joined_from,
            joined_to: self.joined_to,
        })
    }

    fn sort(&self) -> MemberSort {
        match self.sort.as_deref() {
            Some("email") => MemberSort::Email,
            Some("joined") => MemberSort::Joined,
            Some("last_active") => MemberSort::LastActive,
            _ => MemberSort::Name,
        }
    }
}

/// Reads a member list page by page (keyset pages for the list, positional for a
/// search), so an export holds one page at a time.
#[derive(Debug)]
pub struct MemberPages<D> {
    directory: D,
    org: OrgId,
    filter: MemberFilter,
    query: Option<SearchQuery>,
    sort: MemberSort,
    descending: bool,
    after: Option<MemberCursor>,
    offset: u32,
    done: bool,
    audience: Audience,
}

impl<D: MemberDirectory> MemberPages<D> {
    /// The pages of `spec` in `org`.
    ///
    /// # Errors
    /// [`BadSpec`].
    pub fn new(directory: D, org: Uuid, spec: &ExportSpec) -> Result<Self, BadSpec> {
        let query = match spec.q.as_deref() {
            None => None,
            Some(q) => Some(SearchQuery::parse(q).map_err(|e| BadSpec {
                field: "q",
                message: e.to_string(),
            })?),
        };
        Ok(Self {
            directory,
            org: OrgId::from_uuid(org),
            filter: spec.filter()?,
            query,
            sort: spec.sort(),
            descending: spec.descending,
            after: None,
            offset: 0,
            done: false,
            audience: Audience::Record,
        })
    }

    /// The same pages for another audience (the printable directory is read as other
    /// members see it; exports of records, the default, as the record).
    #[must_use]
    pub fn for_audience(mut self, audience: Audience) -> Self {
        self.audience = audience;
        self
    }

    /// The next page (`None` when done).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn next_page(&mut self) -> Result<Option<Vec<MemberRow>>, StorageFailure> {
        Ok(self.next_full_page().await?.map(|page| page.rows))
    }

    /// The next page with the policy and privacy choices it was read with (`None` when
    /// done).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn next_full_page(&mut self) -> Result<Option<MemberPage>, StorageFailure> {
        if self.done {
            return Ok(None);
        }
        let page = match &self.query {
            Some(q) => {
                let page = self
                    .directory
                    .search(&MemberSearchRequest {
                        org: self.org,
                        query: q.clone(),
                        filter: self.filter.clone(),
                        offset: self.offset,
                        limit: EXPORT_PAGE,
                        audience: self.audience,
                    })
                    .await?;
                self.offset += EXPORT_PAGE;
                page
            }
            None => {
                let page = self
                    .directory
                    .list(&MemberListRequest {
                        org: self.org,
                        filter: self.filter.clone(),
                        sort: self.sort,
                        descending: self.descending,
                        after: self.after.take(),
                        limit: EXPORT_PAGE,
                        audience: self.audience,
                    })
                    .await?;
                self.after = page
                    .rows
                    .last()
                    .map(|(u, m)| MemberCursor::after(self.sort, self.descending, u, m));
                page
            }
        };
        self.done = !page.more;
        if page.rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }
}

/// CSV text of one page.
#[must_use]
pub fn csv_page(rows: &[MemberRow]) -> String {
    let mut buf = String::with_capacity(rows.len() * 160);
    for (u, m) in rows {
        push_csv_line(&mut buf, &text_cells(u, m));
    }
    buf
}

/// A file that is removed when dropped.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    /// A fresh path in `dir` with `extension`.
    #[must_use]
    pub fn new_in(dir: &Path, extension: &str) -> Self {
        Self(dir.join(format!("ptoc-{}.{extension}", Uuid::new_v4().simple())))
    }

    /// The path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad parameters.
    #[error(transparent)]
    Spec(#[from] BadSpec),
    /// Reading members failed.
    #[error(transparent)]
    Storage(#[from] StorageFailure),
    /// Writing the file failed.
    #[error("writing the export file: {0}")]
    Io(String),
}

/// Writes the export of `spec` to a new temporary file in `tmp_dir` page by page;
/// returns it with the number of rows. With `lease`, the job's lease is renewed after
/// every page (and the export stops if it was lost).
///
/// # Errors
/// [`ExportError`].
pub async fn write_export_file<D: MemberDirectory>(
    directory: D,
    org: Uuid,
    spec: &ExportSpec,
    format: SheetFormat,
    tmp_dir: &Path,
    lease: Option<(&JobQueue, &Lease)>,
) -> Result<(TempFile, u64), ExportError> {
    use std::io::Write as _;
    let mut pages = MemberPages::new(directory, org, spec)?;
    let file = TempFile::new_in(tmp_dir, format.extension());
    let io = |e: std::io::Error| ExportError::Io(e.to_string());
    let mut rows = 0_u64;
    match format {
        SheetFormat::Csv => {
            let mut out = std::io::BufWriter::new(std::fs::File::create(file.path()).map_err(io)?);
            out.write_all(csv_header().as_bytes()).map_err(io)?;
            while let Some(page) = pages.next_page().await? {
                rows += page.len() as u64;
                out.write_all(csv_page(&page).as_bytes()).map_err(io)?;
                if !renewed(lease).await {
                    return Err(ExportError::Io("the job's lease was lost".into()));
                }
            }
            out.flush().map_err(io)?;
        }
        SheetFormat::Xlsx => {
            let xe = |e: crate::table::XlsxError| ExportError::Io(e.to_string());
            let mut book = XlsxWriter::new(tmp_dir).map_err(xe)?;
            while let Some(page) = pages.next_page().await? {
                for (u, m) in &page {
                    book.push(u, m).map_err(xe)?;
                }
                rows += page.len() as u64;
                if !renewed(lease).await {
                    return Err(ExportError::Io("the job's lease was lost".into()));
                }
            }
            let path = file.path().to_owned();
            tokio::task::spawn_blocking(move || book.save(&path))
                .await
                .map_err(|e| ExportError::Io(e.to_string()))?
                .map_err(xe)?;
        }
    }
    Ok((file, rows))
}

async fn renewed(lease: Option<(&JobQueue, &Lease)>) -> bool {
    match lease {
        None => true,
        Some((queue, lease)) => queue.renew(lease).await.unwrap_or(false),
    }
}

/// The details a `data.export` activity of a member export records: the format, the
/// filter (list filters, sort or search), the row count and the job, if any.
#[must_use]
pub fn export_details(
    format: SheetFormat,
    spec: &ExportSpec,
    rows: u64,
    job_id: Option<Uuid>,
) -> serde_json::Value {
    serde_json::json!({
        "kind": "members",
        "format": format.extension(),
        "filter": spec,
        "rows": rows,
        "job_id": job_id,
    })
}

/// What the export job stores in its parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportParams {
    /// The file format.
    pub format: SheetFormat,
    /// What to export.
    pub spec: ExportSpec,
}

/// Runs an export job: writes the file, then stores it in parts, records the
/// `data.export` activity (by `requested_by`, with the filter and the row count) and
/// marks the job done, in one transaction (a crash before that leaves nothing; the next
/// worker starts over). The file goes when the job is swept.
///
/// # Errors
/// Storage failures; a bad spec or file error is returned as `Ok(Err(reason))` (the
/// job fails for good).
pub async fn run_export<D: MemberDirectory>(
    queue: &JobQueue,
    directory: D,
    lease: &Lease,
    params: &ExportParams,
    tmp_dir: &Path,
    requested_by: Option<Uuid>,
) -> Result<Result<u64, String>, JobStoreError> {
    let written = write_export_file(
        directory,
        lease.org_id,
        &params.spec,
        params.format,
        tmp_dir,
        Some((queue, lease)),
    )
    .await;
    let (file, rows) = match written {
        Ok(w) => w,
        Err(ExportError::Storage(e)) => return Err(JobStoreError(e.0)),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let txn = queue.database().begin_for_org(lease.org_id).await?;
    let mut reader = std::fs::File::open(file.path()).map_err(|e| JobStoreError(Box::new(e)))?;
    let mut part = 0;
    loop {
        let mut buf = Vec::with_capacity(FILE_PART_BYTES);
        let n = (&mut reader)
            .take(FILE_PART_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(|e| JobStoreError(Box::new(e)))?;
        if n == 0 && part > 0 {
            break;
        }
        JobQueue::store_file_part(&txn, lease, part, buf).await?;
        part += 1;
        if n < FILE_PART_BYTES {
            break;
        }
    }
    let total = i64::try_from(rows).unwrap_or(i64::MAX);
    let event = audit::NewAuditEvent::activity(
        audit::TenantScope::org(lease.org_id),
        requested_by.map_or(audit::Actor::System, audit::Actor::User),
        audit::action::activity::DATA_EXPORT,
        "members",
        lease.org_id.to_string(),
    )
    .with_new_value(export_details(
        params.format,
        &params.spec,
        rows,
        Some(lease.job_id),
    ));
    audit_store::append_in(&txn, vec![event])
        .await
        .map_err(|e| JobStoreError(Box::new(e)))?;
    if JobQueue::finish_in(&txn, lease, Ok(Some(total))).await? {
        txn.commit().await?;
    } else {
        txn.rollback().await?;
    }
    Ok(Ok(rows))
}

/// The number of (current) members of `org`: what decides whether an export runs in
/// the request or as a job.
///
/// # Errors
/// Storage failures.
pub async fn member_count(db: &persistence::Database, org: Uuid) -> Result<u64, JobStoreError> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let txn = db.read_for_org(org).await?;
    let backend = txn.get_database_backend();
    let p = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT count(*) AS n FROM memberships WHERE org_id = {p}"),
            [org.into()],
        ))
        .await?;
    txn.commit().await?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}
