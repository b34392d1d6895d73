//! Directory privacy (issue #17): a member's own choices (`/orgs/{org_id}/me/privacy`),
//! the org's directory policy (`/orgs/{org_id}/directory-policy`), the printable
//! directory (`/orgs/{org_id}/directory/export`), and data-access activity
//! (`/orgs/{org_id}/access-log`, `/me/access-log`).
//!
//! What a viewer sees of a member is decided by `tenancy::privacy::visibility`; the
//! member routes (`routes/members.rs`) apply it to lists, search and profiles.

use actix_web::http::Method;
use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use garde::Validate;
use jobs::export::{ExportSpec, MemberPages};
use permissions::PermissionKey;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::UserId;
use tenancy::directory::{Audience, MemberPage};
use tenancy::privacy::{
    AccessLogQuery, Choice, ConfirmDetailsError, ConfirmationCycle, DirectoryField,
    DirectoryPolicy, Listing, NewChoices, PolicyChange, PrivacyChoices, PrivacyRepository,
    RecordAccess, SetChoicesError, SetPolicyError, Viewer, in_directory, visibility,
};
use uuid::Uuid;

use super::common::{FileStream, attachment, file_response};
use super::members::{MemberFilterQuery, OrderDto, SortDto, StatusFilterDto};
use crate::auth::{Caller, OrgMember};
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, FieldError, IfMatch, Json, Paged, Pagination, Query, Reply,
    RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "privacy";
    r.get(
        "/api/v2/orgs/{org_id}/me/privacy",
        get_my_privacy,
        RouteDoc::new("get_my_privacy", "Your directory privacy choices in this org", TAG)
            .description("Each of `listing`, `phone`, `email`, `committee` and `children_and_grades` is `hidden` (other members don't see it; the org's admins still see your record), `members` (shown to the org's members, if the org's directory policy shows the field) or `null` (no choice made: the org's listing mode decides — shown under `opt_out`, hidden under `opt_in`). `effective` says what other members see of you now (including whether you lapsed in the org's \"confirm your details\" cycle), `policy` what the org's directory shows at most."),
    );
    r.route(
        Method::PUT,
        "/api/v2/orgs/{org_id}/me/privacy",
        put_my_privacy,
        RouteDoc::new("put_my_privacy", "Set your directory privacy choices in this org", TAG)
            .description("Replaces your choices (a field left out or `null`: no choice, the org's listing mode decides). Recorded with the time and the policy version (`notice_version`, default: the current one) you chose under, and audited. No admin setting overrides a field you hide. Send the `version` you read (or `If-Match`; 0 before your first choice): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/directory-policy",
        get_directory_policy,
        RouteDoc::new("get_directory_policy", "The org's directory policy", TAG)
            .description("Which fields the directory (what members see of each other) may show, and whether members are listed unless they opt out (`opt_out`) or only once they opt in (`opt_in`). `version` 0: the org never set it (the defaults). Any member may read it: it is the notice their choices refer to."),
    );
    r.route(
        Method::PUT,
        "/api/v2/orgs/{org_id}/directory-policy",
        put_directory_policy,
        RouteDoc::new("put_directory_policy", "Set the org's directory policy (admins)", TAG)
            .description("Replaces the policy. Send the `version` you read (or `If-Match`): 428 without one, 412 when stale. A policy can only hide more than members chose, never show a field a member hid. `children_data` and `confirm_cycle` left out stay as they are. `children_data: false` switches children's data off for the org: from then on a write sending children (a profile edit, an invitation) is refused with 422 (`children`, `not_collected`) and an import row with children fails, nothing shows children, and the children already stored for the org's members, removed members and invitations are deleted in the same transaction (the audit event counts them in `children_erased`, naming none). `confirm_cycle` (`null`: none) sets the yearly \"confirm your details\" cycle: `starts_on` and `confirm_by` (UTC days, `confirm_by` not before `starts_on`; 422 otherwise). Audited (`org.update` on `directory_policy`).")
            .org_admin()
            .rate_class(RateClass::Update)
            .errors(&[
                ErrorCode::VersionMismatch,
                ErrorCode::PreconditionRequired,
                ErrorCode::ValidationFailed,
            ]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/me/confirm-details",
        confirm_details,
        RouteDoc::new("confirm_details", "Confirm your details are current (this year's cycle)", TAG)
            .description("Records that you checked your details in this org now (`details_confirmed_at`), for the org's \"confirm your details\" cycle (`confirm_cycle` of its directory policy): once the cycle's `confirm_by` day has passed, members who have not confirmed (or joined) since its `starts_on` day are left out of the directory — its list, search and printable export — until they confirm; the org's admins still see their records, and you always see your own. Any member may confirm at any time; audited `member.update`. Answers your confirmation state.")
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::NotFound]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/directory/export",
        export_directory,
        RouteDoc::new("export_directory", "The printable directory (CSV)", TAG)
            .description("The directory as members see it — never the record, whoever asks: listed members only, with `first_name`, `last_name`, `role`, and `committee`, `email`, `phone`, `children` where the org's policy and each member's choices show them (blank otherwise). The list's filters and sort (not `email`), or a search (`q`) matched only on shown fields. Recorded as a `data.export` activity with its row count.")
            .permission(PermissionKey::UsersView)
            .rate_class(RateClass::Export)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/access-log",
        org_access_log,
        RouteDoc::new(
            "org_access_log",
            "Reads of members' records by others (admins)",
            TAG,
        )
        .description("Data-access activity, newest first: who read whose record (`GET …/users/{user_id}` by an admin) and when. Filter by `user_id` (whose record). Cursor-paginated.")
        .org_admin()
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/me/access-log",
        my_access_log,
        RouteDoc::new(
            "my_access_log",
            "Who read your records, in every org",
            "me",
        )
        .description("Reads of your member record by someone else (an org's admins), in every org you belong or belonged to, newest first. Cursor-paginated.")
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
}

/// A choice: `hidden` or `members`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceDto {
    /// Not shown to other members.
    Hidden,
    /// Shown to the org's members (if the policy shows the field).
    Members,
}

impl From<ChoiceDto> for Choice {
    fn from(c: ChoiceDto) -> Self {
        match c {
            ChoiceDto::Hidden => Self::Hidden,
            ChoiceDto::Members => Self::Members,
        }
    }
}

impl From<Choice> for ChoiceDto {
    fn from(c: Choice) -> Self {
        match c {
            Choice::Hidden => Self::Hidden,
            Choice::Members => Self::Members,
        }
    }
}

/// Opt-out or opt-in listing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingDto {
    /// Listed unless the member opts out.
    OptOut,
    /// Listed only once the member opts in.
    OptIn,
}

/// What other members see of you now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EffectiveDto {
    /// Whether you are in the directory (listed by your choice or the listing mode, and
    /// not lapsed in the org's "confirm your details" cycle).
    pub listed: bool,
    /// Your standing in that cycle: `confirmed`, `due`, `lapsed` (not in the directory
    /// until you confirm with `POST …/me/confirm-details`) or `no_cycle`.
    pub details_confirmation: &'static str,
    /// Fields shown to other members.
    pub shown: Vec<&'static str>,
    /// Fields hidden from other members.
    pub hidden: Vec<&'static str>,
}

/// Your privacy choices in an org.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PrivacyView {
    /// Whether to be listed in the directory at all (`null`: the listing mode decides).
    pub listing: Option<ChoiceDto>,
    /// Phone number.
    pub phone: Option<ChoiceDto>,
    /// E-mail address.
    pub email: Option<ChoiceDto>,
    /// Committee.
    pub committee: Option<ChoiceDto>,
    /// Children and their grades.
    pub children_and_grades: Option<ChoiceDto>,
    /// The directory policy version (privacy notice) you chose under.
    pub notice_version: Option<i64>,
    /// When you last chose (RFC 3339); `null`: never.
    pub chosen_at: Option<String>,
    /// Version of your choices (0: never chosen).
    pub version: i64,
    /// What other members see of you now.
    pub effective: EffectiveDto,
    /// The org's directory policy.
    pub policy: PolicyView,
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

fn privacy_view(
    policy: &DirectoryPolicy,
    c: &PrivacyChoices,
    member: &tenancy::Membership,
) -> PrivacyView {
    let shown = visibility(Viewer::Member, policy, c);
    let (confirmed_at, joined_at) = (member.details_confirmed_at, member.joined_at);
    PrivacyView {
        listing: c.listing.map(Into::into),
        phone: c.phone.map(Into::into),
        email: c.email.map(Into::into),
        committee: c.committee.map(Into::into),
        children_and_grades: c.children_and_grades.map(Into::into),
        notice_version: c.notice_version,
        chosen_at: rfc3339(c.chosen_at),
        version: c.version,
        effective: EffectiveDto {
            listed: in_directory(policy, c, confirmed_at, joined_at, today()),
            details_confirmation: policy
                .confirmation(confirmed_at, joined_at, today())
                .as_str(),
            shown: DirectoryField::ALL
                .into_iter()
                .filter(|f| shown.shows(*f))
                .map(DirectoryField::as_str)
                .collect(),
            hidden: shown
                .hidden_fields()
                .into_iter()
                .map(DirectoryField::as_str)
                .collect(),
        },
        policy: policy_view(policy),
    }
}

/// An org's directory policy.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PolicyView {
    /// The directory may show phone numbers.
    pub phone: bool,
    /// The directory may show e-mail addresses.
    pub email: bool,
    /// The directory may show committees.
    pub committee: bool,
    /// The directory may show children and their grades.
    pub children_and_grades: bool,
    /// `opt_out` (listed unless a member says no) or `opt_in`.
    pub listing: ListingDto,
    /// Whether the org keeps children's names and grades at all (`false`: none is
    /// stored or shown, whatever `children_and_grades` says).
    pub children_data: bool,
    /// The yearly "confirm your details" cycle (`null`: none).
    pub confirm_cycle: Option<CycleView>,
    /// Version (0: never set, the defaults); also the privacy notice's version.
    pub version: i64,
    /// When it last changed (RFC 3339).
    pub updated_at: Option<String>,
}

/// A "confirm your details" cycle.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CycleView {
    /// The first day (UTC) from which confirmations count (`YYYY-MM-DD`).
    pub starts_on: String,
    /// The last day (UTC) to confirm (`YYYY-MM-DD`); from the day after, members who
    /// have not confirmed or joined since `starts_on` are not in the directory.
    pub confirm_by: String,
    /// Whether `confirm_by` has passed (today, UTC).
    pub deadline_passed: bool,
}

/// A "confirm your details" cycle to set.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CycleBody {
    /// The first day (UTC) from which confirmations count (`YYYY-MM-DD`).
    #[garde(length(max = 10))]
    #[schemars(extend("format" = "date"))]
    pub starts_on: String,
    /// The last day (UTC) to confirm (`YYYY-MM-DD`), not before `starts_on`.
    #[garde(length(max = 10))]
    #[schemars(extend("format" = "date"))]
    pub confirm_by: String,
}

const DAY: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn day_string(d: time::Date) -> String {
    d.format(DAY).unwrap_or_default()
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

pub(super) fn cycle_view(c: &ConfirmationCycle) -> CycleView {
    CycleView {
        starts_on: day_string(c.starts_on),
        confirm_by: day_string(c.confirm_by),
        deadline_passed: c.deadline_passed(today()),
    }
}

impl CycleBody {
    fn to_domain(&self) -> Result<ConfirmationCycle, ApiError> {
        let day = |field: &str, v: &str| {
            time::Date::parse(v, DAY).map_err(|_| {
                ApiError::validation(vec![FieldError {
                    field: format!("confirm_cycle.{field}"),
                    code: "invalid_value".into(),
                    message: "a day as YYYY-MM-DD".into(),
                }])
            })
        };
        let starts_on = day("starts_on", &self.starts_on)?;
        let confirm_by = day("confirm_by", &self.confirm_by)?;
        ConfirmationCycle::new(starts_on, confirm_by).map_err(|e| {
            ApiError::validation(vec![FieldError {
                field: "confirm_cycle.confirm_by".into(),
                code: "before_start".into(),
                message: e.to_string(),
            }])
        })
    }
}

/// Absent → unchanged; `null` → `Some(None)`; a value → `Some(Some(v))`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn policy_view(p: &DirectoryPolicy) -> PolicyView {
    PolicyView {
        phone: p.phone,
        email: p.email,
        committee: p.committee,
        children_and_grades: p.children_and_grades,
        listing: match p.listing {
            Listing::OptOut => ListingDto::OptOut,
            Listing::OptIn => ListingDto::OptIn,
        },
        children_data: p.children_data,
        confirm_cycle: p.confirm_cycle.as_ref().map(cycle_view),
        version: p.version,
        updated_at: rfc3339(p.updated_at),
    }
}

async fn get_my_privacy(state: State, member: OrgMember) -> Result<Tagged<PrivacyView>, ApiError> {
    let me = member.user_id()?;
    let (policy, choices) = state
        .privacy
        .choices(member.org_id(), me)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    let mine = own_membership(&state, &member).await?;
    let view = privacy_view(&policy, &choices, &mine);
    Ok(Tagged {
        version: view.version,
        data: view,
    })
}

/// The caller's membership (for their standing in the confirmation cycle).
async fn own_membership(
    state: &State,
    member: &OrgMember,
) -> Result<tenancy::Membership, ApiError> {
    use tenancy::ports::OrgRepository;
    state
        .orgs
        .get_membership(member.org_id(), member.user_id()?)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))
}

/// Your choices (each absent or `null`: no choice).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PrivacyBody {
    /// The version you read (or `If-Match`; 0 before your first choice); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// The directory policy version (privacy notice) you saw; default: the current one.
    #[garde(inner(range(min = 0)))]
    #[schemars(range(min = 0))]
    pub notice_version: Option<i64>,
    /// Whether to be listed in the directory at all.
    #[garde(skip)]
    pub listing: Option<ChoiceDto>,
    /// Phone number.
    #[garde(skip)]
    pub phone: Option<ChoiceDto>,
    /// E-mail address.
    #[garde(skip)]
    pub email: Option<ChoiceDto>,
    /// Committee.
    #[garde(skip)]
    pub committee: Option<ChoiceDto>,
    /// Children and their grades.
    #[garde(skip)]
    pub children_and_grades: Option<ChoiceDto>,
}

impl From<SetChoicesError> for ApiError {
    fn from(e: SetChoicesError) -> Self {
        match e {
            SetChoicesError::NotFound => Self::not_found("no such member"),
            SetChoicesError::VersionMismatch { current } => Self::new(
                ErrorCode::VersionMismatch,
                "your privacy choices changed since you read them",
            )
            .with_details(serde_json::json!({ "current_version": current })),
            SetChoicesError::UnknownNotice(n) => Self::validation(vec![FieldError {
                field: "notice_version".into(),
                code: "unknown".into(),
                message: n.to_string(),
            }]),
            SetChoicesError::Unexpected(e) => e.into(),
        }
    }
}

impl From<SetPolicyError> for ApiError {
    fn from(e: SetPolicyError) -> Self {
        match e {
            SetPolicyError::NotFound => Self::not_found("no such organization"),
            SetPolicyError::VersionMismatch { current } => Self::new(
                ErrorCode::VersionMismatch,
                "the directory policy changed since you read it",
            )
            .with_details(serde_json::json!({ "current_version": current })),
            SetPolicyError::Unexpected(e) => e.into(),
        }
    }
}

async fn put_my_privacy(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<PrivacyBody>,
) -> Result<Reply<PrivacyView>, ApiError> {
    let me = member.user_id()?;
    let version = super::common::required_version(body.version, if_match)?;
    let (policy, choices) = state
        .privacy
        .set_choices(
            &member.audit_context(),
            member.org_id(),
            me,
            Some(version),
            NewChoices {
                listing: body.listing.map(Into::into),
                phone: body.phone.map(Into::into),
                email: body.email.map(Into::into),
                committee: body.committee.map(Into::into),
                children_and_grades: body.children_and_grades.map(Into::into),
                notice_version: body.notice_version,
            },
        )
        .await?;
    let mine = own_membership(&state, &member).await?;
    Ok(Reply(privacy_view(&policy, &choices, &mine)))
}

async fn get_directory_policy(
    state: State,
    member: OrgMember,
) -> Result<Tagged<PolicyView>, ApiError> {
    let policy = state.privacy.policy(member.org_id()).await?;
    Ok(Tagged {
        version: policy.version,
        data: policy_view(&policy),
    })
}

/// A directory policy.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// The version you read (or `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// Show phone numbers.
    #[garde(skip)]
    pub phone: bool,
    /// Show e-mail addresses.
    #[garde(skip)]
    pub email: bool,
    /// Show committees.
    #[garde(skip)]
    pub committee: bool,
    /// Show children and their grades.
    #[garde(skip)]
    pub children_and_grades: bool,
    /// `opt_out` or `opt_in`.
    #[garde(skip)]
    pub listing: ListingDto,
    /// Keep children's names and grades at all (left out: as it is). `false` deletes
    /// those stored and refuses new ones.
    #[garde(skip)]
    #[serde(default)]
    pub children_data: Option<bool>,
    /// The "confirm your details" cycle (left out: as it is; `null`: none).
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<CycleBody>")]
    pub confirm_cycle: Option<Option<CycleBody>>,
}

async fn put_directory_policy(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<PolicyBody>,
) -> Result<Reply<PolicyView>, ApiError> {
    let version = body.version.or(if_match.0).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PreconditionRequired,
            "send the version you read, as `version` or in an `If-Match` header",
        )
    })?;
    let cycle = match &body.confirm_cycle {
        None => None,
        Some(None) => Some(None),
        Some(Some(c)) => Some(Some(c.to_domain()?)),
    };
    let policy = state
        .privacy
        .set_policy(
            &member.audit_context(),
            member.org_id(),
            version,
            PolicyChange {
                phone: body.phone,
                email: body.email,
                committee: body.committee,
                children_and_grades: body.children_and_grades,
                listing: match body.listing {
                    ListingDto::OptOut => Listing::OptOut,
                    ListingDto::OptIn => Listing::OptIn,
                },
                children_data: body.children_data,
                confirm_cycle: cycle,
            },
        )
        .await?;
    Ok(Reply(policy_view(&policy)))
}

/// Your confirmation of your details in an org.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfirmationView {
    /// When you last confirmed (RFC 3339); `null`: never.
    pub details_confirmed_at: Option<String>,
    /// `confirmed` (since the cycle started), `due` (not yet; the deadline has not
    /// passed), `lapsed` (not in the directory until you confirm) or `no_cycle`.
    pub status: &'static str,
    /// The org's cycle (`null`: none).
    pub confirm_cycle: Option<CycleView>,
    /// Your membership's version after the confirmation.
    pub version: i64,
}

impl From<ConfirmDetailsError> for ApiError {
    fn from(e: ConfirmDetailsError) -> Self {
        match e {
            ConfirmDetailsError::NotFound => Self::not_found("no such member"),
            ConfirmDetailsError::Unexpected(e) => e.into(),
        }
    }
}

async fn confirm_details(
    state: State,
    member: OrgMember,
) -> Result<Reply<ConfirmationView>, ApiError> {
    let me = member.user_id()?;
    let (policy, m) = state
        .privacy
        .confirm_details(&member.audit_context(), member.org_id(), me)
        .await?;
    Ok(Reply(ConfirmationView {
        details_confirmed_at: rfc3339(m.details_confirmed_at),
        status: policy
            .confirmation(m.details_confirmed_at, m.joined_at, today())
            .as_str(),
        confirm_cycle: policy.confirm_cycle.as_ref().map(cycle_view),
        version: m.version,
    }))
}

/// What to put in the printable directory.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DirectoryExportQuery {
    /// Only the members this search finds (on shown fields only), best match first.
    #[garde(inner(length(chars, min = 1, max = 100)))]
    #[schemars(length(min = 1, max = 100))]
    pub q: Option<String>,
    /// Sort key (default `name`; not `email`).
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

/// The columns of the printable directory.
const DIRECTORY_COLUMNS: [&str; 7] = [
    "first_name",
    "last_name",
    "role",
    "committee",
    "email",
    "phone",
    "children",
];

/// The CSV lines of one page of the directory, each member as other members see them.
fn directory_lines(page: &MemberPage) -> (String, u64) {
    let mut buf = String::new();
    let mut rows = 0;
    for (u, m) in &page.rows {
        let shown = visibility(Viewer::Member, &page.policy, &page.choices_of(u.id));
        if !shown.listed {
            continue;
        }
        let children = m
            .children
            .iter()
            .map(|c| match &c.grade {
                Some(g) => format!("{} ({g})", c.name),
                None => c.name.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let cell = |on: bool, v: String| if on { v } else { String::new() };
        sheets::csv::push_line(
            &mut buf,
            &[
                u.first_name.to_string(),
                u.last_name.to_string(),
                m.role.name().to_owned(),
                cell(shown.committee, m.committee.clone().unwrap_or_default()),
                cell(shown.email, u.email.to_string()),
                cell(shown.phone, u.phone.clone().unwrap_or_default()),
                cell(shown.children_and_grades, children),
            ],
        );
        rows += 1;
    }
    (buf, rows)
}

/// The printable directory: a CSV file.
pub struct DirectoryFile {
    filename: String,
    body: FileStream,
}

impl std::fmt::Debug for DirectoryFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryFile")
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

impl actix_web::Responder for DirectoryFile {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        attachment("text/csv; charset=utf-8", &self.filename, self.body)
    }
}

impl aide::OperationOutput for DirectoryFile {
    type Inner = ();
    fn inferred_responses(
        _ctx: &mut aide::generate::GenContext,
        _op: &mut aide::openapi::Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, aide::openapi::Response)> {
        vec![(
            Some(aide::openapi::StatusCode::Code(200)),
            file_response("The directory: a header row, then one row per listed member"),
        )]
    }
}

async fn export_directory(
    state: State,
    member: OrgMember,
    Query(q): Query<DirectoryExportQuery>,
) -> Result<DirectoryFile, ApiError> {
    if matches!(q.sort, SortDto::Email) {
        return Err(super::members::email_sort_refused());
    }
    let org = member.org_id().as_uuid();
    let spec = ExportSpec {
        role: q.filter.role.clone(),
        status: q.filter.status.map(|s| {
            match s {
                StatusFilterDto::Active => "active",
                StatusFilterDto::Invited => "invited",
                StatusFilterDto::Suspended => "suspended",
            }
            .to_owned()
        }),
        committee: q.filter.committee.clone(),
        joined_from: q.filter.joined_from,
        joined_to: q.filter.joined_to,
        q: q.q.clone(),
        sort: Some(
            match q.sort {
                SortDto::Name | SortDto::Email => "name",
                SortDto::Joined => "joined",
                SortDto::LastActive => "last_active",
            }
            .to_owned(),
        ),
        descending: matches!(q.order, OrderDto::Desc),
    };
    let mut pages = MemberPages::new(state.directory.clone(), org, &spec)
        .map_err(|e| {
            ApiError::validation(vec![FieldError {
                field: e.field.into(),
                code: "invalid".into(),
                message: e.message,
            }])
        })?
        .for_audience(Audience::Directory);
    // Read whole before anything is sent, so the activity records its row count. A
    // directory is a few thousand short lines at most.
    let mut body = String::new();
    sheets::csv::push_line(&mut body, &DIRECTORY_COLUMNS);
    let mut rows = 0_u64;
    while let Some(page) = pages.next_full_page().await? {
        let (lines, n) = directory_lines(&page);
        body.push_str(&lines);
        rows += n;
    }
    let ctx = member.audit_context();
    let event = audit::NewAuditEvent::activity(
        audit::TenantScope::org(org),
        ctx.actor,
        audit::action::activity::DATA_EXPORT,
        "directory",
        org.to_string(),
    )
    .with_request(&ctx.request)
    .with_new_value(serde_json::json!({
        "kind": "directory",
        "format": "csv",
        "rows": rows,
        "filter": spec,
    }));
    audit_store::AuditedTx::record_alone(&state.db, event)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    Ok(DirectoryFile {
        filename: format!("directory-{org}.csv"),
        body: stream::once(async move { Ok(Bytes::from(body)) }).boxed(),
    })
}

/// Paging of data-access activity.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct AccessLogPageQuery {
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// Only reads of this member's record (org log only).
    #[garde(skip)]
    pub user_id: Option<Uuid>,
}

/// One read of a member's record by someone else.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AccessView {
    /// Entry id (also the cursor).
    pub id: Uuid,
    /// The org.
    pub org_id: Uuid,
    /// Who read it.
    pub accessor_user_id: Uuid,
    /// Whose record.
    pub subject_user_id: Uuid,
    /// What was read (`member.record`).
    pub what: String,
    /// When (RFC 3339).
    pub at: String,
}

fn access_page(rows: Vec<RecordAccess>, limit: u32) -> Paged<AccessView> {
    let more = rows.len() > limit as usize;
    let items: Vec<AccessView> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| AccessView {
            id: r.id,
            org_id: r.org_id.as_uuid(),
            accessor_user_id: r.accessor.as_uuid(),
            subject_user_id: r.subject.as_uuid(),
            what: r.what,
            at: rfc3339(Some(r.at)).unwrap_or_default(),
        })
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Paged {
        items,
        pagination: Pagination {
            limit,
            next_cursor,
            total: None,
        },
    }
}

async fn org_access_log(
    state: State,
    member: OrgMember,
    Query(q): Query<AccessLogPageQuery>,
) -> Result<Paged<AccessView>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .privacy
        .org_access_log(
            member.org_id(),
            &AccessLogQuery {
                before: q.cursor,
                subject: q.user_id.map(UserId::from_uuid),
                limit: u64::from(limit) + 1,
            },
        )
        .await?;
    Ok(access_page(rows, limit))
}

async fn my_access_log(
    state: State,
    caller: Caller,
    Query(q): Query<AccessLogPageQuery>,
) -> Result<Paged<AccessView>, ApiError> {
    if q.user_id.is_some() {
        return Err(ApiError::validation(vec![FieldError {
            field: "user_id".into(),
            code: "not_allowed".into(),
            message: "your own log lists reads of your records only".into(),
        }]));
    }
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .privacy
        .own_access_log(
            caller.user_id(),
            &AccessLogQuery {
                before: q.cursor,
                subject: None,
                limit: u64::from(limit) + 1,
            },
        )
        .await?;
    Ok(access_page(rows, limit))
}
