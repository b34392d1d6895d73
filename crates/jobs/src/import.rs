//! Bulk member import: validating rows, the dry run (errors and duplicates, nothing
//! written) and the job step that applies rows exactly once.

use std::collections::{HashMap, HashSet};

use permissions::BuiltinRole;
use schemars::JsonSchema;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tenancy::ports::{AddMemberError, AddMemberRequest, AuditContext, RoleChoice};
use tenancy::rules::check_rank_assignable;
use tenancy::search::{edit_distance, normalize};
use tenancy::{Child, CustomRole, Email, OrgId, PersonName, UserId};
use uuid::Uuid;

use crate::queue::{JobFailure, JobQueue, JobStoreError, Lease};
use crate::table::{RawRow, parse_children};
use persistence::Database;

/// Most entries a dry-run report lists per kind (the counts stay exact).
pub const REPORT_LIMIT: usize = 1000;

/// One problem with one field of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RowIssue {
    /// The row number in the file (the header is row 1).
    pub row: i64,
    /// The column.
    pub field: String,
    /// A stable code: `invalid_email`, `missing`, `invalid_name`, `unknown_role`,
    /// `role_above_yours`, `too_long`, `children_not_collected` (the org keeps no
    /// children's data).
    pub code: String,
    /// For people.
    pub message: String,
}

/// The org's roles as an import names them (built-in names and custom role names,
/// case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct RoleIndex {
    custom: HashMap<String, (RoleChoice, BuiltinRole)>,
}

impl RoleIndex {
    /// An index of the built-in roles and `custom`.
    #[must_use]
    pub fn new(custom: &[CustomRole]) -> Self {
        Self {
            custom: custom
                .iter()
                .map(|r| {
                    (
                        r.name.trim().to_lowercase(),
                        (RoleChoice::Custom(r.id), r.counts_as),
                    )
                })
                .collect(),
        }
    }

    /// The role called `name` (blank: volunteer).
    #[must_use]
    pub fn resolve(&self, name: &str) -> Option<(RoleChoice, BuiltinRole)> {
        let key = name.trim().to_lowercase();
        if key.is_empty() {
            return Some((
                RoleChoice::Builtin(BuiltinRole::Volunteer),
                BuiltinRole::Volunteer,
            ));
        }
        if let Some(found) = self.custom.get(&key) {
            return Some(found.clone());
        }
        BuiltinRole::parse(&key.replace([' ', '-'], "_"))
            .ok()
            .map(|r| (RoleChoice::Builtin(r), r))
    }
}

/// A valid row, ready to become an [`AddMemberRequest`].
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The row number.
    pub row: i64,
    /// E-mail.
    pub email: Email,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// Phone.
    pub phone: Option<String>,
    /// Role.
    pub role: RoleChoice,
    /// Committee.
    pub committee: Option<String>,
    /// Children.
    pub children: Vec<Child>,
}

impl Candidate {
    /// The add-member request for this row, made by `actor` in `org`: an invitation
    /// open for `valid_for`.
    #[must_use]
    pub fn request(self, org: OrgId, actor: UserId, valid_for: time::Duration) -> AddMemberRequest {
        AddMemberRequest {
            org_id: org,
            actor,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone,
            role: self.role,
            committee: self.committee,
            children: self.children,
            valid_for,
        }
    }
}

fn issue(row: i64, field: &str, code: &str, message: impl Into<String>) -> RowIssue {
    RowIssue {
        row,
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// The columns the importer reads (the rest of a row is ignored).
pub const READ_COLUMNS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "role",
    "committee",
    "children",
];

/// Validates one row: every problem at once.
///
/// # Errors
/// The row's problems.
pub fn validate(
    raw: &RawRow,
    roles: &RoleIndex,
    actor_rank: BuiltinRole,
) -> Result<Candidate, Vec<RowIssue>> {
    let row = raw.row;
    // The one rule for free text (`tenancy::text`), as for JSON bodies: a control
    // character in a column the importer reads refuses the row here, in the dry run and
    // the real import alike, before any other check of that cell.
    let controls: Vec<RowIssue> = READ_COLUMNS
        .iter()
        .filter_map(|column| {
            tenancy::text::first_forbidden(raw.get(column)).map(|c| {
                issue(
                    row,
                    column,
                    "control_character",
                    tenancy::text::forbidden_message(c),
                )
            })
        })
        .collect();
    if !controls.is_empty() {
        return Err(controls);
    }
    let mut issues = Vec::new();
    let email = match raw.get("email") {
        "" => {
            issues.push(issue(
                row,
                "email",
                "missing",
                "an e-mail address is required",
            ));
            None
        }
        e => match Email::parse(e) {
            Ok(e) => Some(e),
            Err(err) => {
                issues.push(issue(row, "email", "invalid_email", err.to_string()));
                None
            }
        },
    };
    let mut name = |field: &str| match raw.get(field) {
        "" => {
            issues.push(issue(row, field, "missing", format!("{field} is required")));
            None
        }
        n => match PersonName::parse(n) {
            Ok(n) => Some(n),
            Err(err) => {
                issues.push(issue(row, field, "invalid_name", err.to_string()));
                None
            }
        },
    };
    let first = name("first_name");
    let last = name("last_name");
    let role = match roles.resolve(raw.get("role")) {
        None => {
            issues.push(issue(
                row,
                "role",
                "unknown_role",
                format!("no role called {:?} in this organization", raw.get("role")),
            ));
            None
        }
        Some((choice, rank)) => match check_rank_assignable(actor_rank, rank) {
            Ok(()) => Some(choice),
            Err(refused) => {
                issues.push(issue(row, "role", "role_above_yours", refused.to_string()));
                None
            }
        },
    };
    let mut bounded = |field: &str, max: usize| {
        let v = raw.get(field);
        if v.chars().count() > max {
            issues.push(issue(
                row,
                field,
                "too_long",
                format!("at most {max} characters"),
            ));
        }
        Some(v.to_owned()).filter(|v| !v.is_empty())
    };
    let phone = bounded("phone", 40);
    let committee = bounded("committee", 100);
    let children = parse_children(raw.get("children"));
    if children.len() > 20
        || children.iter().any(|c| {
            c.name.chars().count() > 100 || c.grade.as_ref().is_some_and(|g| g.chars().count() > 20)
        })
    {
        issues.push(issue(
            row,
            "children",
            "too_long",
            "at most 20 children, names up to 100 and grades up to 20 characters",
        ));
    }
    match (email, first, last, role, issues.is_empty()) {
        (Some(email), Some(first_name), Some(last_name), Some(role), true) => Ok(Candidate {
            row,
            email,
            first_name,
            last_name,
            phone,
            role,
            committee,
            children,
        }),
        _ => Err(issues),
    }
}

/// A likely duplicate found by the dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Duplicate {
    /// The row number.
    pub row: i64,
    /// `email_in_file` (the address appears on an earlier row; this row would fail),
    /// `already_member` (this row would fail), `already_invited` (the address has a
    /// pending invitation of the org: this row would fail) or `similar_name` (same or
    /// nearly the same name as an earlier row or a member, with another address: a
    /// warning).
    pub kind: String,
    /// The row's e-mail.
    pub email: String,
    /// The earlier row it repeats, if in the file.
    pub other_row: Option<i64>,
    /// The other address with that name (`similar_name`).
    pub other_email: Option<String>,
}

/// What a real run would do, without writing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DryRunReport {
    /// Data rows read.
    pub total_rows: u64,
    /// Rows that would be added.
    pub valid_rows: u64,
    /// Rows with validation errors.
    pub invalid_rows: u64,
    /// Validation errors, by row (at most 1,000 listed).
    pub errors: Vec<RowIssue>,
    /// Duplicates and near-duplicates (at most 1,000 listed).
    pub duplicates: Vec<Duplicate>,
    /// Whether a list was cut at its limit.
    pub truncated: bool,
}

/// The org's current members, as the duplicate checks need them.
#[derive(Debug, Default)]
pub struct ExistingMembers {
    emails: HashSet<String>,
    /// Addresses with a pending invitation of the org.
    invited: HashSet<String>,
    /// Normalized last name → (normalized full name, e-mail).
    by_last: HashMap<String, Vec<(String, String)>>,
}

impl ExistingMembers {
    /// Loads the (current) members of `org`, and the addresses of its pending
    /// invitations.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn load(db: &Database, org: Uuid) -> Result<Self, JobStoreError> {
        let txn = db.read_for_org(org).await?;
        let backend = txn.get_database_backend();
        let (p, p2) = if backend == DbBackend::Postgres {
            ("$1", "$2")
        } else {
            ("?", "?")
        };
        let invited = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT email FROM invitations \
                     WHERE org_id = {p} AND status = 'pending' AND expires_at > {p2}"
                ),
                [org.into(), persistence::now_micros().into()],
            ))
            .await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT u.email, u.first_name, u.last_name FROM memberships m \
                     JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = {p}"
                ),
                [org.into()],
            ))
            .await?;
        txn.commit().await?;
        let mut out = Self::default();
        for r in invited {
            out.invited.insert(r.try_get("", "email")?);
        }
        for r in rows {
            let email: String = r.try_get("", "email")?;
            let first: String = r.try_get("", "first_name")?;
            let last: String = r.try_get("", "last_name")?;
            out.add(&email, &first, &last);
        }
        Ok(out)
    }

    fn add(&mut self, email: &str, first: &str, last: &str) {
        self.emails.insert(email.to_owned());
        self.by_last
            .entry(normalize(last))
            .or_default()
            .push((normalize(&format!("{first} {last}")), email.to_owned()));
    }

    /// A member (or earlier row) with the same or nearly the same name (one edit) and
    /// another address.
    fn similar(&self, email: &str, first: &str, last: &str) -> Option<&str> {
        let full = normalize(&format!("{first} {last}"));
        self.by_last
            .get(&normalize(last))?
            .iter()
            .find_map(|(name, other)| {
                (other != email && edit_distance(name, &full, 1).is_some())
                    .then_some(other.as_str())
            })
    }
}

/// Checks every row of an upload against the org without writing: validation errors
/// and duplicates, row by row. Memory grows with the number of distinct addresses and
/// names (for duplicate detection), not with the cells.
#[derive(Debug)]
pub struct DryRun {
    roles: RoleIndex,
    actor_rank: BuiltinRole,
    members: ExistingMembers,
    in_file: ExistingMembers,
    first_row_of: HashMap<String, i64>,
    report: DryRunReport,
    policy: tenancy::privacy::DirectoryPolicy,
}

impl DryRun {
    /// A dry run against `members`, with `roles`, for an actor of rank `actor_rank`.
    #[must_use]
    pub fn new(roles: RoleIndex, actor_rank: BuiltinRole, members: ExistingMembers) -> Self {
        Self {
            roles,
            actor_rank,
            members,
            in_file: ExistingMembers::default(),
            first_row_of: HashMap::new(),
            report: DryRunReport::default(),
            policy: tenancy::privacy::DirectoryPolicy::default(),
        }
    }

    /// This dry run under the org's directory policy: rows with children are refused
    /// while the org keeps no children's data (as the real import refuses them).
    #[must_use]
    pub fn under_policy(mut self, policy: tenancy::privacy::DirectoryPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn note_dup(&mut self, d: Duplicate) {
        if self.report.duplicates.len() < REPORT_LIMIT {
            self.report.duplicates.push(d);
        } else {
            self.report.truncated = true;
        }
    }

    /// Checks one row.
    pub fn check(&mut self, raw: &RawRow) {
        self.report.total_rows += 1;
        let checked = validate(raw, &self.roles, self.actor_rank).and_then(|c| {
            match self.policy.admit_children(&c.children) {
                Ok(()) => Ok(c),
                Err(refused) => Err(vec![issue(
                    c.row,
                    "children",
                    "children_not_collected",
                    refused.to_string(),
                )]),
            }
        });
        match checked {
            Err(issues) => {
                self.report.invalid_rows += 1;
                for i in issues {
                    if self.report.errors.len() < REPORT_LIMIT {
                        self.report.errors.push(i);
                    } else {
                        self.report.truncated = true;
                    }
                }
            }
            Ok(c) => {
                let email = c.email.as_str().to_owned();
                let (first, last) = (c.first_name.as_str(), c.last_name.as_str());
                if let Some(&earlier) = self.first_row_of.get(&email) {
                    self.note_dup(Duplicate {
                        row: c.row,
                        kind: "email_in_file".into(),
                        email,
                        other_row: Some(earlier),
                        other_email: None,
                    });
                    return;
                }
                self.first_row_of.insert(email.clone(), c.row);
                if self.members.emails.contains(&email) {
                    self.note_dup(Duplicate {
                        row: c.row,
                        kind: "already_member".into(),
                        email,
                        other_row: None,
                        other_email: None,
                    });
                    return;
                }
                if self.members.invited.contains(&email) {
                    self.note_dup(Duplicate {
                        row: c.row,
                        kind: "already_invited".into(),
                        email,
                        other_row: None,
                        other_email: None,
                    });
                    return;
                }
                let similar = self
                    .members
                    .similar(&email, first, last)
                    .map(|o| (o.to_owned(), None))
                    .or_else(|| {
                        self.in_file
                            .similar(&email, first, last)
                            .map(|o| (o.to_owned(), self.first_row_of.get(o).copied()))
                    });
                self.in_file.add(&email, first, last);
                if let Some((other_email, other_row)) = similar {
                    self.note_dup(Duplicate {
                        row: c.row,
                        kind: "similar_name".into(),
                        email,
                        other_row,
                        other_email: Some(other_email),
                    });
                }
                self.report.valid_rows += 1;
            }
        }
    }

    /// The report.
    #[must_use]
    pub fn finish(self) -> DryRunReport {
        self.report
    }
}

/// What the import job stores in its parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportParams {
    /// The uploader (rows are added as them).
    pub actor: Uuid,
    /// The upload's request metadata (copied into every row's audit event).
    pub request: audit::RequestMeta,
    /// The file's format.
    pub format: crate::table::SheetFormat,
    /// How many days the invitations the rows create stay open (jobs queued before
    /// this field existed: the default, 14).
    #[serde(default = "default_invitation_days")]
    pub invitation_days: u16,
}

fn default_invitation_days() -> u16 {
    14
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Rows were applied and the cursor moved to this sequence number.
    Advanced(i64),
    /// Nothing is left.
    Done,
    /// Another worker holds the job now; this one stops.
    LeaseLost,
    /// The test hook stopped the worker in the middle of the step (nothing committed).
    Crashed,
}

/// Applies the next `batch` rows after `cursor` in one transaction: the valid rows
/// through the batched add-member operation (`tenancy_store::add_members_in`: each row
/// becomes an invitation of the org, with its audit event; an address that is a member
/// or has a pending invitation is refused), refused rows into the error report, and
/// the cursor moved past them, all committed together.
/// `crash_before` (tests) abandons the step without committing once the rows before
/// the one with that sequence number are applied.
///
/// # Errors
/// Storage failures (the step is rolled back; the job can be retried).
pub async fn import_step(
    queue: &JobQueue,
    lease: &Lease,
    params: &ImportParams,
    cursor: i64,
    batch: u64,
    crash_before: Option<i64>,
) -> Result<StepOutcome, JobStoreError> {
    let Some(txn) = queue.begin_step(lease, cursor).await? else {
        return Ok(StepOutcome::LeaseLost);
    };
    let mut items = JobQueue::items(&txn, lease, cursor, batch).await?;
    let Some(last) = items.last().map(|i| i.seq) else {
        txn.rollback().await?;
        return Ok(StepOutcome::Done);
    };
    let crash_at = crash_before.filter(|seq| items.iter().any(|i| i.seq == *seq));
    if let Some(seq) = crash_at {
        items.retain(|i| i.seq < seq);
    }
    let org = OrgId::from_uuid(lease.org_id);
    let actor = UserId::from_uuid(params.actor);
    let valid_for = time::Duration::days(i64::from(params.invitation_days));
    let roles = RoleIndex::new(&custom_roles(&txn, lease.org_id).await?);
    let actor_rank = actor_rank(&txn, lease.org_id, params.actor).await?;
    let ctx = AuditContext {
        actor: audit::Actor::User(params.actor),
        request: params.request.clone(),
    };
    // Validate every row; the valid ones are added together, in file order.
    let mut failures = Vec::new();
    let mut valid = Vec::with_capacity(items.len());
    for item in items {
        let raw: RawRow = serde_json::from_value(item.payload.clone()).unwrap_or(RawRow {
            row: item.seq,
            cells: std::collections::BTreeMap::new(),
        });
        let checked = match actor_rank {
            None => {
                Err("the importing member is no longer a member of this organization".to_owned())
            }
            Some(rank) => validate(&raw, &roles, rank).map_err(|issues| {
                issues
                    .iter()
                    .map(|i| format!("{}: {}", i.field, i.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        };
        match checked {
            Ok(c) => valid.push((item, c.request(org, actor, valid_for))),
            Err(reason) => failures.push(JobFailure {
                seq: item.seq,
                payload: item.payload,
                reason,
            }),
        }
    }
    let (valid_items, requests): (Vec<_>, Vec<_>) = valid.into_iter().unzip();
    let outcomes = tenancy_store::add_members_in(&txn, &ctx, queue.notices(), requests)
        .await
        .map_err(|e| JobStoreError(e.0))?;
    let mut ok = 0;
    for (item, outcome) in valid_items.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => ok += 1,
            Err(AddMemberError::Unexpected(e)) => return Err(JobStoreError(e.0)),
            Err(e) => failures.push(JobFailure {
                seq: item.seq,
                payload: item.payload,
                reason: e.to_string(),
            }),
        }
    }
    if crash_at.is_some() {
        drop(txn);
        return Ok(StepOutcome::Crashed);
    }
    let failed = i64::try_from(failures.len()).unwrap_or(i64::MAX);
    JobQueue::record_failures(&txn, lease, failures).await?;
    if JobQueue::commit_step(txn, lease, cursor, last, ok, failed).await? {
        Ok(StepOutcome::Advanced(last))
    } else {
        Ok(StepOutcome::LeaseLost)
    }
}

async fn custom_roles<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
) -> Result<Vec<CustomRole>, JobStoreError> {
    let backend = conn.get_database_backend();
    let p = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT id, name, counts_as FROM org_roles WHERE org_id = {p}"),
            [org.into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let counts: String = r.try_get("", "counts_as")?;
        let Ok(counts_as) = BuiltinRole::parse(&counts) else {
            continue;
        };
        out.push(CustomRole {
            id: tenancy::RoleId(r.try_get("", "id")?),
            org_id: OrgId::from_uuid(org),
            name: r.try_get("", "name")?,
            counts_as,
            extra_keys: permissions::KeySet::default(),
            max_holders: None,
            version: 0,
        });
    }
    Ok(out)
}

/// The rank of `user` in `org` (`None` if not a member).
async fn actor_rank<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
    user: Uuid,
) -> Result<Option<BuiltinRole>, JobStoreError> {
    let backend = conn.get_database_backend();
    let (p1, p2) = if backend == DbBackend::Postgres {
        ("$1", "$2")
    } else {
        ("?", "?")
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT m.builtin_role, r.counts_as FROM memberships m \
                 LEFT JOIN org_roles r ON r.org_id = m.org_id AND r.id = m.custom_role_id \
                 WHERE m.org_id = {p1} AND m.user_id = {p2} AND m.status = 'active'"
            ),
            [org.into(), user.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let builtin: Option<String> = row.try_get("", "builtin_role")?;
    let counts: Option<String> = row.try_get("", "counts_as")?;
    Ok(builtin.or(counts).and_then(|r| BuiltinRole::parse(&r).ok()))
}

/// The custom roles of `org` (for a dry run's role index).
///
/// # Errors
/// Storage failures.
pub async fn roles_of(db: &Database, org: Uuid) -> Result<RoleIndex, JobStoreError> {
    let txn = db.read_for_org(org).await?;
    let roles = custom_roles(&txn, org).await?;
    txn.commit().await?;
    Ok(RoleIndex::new(&roles))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn raw(row: i64, cells: &[(&str, &str)]) -> RawRow {
        RawRow {
            row,
            cells: cells
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn validation_reports_every_problem_of_a_row() {
        let roles = RoleIndex::default();
        let issues = validate(
            &raw(
                7,
                &[
                    ("email", "not-an-email"),
                    ("first_name", "Ana"),
                    ("role", "wizard"),
                ],
            ),
            &roles,
            BuiltinRole::Admin,
        )
        .unwrap_err();
        let codes: Vec<_> = issues.iter().map(|i| (i.row, i.code.as_str())).collect();
        assert_eq!(
            codes,
            [(7, "invalid_email"), (7, "missing"), (7, "unknown_role")]
        );
        let above = validate(
            &raw(
                2,
                &[
                    ("email", "a@example.org"),
                    ("first_name", "A"),
                    ("last_name", "B"),
                    ("role", "admin"),
                ],
            ),
            &roles,
            BuiltinRole::BoardMember,
        )
        .unwrap_err();
        assert_eq!(above[0].code, "role_above_yours");
    }

    #[test]
    fn control_characters_refuse_the_row_naming_each_column() {
        let roles = RoleIndex::default();
        let issues = validate(
            &raw(
                4,
                &[
                    ("email", "a@example.org"),
                    ("first_name", "Ana"),
                    ("last_name", "Li"),
                    ("phone", "555\u{0}1234"),
                    ("committee", "Book\u{1b}Fair"),
                    ("status", "ignored\u{0}"),
                ],
            ),
            &roles,
            BuiltinRole::Admin,
        )
        .unwrap_err();
        let got: Vec<_> = issues
            .iter()
            .map(|i| (i.row, i.field.as_str(), i.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (4, "phone", "control_character"),
                (4, "committee", "control_character")
            ]
        );
        // Tabs are text; a column the importer ignores is not looked at.
        assert!(
            validate(
                &raw(
                    5,
                    &[
                        ("email", "b@example.org"),
                        ("first_name", "Bo"),
                        ("last_name", "Li"),
                        ("committee", "Book\tFair"),
                        ("status", "x\u{0}"),
                    ],
                ),
                &roles,
                BuiltinRole::Admin,
            )
            .is_ok()
        );
    }

    #[test]
    fn dry_run_finds_duplicates_in_the_file_and_among_members() {
        let mut members = ExistingMembers::default();
        members.add("old@example.org", "Maria", "Lopez");
        members.invited.insert("asked@example.org".into());
        let mut dry = DryRun::new(RoleIndex::default(), BuiltinRole::Admin, members);
        let row = |n, e: &str, f: &str, l: &str| {
            raw(n, &[("email", e), ("first_name", f), ("last_name", l)])
        };
        dry.check(&row(2, "a@example.org", "Ana", "Smith"));
        dry.check(&row(3, "A@example.org", "Ann", "Smith"));
        dry.check(&row(4, "old@example.org", "X", "Y"));
        dry.check(&row(5, "new@example.org", "María", "López"));
        dry.check(&row(6, "b@example.org", "Anna", "Smith"));
        dry.check(&row(7, "Asked@example.org", "Ask", "Ed"));
        let report = dry.finish();
        let kinds: Vec<_> = report
            .duplicates
            .iter()
            .map(|d| (d.row, d.kind.as_str(), d.other_row))
            .collect();
        assert_eq!(
            kinds,
            [
                (3, "email_in_file", Some(2)),
                (4, "already_member", None),
                (5, "similar_name", None),
                (6, "similar_name", Some(2)),
                (7, "already_invited", None),
            ]
        );
        assert_eq!((report.total_rows, report.valid_rows), (6, 3));
    }
}
