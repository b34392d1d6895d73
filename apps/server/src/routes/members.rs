//! An org's members (`/orgs/{org_id}/users`: a user as seen in that org). Its custom
//! roles are in `roles`.

use actix_web::http::Method;
use garde::Validate;
use permissions::PermissionKey;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::directory::{
    Audience, MemberCursor, MemberDirectory, MemberFilter, MemberListRequest, MemberPage,
    MemberSearchRequest, MemberSort, RoleFilter,
};
use tenancy::ports::{ChangeMemberRequest, ChangedMember, OrgRepository, RoleChoice};
use tenancy::privacy::{
    DirectoryField, DirectoryPolicy, PrivacyChoices, PrivacyRepository, View, Viewer, Visibility,
    in_directory, visibility,
};
use tenancy::search::SearchQuery;
use tenancy::{Child, Membership, MembershipStatus, RoleAssignment, RoleId, User, UserId};
use uuid::Uuid;

use super::permissions::RoleDto;
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, FieldError, IfMatch, Json, NoContent, PageQuery, Paged,
    Pagination, Path, Query, Reply, RouteDoc, SearchPaged, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "members";
    r.get(
        "/api/v2/orgs/{org_id}/users",
        list_members,
        RouteDoc::new(
            "list_members",
            "The org's members: filtered, sorted, cursor-paginated",
            TAG,
        )
        .description("Sort by `name`, `email` (admins only: addresses may be hidden from others), `joined` or `last_active` (`order=desc` to reverse); filter by role, status, committee and joined range. Admins see every member's record; other members see the directory: listed members only, each with the fields the org's directory policy and the member's own choices show (`view`, `hidden_fields`); a committee filter matches only shown committees. Pages are keyset-paginated: members added or removed between fetches cause no gaps or duplicates. A cursor belongs to its sort order.")
        .permission(PermissionKey::UsersView)
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/users/search",
        search_members,
        RouteDoc::new(
            "search_members",
            "Search the org's members, typo-tolerant, best match first",
            TAG,
        )
        .description("Answered from an in-memory index of the org (any script: names in Latin, CJK, Cyrillic, Arabic… letters; diacritics, case and width folded). Every word of `q` must match a word of the member's names, e-mail or committee — for members other than admins, only the fields each member shows them (a hidden e-mail never matches), among members in the directory: exactly, as a prefix (type-ahead) or with a typo (one edit in words of 4–7 letters, two in longer ones; a transposition is one edit). Best match first: exact over prefix over typo, names over committee over e-mail, then the more common name. Each hit has `highlights` (the matched characters of shown fields); `meta.search` has `did_you_mean` and per-word `suggestions` for words without an exact or prefix match, and facet counts (role, status, committee) over all results; `meta.pagination.total` counts all results (the best 5,000 are considered: a broader query should be narrowed). When nothing in those fields matches, phone numbers, children's names and matches inside words are searched (no highlights, no total). The same filters as the list apply. Pages are positional (`cursor` is the offset of the next page).")
        .permission(PermissionKey::UsersView)
        .rate_class(RateClass::Search)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/bulk-update",
        bulk_update,
        RouteDoc::new("bulk_update_members", "Change the role or status of many members", TAG)
            .description("Up to 500 members; each is changed in its own transaction under the same rules as a single update (only members below your rank, no role above your own or carrying keys you don't hold, last admin, role capacity) and reported on its own: one refusal does not undo the others. Each change is audited.")
            .permission(PermissionKey::UsersEditRoles)
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/bulk-remove",
        bulk_remove,
        RouteDoc::new("bulk_remove_members", "Remove many members (two steps)", TAG)
            .description("Without `confirmation_token`, nothing is removed: the answer is `confirmation_required` with a token valid for 5 minutes for exactly these members. Send the same ids with that token to remove them, each in its own transaction (soft removal, restorable), each reported.")
            .permission(PermissionKey::UsersRemove)
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/users/removed",
        list_removed,
        RouteDoc::new(
            "list_removed_members",
            "Removed members, restorable (cursor-paginated by user id)",
            TAG,
        )
        .permission(PermissionKey::UsersRemove)
        .rate_class(RateClass::List)
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/{user_id}/restore",
        restore_member,
        RouteDoc::new("restore_member", "Restore a removed member", TAG)
            .description("Brings back the member's role, status, committee and children. Their custom role, if deleted meanwhile, becomes `volunteer`; a full custom role (maximum holders) or a role above your own or carrying keys you don't hold refuses the restore (409/403). 409 if they rejoined meanwhile.")
            .permission(PermissionKey::UsersRemove)
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::Conflict]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/users/{user_id}",
        get_member,
        RouteDoc::new("get_member", "One member", TAG)
            .description("Yourself and, for the org's admins, anyone: the record. Other members: the directory entry (what the org's directory policy and the member's own choices show; 404 for a member not listed). An admin's read of someone else's record is recorded as data-access activity (`GET …/access-log`, and the member's `GET /me/access-log`). Carries an `ETag`; `If-None-Match` with it answers 304 while the member is unchanged.")
            .permission(PermissionKey::UsersView),
    );
    r.route(
        Method::PATCH,
        "/api/v2/orgs/{org_id}/users/{user_id}",
        update_member,
        RouteDoc::new("update_member", "Change a member's role, status, term, profile or account details", TAG)
            .description("Who may hand out what: role, status and term end (`role_ends_at`) are changed only for members ranking below you (admins: any member); a role is assigned only at or below your own rank and only if you hold every extra key it carries (403, `details.keys_not_held`); your own role, status and term may go down, never up (no raising your role, no clearing or extending your term end). The last active admin cannot be demoted or suspended (409). Profile fields (committee, children) are edited here too, for members not ranking above you. Account details (`first_name`, `last_name`, `phone`): your own, or those of a member not ranking above you whose account belongs to this org alone (409, `details.reason = shared_account`, otherwise: its owner changes it). `email`: not your own (`POST /api/v2/me/email` proves the new address: 422), another member's only by an admin, for an account of this org alone whose address its owner has not proven (403 otherwise); an address another account has is 409. Account changes are audited `user.profile_update`. Send the `version` you read (or `If-Match` with the `ETag`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
            .permission(PermissionKey::UsersEditRoles)
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::Conflict, ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::ValidationFailed]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/users/{user_id}",
        remove_member,
                RouteDoc::new("remove_member", "Remove a member from the org (restorable)", TAG)
            .description("Answers 204. Removal is soft: the member loses every permission at once, and `POST …/restore` brings them back as they were. Only members ranking below you (admins: any member; anyone may leave). The last active admin cannot be removed (409). API keys the member created are revoked.")
            .permission(PermissionKey::UsersRemove)
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/me",
        leave_org,
        RouteDoc::new("leave_org", "Leave this org", TAG)
            .description("Answers 204. Any member may leave (`member.leave`): the membership is removed softly, as by `DELETE …/users/{user_id}`, and an admin can restore it. The org's last active admin cannot leave: 409 with `details.reason = last_admin` (make someone else admin first). API keys you created in the org are revoked.")
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict]),
    );
    r.route(
        Method::PATCH,
        "/api/v2/orgs/{org_id}/me",
        update_own_profile,
        RouteDoc::new("update_own_profile", "Edit your own profile in this org", TAG)
            .description("Any member may change their own committee and children here, and their account's names and phone (in every org they belong to; audited `user.profile_update`); role and status are not editable by oneself, the e-mail address changes with `POST /api/v2/me/email`. Send the `version` of your membership you read (`GET …/users/{your id}`), or `If-Match` with its `ETag`: without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
            .errors(&[ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::ValidationFailed]),
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

/// A member as the viewer may see them: their record (the member themself, the org's
/// admins) or their directory entry (other members: only what the org's directory
/// policy and the member's own choices show).
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberView {
    /// User id.
    pub user_id: Uuid,
    /// E-mail (`null` when hidden from you).
    pub email: Option<String>,
    /// Phone (`null` when none, or hidden from you).
    pub phone: Option<String>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Their role.
    pub role: RoleView,
    /// `active`, `invited` or `suspended`.
    pub status: &'static str,
    /// Committee, if any (`null` also when hidden from you).
    pub committee: Option<String>,
    /// Children and their grades (`null` when hidden from you).
    pub children: Option<Vec<ChildDto>>,
    /// End of the officer term (RFC 3339), if any.
    pub role_ends_at: Option<String>,
    /// Version, for updates.
    pub version: i64,
    /// `record` (yourself, or you are an admin of the org) or `directory` (another
    /// member's directory entry).
    pub view: &'static str,
    /// The fields hidden from you (`phone`, `email`, `committee`,
    /// `children_and_grades`), by the org's directory policy or the member's choice.
    pub hidden_fields: Vec<&'static str>,
    /// When the member last confirmed their details (RFC 3339; record only: `null` in
    /// the directory, or never confirmed).
    pub details_confirmed_at: Option<String>,
    /// The member's standing in the org's "confirm your details" cycle (record only):
    /// `confirmed`, `due`, `lapsed` (not in the directory until they confirm) or
    /// `no_cycle`; `null` in the directory.
    pub details_confirmation: Option<&'static str>,
}

fn status_str(s: MembershipStatus) -> &'static str {
    match s {
        MembershipStatus::Active => "active",
        MembershipStatus::Invited => "invited",
        MembershipStatus::Suspended => "suspended",
    }
}

pub(super) fn role_view(r: &RoleAssignment) -> RoleView {
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

/// The member's record.
pub(super) fn member_view(u: User, m: Membership) -> MemberView {
    shown_view(u, m, &Visibility::RECORD)
}

/// The member as `shown` lets the viewer see them (`tenancy::privacy::visibility`).
pub(super) fn shown_view(u: User, m: Membership, shown: &Visibility) -> MemberView {
    MemberView {
        user_id: u.id.as_uuid(),
        email: shown.email.then(|| u.email.to_string()),
        phone: u.phone.filter(|_| shown.phone),
        first_name: u.first_name.to_string(),
        last_name: u.last_name.to_string(),
        role: role_view(&m.role),
        status: status_str(m.status),
        committee: m.committee.filter(|_| shown.committee),
        children: shown
            .children_and_grades
            .then(|| m.children.into_iter().map(ChildDto::from).collect()),
        role_ends_at: m.role_ends_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        version: m.version,
        view: match shown.view {
            View::Record => "record",
            View::Directory => "directory",
        },
        hidden_fields: shown
            .hidden_fields()
            .into_iter()
            .map(DirectoryField::as_str)
            .collect(),
        details_confirmed_at: m
            .details_confirmed_at
            .filter(|_| shown.view == View::Record)
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        details_confirmation: None,
    }
}

/// The member's record view with their standing in the org's confirmation cycle
/// (under `policy`, today UTC).
fn with_confirmation(
    mut view: MemberView,
    policy: &DirectoryPolicy,
    (confirmed_at, joined_at): (Option<time::OffsetDateTime>, time::OffsetDateTime),
) -> MemberView {
    if view.view == "record" {
        view.details_confirmation = Some(
            policy
                .confirmation(
                    confirmed_at,
                    joined_at,
                    time::OffsetDateTime::now_utc().date(),
                )
                .as_str(),
        );
    }
    view
}

/// Whom the member directory is read for: the org's admins read the record, everyone
/// else (other members, API keys) the directory.
fn audience_of(member: &OrgMember) -> Audience {
    if member.is_admin() {
        Audience::Record
    } else {
        Audience::Directory
    }
}

/// A page of the directory as `member` may see it: each row through
/// `tenancy::privacy::visibility` under the policy and choices read with the page.
fn shaped_page(member: &OrgMember, page: MemberPage) -> Vec<MemberView> {
    let viewer = member.user_id().ok();
    let admin = member.is_admin();
    let shown: Vec<Visibility> = page
        .rows
        .iter()
        .map(|(u, _)| {
            visibility(
                Viewer::of(viewer, u.id, admin),
                &page.policy,
                &page.choices_of(u.id),
            )
        })
        .collect();
    let policy = page.policy;
    page.rows
        .into_iter()
        .zip(shown)
        .filter(|(_, shown)| shown.listed)
        .map(|((u, m), shown)| {
            let dates = (m.details_confirmed_at, m.joined_at);
            with_confirmation(shown_view(u, m, &shown), &policy, dates)
        })
        .collect()
}

/// A member's child (profile data).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChildDto {
    /// The child's name (1–100 characters).
    #[garde(length(chars, min = 1, max = 100))]
    pub name: String,
    /// Grade, e.g. `K` or `3` (up to 20 characters).
    #[garde(inner(length(chars, min = 1, max = 20)))]
    #[schemars(length(min = 1, max = 20))]
    #[serde(default)]
    pub grade: Option<String>,
}

impl From<Child> for ChildDto {
    fn from(c: Child) -> Self {
        Self {
            name: c.name,
            grade: c.grade,
        }
    }
}

impl From<ChildDto> for Child {
    fn from(c: ChildDto) -> Self {
        Self {
            name: c.name.trim().to_owned(),
            grade: c.grade.map(|g| g.trim().to_owned()),
        }
    }
}

/// Absent → no change; `null` → clear; a string → set (blank clears).
fn committee_change<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(Some(
        raw.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
    ))
}

/// Sort keys of the member list.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortDto {
    /// Last name, then first name.
    #[default]
    Name,
    /// E-mail.
    Email,
    /// Join date.
    Joined,
    /// Last sign-in (else account creation).
    LastActive,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderDto {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// Member status to filter by.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilterDto {
    /// Active.
    Active,
    /// Invited.
    Invited,
    /// Suspended.
    Suspended,
}

/// Filters, sort and paging of the member list.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct MemberListQuery {
    /// The `next_cursor` of the previous page (for the same sort and order).
    #[garde(inner(length(chars, max = 2048)))]
    #[schemars(length(max = 2048))]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = 200)))]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// Sort key (default `name`).
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

/// Filters of the member list and search.
#[derive(Debug, Default, Deserialize, JsonSchema, Validate)]
pub struct MemberFilterQuery {
    /// Only members with this role: a built-in name or a custom role's id.
    #[garde(inner(length(chars, max = 64)))]
    #[schemars(length(max = 64))]
    pub role: Option<String>,
    /// Only members with this status.
    #[garde(skip)]
    pub status: Option<StatusFilterDto>,
    /// Only members of this committee (case-insensitive).
    #[garde(inner(length(chars, min = 1, max = 100)))]
    #[schemars(length(min = 1, max = 100))]
    pub committee: Option<String>,
    /// Joined at or after (RFC 3339).
    #[garde(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub joined_from: Option<time::OffsetDateTime>,
    /// Joined before (RFC 3339).
    #[garde(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub joined_to: Option<time::OffsetDateTime>,
}

impl MemberFilterQuery {
    fn to_domain(&self) -> Result<MemberFilter, ApiError> {
        let role = match self.role.as_deref() {
            None => None,
            Some(r) => Some(match Uuid::parse_str(r) {
                Ok(id) => RoleFilter::Custom(RoleId(id)),
                Err(_) => {
                    RoleFilter::Builtin(permissions::BuiltinRole::parse(r).map_err(|_| {
                        ApiError::validation(vec![FieldError {
                            field: "role".into(),
                            code: "unknown".into(),
                            message: "a built-in role name or a custom role id".into(),
                        }])
                    })?)
                }
            }),
        };
        Ok(MemberFilter {
            role,
            status: self.status.map(|s| match s {
                StatusFilterDto::Active => MembershipStatus::Active,
                StatusFilterDto::Invited => MembershipStatus::Invited,
                StatusFilterDto::Suspended => MembershipStatus::Suspended,
            }),
            committee: self.committee.clone(),
            joined_from: self.joined_from,
            joined_to: self.joined_to,
        })
    }
}

/// Whether the request carries a consistency token: it then reads the database (the
/// primary), not the directory cache, whose other instances may not have applied the
/// writer's invalidation yet.
fn wants_own_writes() -> bool {
    crate::http::request_context::consistency_token().is_some()
}

fn bad_cursor() -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "cursor".into(),
        code: "invalid_value".into(),
        message: "the cursor is invalid or belongs to another sort order".into(),
    }])
}

async fn list_members(
    state: State,
    member: OrgMember,
    Query(q): Query<MemberListQuery>,
) -> Result<Paged<MemberView>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let sort = match q.sort {
        SortDto::Name => MemberSort::Name,
        SortDto::Email => MemberSort::Email,
        SortDto::Joined => MemberSort::Joined,
        SortDto::LastActive => MemberSort::LastActive,
    };
    let descending = matches!(q.order, OrderDto::Desc);
    let audience = audience_of(&member);
    if !audience.may_sort_by(sort) {
        return Err(email_sort_refused());
    }
    let after = q
        .cursor
        .as_deref()
        .map(|c| MemberCursor::decode(c, sort, descending).map_err(|_| bad_cursor()))
        .transpose()?;
    let req = MemberListRequest {
        org: member.org_id(),
        filter: q.filter.to_domain()?,
        sort,
        descending,
        after,
        limit,
        audience,
    };
    let page = if wants_own_writes() {
        state.directory_cache.uncached().list(&req).await
    } else {
        state.directory_cache.list(&req).await
    }?;
    let next_cursor = if page.more {
        page.rows
            .last()
            .map(|(u, m)| MemberCursor::after(sort, descending, u, m).encode())
    } else {
        None
    };
    Ok(Paged {
        items: shaped_page(&member, page),
        pagination: Pagination {
            limit,
            next_cursor,
            total: None,
        },
    })
}

/// A member search.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct MemberSearchQuery {
    /// What to look for (1–100 characters, up to 12 words).
    #[garde(length(chars, min = 1, max = 100))]
    pub q: String,
    /// The `next_cursor` of the previous page.
    #[garde(inner(length(chars, max = 12)))]
    #[schemars(length(max = 12))]
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[garde(inner(range(min = 1, max = 100)))]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    #[garde(dive)]
    #[serde(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub filter: MemberFilterQuery,
}

/// Where a search hit matched: a field of the member and the matched character ranges.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HighlightDto {
    /// The field: `first_name`, `last_name`, `email` or `committee`.
    pub field: String,
    /// Half-open `[start, end)` ranges, in characters (Unicode scalar values) of the
    /// field's value as shown.
    pub ranges: Vec<[usize; 2]>,
}

/// A member found by a search, with where they matched.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberHitView {
    #[serde(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub member: MemberView,
    /// The matched parts of the shown fields (empty when the match was on a field the
    /// index does not hold: phone, children's names, or inside a word).
    pub highlights: Vec<HighlightDto>,
}

/// A facet value and how many results have it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FacetCountDto {
    /// The value (a role's name, a status, a committee as written).
    pub value: String,
    /// How many results (all pages) have it.
    pub count: u64,
}

/// Facet counts over every result of the search (all pages), most frequent first.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct SearchFacetsDto {
    /// By role (built-in role name or custom role name).
    pub role: Vec<FacetCountDto>,
    /// By status.
    pub status: Vec<FacetCountDto>,
    /// By committee (only committees shown to you).
    pub committee: Vec<FacetCountDto>,
}

/// A query word without an exact or prefix match, and the closest word of the directory.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SuggestionDto {
    /// The query word (folded).
    pub word: String,
    /// The suggested word (folded).
    pub suggestion: String,
    /// Edits between them.
    pub distance: u32,
}

/// About a search's whole result: "did you mean" and facet counts.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct SearchMetaDto {
    /// The query with every suggestion applied, when a word had no exact or prefix match
    /// (only words of fields shown to you, of members you can see).
    pub did_you_mean: Option<String>,
    /// The suggestion per query word.
    pub suggestions: Vec<SuggestionDto>,
    /// Counts by role, status and committee.
    pub facets: SearchFacetsDto,
}

fn facet_counts(counts: std::collections::HashMap<String, u64>) -> Vec<FacetCountDto> {
    let mut out: Vec<FacetCountDto> = counts
        .into_iter()
        .map(|(value, count)| FacetCountDto { value, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

/// Facet counts as the index counted them (already most frequent first).
fn index_facet_counts(counts: &[(String, usize)]) -> Vec<FacetCountDto> {
    counts
        .iter()
        .map(|(value, n)| FacetCountDto {
            value: value.clone(),
            count: u64::try_from(*n).unwrap_or(u64::MAX),
        })
        .collect()
}

/// Facet counts of `ids` (the admitted results) as the index holds them: a committee
/// counts only where the audience is shown it.
fn facets_of(
    index: &member_search::MemberIndex,
    ids: &[Uuid],
    audience: Audience,
) -> SearchFacetsDto {
    let mut role = std::collections::HashMap::new();
    let mut status = std::collections::HashMap::new();
    let mut committee = std::collections::HashMap::new();
    for id in ids {
        let Some(m) = index.get(*id) else { continue };
        *role.entry(m.role.clone()).or_default() += 1;
        *status.entry(m.status.clone()).or_default() += 1;
        let shown =
            audience == Audience::Record || !m.hidden.contains(member_search::Field::Committee);
        if let (true, Some(c)) = (shown, &m.committee) {
            *committee.entry(c.clone()).or_default() += 1;
        }
    }
    SearchFacetsDto {
        role: facet_counts(role),
        status: facet_counts(status),
        committee: facet_counts(committee),
    }
}

fn field_name(field: member_search::Field) -> &'static str {
    match field {
        member_search::Field::FirstName => "first_name",
        member_search::Field::LastName => "last_name",
        member_search::Field::Email => "email",
        member_search::Field::Committee => "committee",
    }
}

fn invalid_q(message: String) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "q".into(),
        code: "invalid_value".into(),
        message,
    }])
}

async fn search_members(
    state: State,
    member: OrgMember,
    Query(q): Query<MemberSearchQuery>,
) -> Result<SearchPaged<MemberHitView, SearchMetaDto>, ApiError> {
    let limit = q.limit.unwrap_or(20);
    let offset = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<u32>().map_err(|_| bad_cursor())?,
    };
    let filter = q.filter.to_domain()?;
    let audience = audience_of(&member);
    // The in-process search (crate::search_index); a request that must see its own
    // writes gets one built now from the primary.
    let search = if wants_own_writes() {
        state.search_indexes.fresh(member.org_id()).await?
    } else {
        state.search_indexes.get(member.org_id()).await?
    };
    // Without list filters the index's ranking is already the audience's (it applied
    // the directory's rules): the page comes from the search's stored rows, with no
    // database round trip. With filters, every ranked id is checked by the database.
    let unfiltered = filter == MemberFilter::default();
    let page_end = offset.saturating_add(limit) as usize;
    let request = member_search::SearchRequest {
        text: &q.q,
        visible_fields: member_search::FieldSet::ALL,
        apply_member_choices: audience == Audience::Directory,
        limit: if unfiltered {
            page_end
        } else {
            tenancy_store::RANKED_CAP
        },
    };
    let (found, unfiltered_page) = {
        let search = search
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = search
            .index()
            .search(&request)
            .map_err(|e| invalid_q(e.to_string()))?;
        let page = unfiltered.then(|| {
            let start = (offset as usize).min(found.hits.len());
            let ids: Vec<Uuid> = found.hits[start..].iter().map(|h| h.id).collect();
            search.page(audience, &ids, found.total > page_end)
        });
        (found, page)
    };
    let suggestions: Vec<SuggestionDto> = found
        .suggestions
        .iter()
        .map(|s| SuggestionDto {
            word: s.word.clone(),
            suggestion: s.suggestion.clone(),
            distance: u32::try_from(s.distance).unwrap_or(u32::MAX),
        })
        .collect();
    if found.hits.is_empty() {
        // Nothing in the fields the index holds: the SQL search also matches phone
        // numbers, children's names and inside words — unless the org's documents,
        // scanned here, show it would find nothing either.
        let meta = SearchMetaDto {
            did_you_mean: found.did_you_mean,
            suggestions,
            facets: SearchFacetsDto::default(),
        };
        let query = SearchQuery::parse(&q.q).ok();
        let worth_asking = query.as_ref().is_some_and(|query| {
            search
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .database_could_match(query)
        });
        return match query {
            Some(query) if worth_asking => {
                sql_search(&state, &member, query, filter, (offset, limit), meta).await
            }
            _ => Ok(nothing_found(limit, meta)),
        };
    }
    let (page, total, facets) = if let Some(page) = unfiltered_page {
        let f = &found.facets;
        let facets = SearchFacetsDto {
            role: index_facet_counts(&f.role),
            status: index_facet_counts(&f.status),
            committee: index_facet_counts(&f.committee),
        };
        (page, found.total, facets)
    } else {
        let ranked: Vec<Uuid> = found.hits.iter().map(|h| h.id).collect();
        let (page, admitted) = state
            .directory
            .page_of_ranked(member.org_id(), &filter, audience, &ranked, offset, limit)
            .await?;
        let facets = {
            let search = search
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            facets_of(search.index(), &admitted, audience)
        };
        (page, admitted.len(), facets)
    };
    let next_cursor = page.more.then(|| (offset + limit).to_string());
    let matches: std::collections::HashMap<Uuid, &Vec<member_search::FieldMatch>> =
        found.hits.iter().map(|h| (h.id, &h.matches)).collect();
    let items = shaped_page(&member, page)
        .into_iter()
        .map(|view| {
            let highlights = matches
                .get(&view.user_id)
                .map(|ms| {
                    ms.iter()
                        .map(|m| HighlightDto {
                            field: field_name(m.field).to_owned(),
                            ranges: m.ranges.iter().map(|&(a, b)| [a, b]).collect(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            MemberHitView {
                member: view,
                highlights,
            }
        })
        .collect();
    let search = SearchMetaDto {
        did_you_mean: found.did_you_mean,
        suggestions,
        facets,
    };
    Ok(SearchPaged {
        items,
        pagination: Pagination {
            limit,
            next_cursor,
            total: Some(u64::try_from(total).unwrap_or(u64::MAX)),
        },
        search,
    })
}

/// An empty search answer: SQL cannot search the text (the index accepted it, in any
/// script), or no member's document matches it.
fn nothing_found(limit: u32, search: SearchMetaDto) -> SearchPaged<MemberHitView, SearchMetaDto> {
    SearchPaged {
        items: Vec::new(),
        pagination: Pagination {
            limit,
            next_cursor: None,
            total: Some(0),
        },
        search,
    }
}

/// The SQL search (trigram candidates ranked by `tenancy::search`): for what the index
/// does not hold. `search` (the index's suggestions) goes in `meta.search`.
async fn sql_search(
    state: &State,
    member: &OrgMember,
    query: SearchQuery,
    filter: MemberFilter,
    (offset, limit): (u32, u32),
    search: SearchMetaDto,
) -> Result<SearchPaged<MemberHitView, SearchMetaDto>, ApiError> {
    let req = MemberSearchRequest {
        org: member.org_id(),
        query,
        filter,
        offset,
        limit,
        audience: audience_of(member),
    };
    // From the database, uncached (`directory_cache` says why); like any lag-tolerant
    // read it may be served by the replica, and a consistency token sends it to the primary.
    let page = state.directory.search(&req).await?;
    let next_cursor = page.more.then(|| (offset + limit).to_string());
    Ok(SearchPaged {
        items: shaped_page(member, page)
            .into_iter()
            .map(|member| MemberHitView {
                member,
                highlights: Vec::new(),
            })
            .collect(),
        pagination: Pagination {
            limit,
            next_cursor,
            total: None,
        },
        search,
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
) -> Result<Tagged<MemberView>, ApiError> {
    read_member(&state, &member, UserId::from_uuid(p.user_id), true)
        .await
        .map(tagged)
}

/// A member with their `ETag`.
fn tagged(Reply(view): Reply<MemberView>) -> Tagged<MemberView> {
    Tagged {
        version: view.version,
        data: view,
    }
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
    /// The version you read (or send `If-Match` with the `ETag`); required.
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
    /// Committee or department (up to 100 characters); `null` clears it.
    #[garde(inner(inner(length(chars, max = 100))))]
    #[serde(default, deserialize_with = "committee_change")]
    #[schemars(with = "Option<String>")]
    pub committee: Option<Option<String>>,
    /// The member's children (replaces the list; at most 20).
    #[garde(dive, length(max = 20))]
    pub children: Option<Vec<ChildDto>>,
    /// New given name (the member's account: see who may change it above).
    #[garde(inner(custom(super::common::domain_rule(tenancy::PersonName::parse))))]
    pub first_name: Option<String>,
    /// New family name (the member's account).
    #[garde(inner(custom(super::common::domain_rule(tenancy::PersonName::parse))))]
    pub last_name: Option<String>,
    /// New phone (up to 40 characters; the member's account); `null` clears it.
    #[garde(inner(inner(length(chars, max = 40))))]
    #[serde(default, deserialize_with = "committee_change")]
    #[schemars(with = "Option<String>")]
    pub phone: Option<Option<String>>,
    /// New sign-in address of another member (admins; see above); unique: 409 when
    /// another account has it.
    #[garde(inner(
        length(max = 254),
        custom(super::common::domain_rule(tenancy::Email::parse))
    ))]
    pub email: Option<String>,
}

/// Changes to your own profile in an org.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateOwnProfileBody {
    /// The version of your membership you read (or `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// Committee or department (up to 100 characters); `null` clears it.
    #[garde(inner(inner(length(chars, max = 100))))]
    #[serde(default, deserialize_with = "committee_change")]
    #[schemars(with = "Option<String>")]
    pub committee: Option<Option<String>>,
    /// Your children (replaces the list; at most 20).
    #[garde(dive, length(max = 20))]
    pub children: Option<Vec<ChildDto>>,
    /// Your new given name (your account's, in every org you belong to).
    #[garde(inner(custom(super::common::domain_rule(tenancy::PersonName::parse))))]
    pub first_name: Option<String>,
    /// Your new family name.
    #[garde(inner(custom(super::common::domain_rule(tenancy::PersonName::parse))))]
    pub last_name: Option<String>,
    /// Your new phone (up to 40 characters); `null` clears it.
    #[garde(inner(inner(length(chars, max = 40))))]
    #[serde(default, deserialize_with = "committee_change")]
    #[schemars(with = "Option<String>")]
    pub phone: Option<Option<String>>,
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

/// The account changes of a member update, parsed (garde checked them already).
fn account_changes(
    first_name: Option<&String>,
    last_name: Option<&String>,
    phone: Option<&Option<String>>,
    email: Option<&String>,
) -> Result<tenancy::ports::AccountChanges, ApiError> {
    let invalid = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::validation(vec![FieldError {
            field: field.into(),
            code: "invalid".into(),
            message: e.to_string(),
        }])
    };
    let name = |field: &str, raw: Option<&String>| {
        raw.map(|n| tenancy::PersonName::parse(n))
            .transpose()
            .map_err(|e| invalid(field, &e))
    };
    Ok(tenancy::ports::AccountChanges {
        first_name: name("first_name", first_name)?,
        last_name: name("last_name", last_name)?,
        phone: phone.cloned(),
        email: email
            .map(|e| tenancy::Email::parse(e))
            .transpose()
            .map_err(|e| invalid("email", &e))?,
    })
}

pub(super) fn children(list: Option<Vec<ChildDto>>) -> Option<Vec<Child>> {
    list.map(|cs| cs.into_iter().map(Child::from).collect())
}

async fn update_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
    if_match: IfMatch,
    Json(body): Json<UpdateMemberBody>,
) -> Result<Tagged<MemberView>, ApiError> {
    let target = UserId::from_uuid(p.user_id);
    let version = super::common::required_version(body.version, if_match)?;
    let account = account_changes(
        body.first_name.as_ref(),
        body.last_name.as_ref(),
        body.phone.as_ref(),
        body.email.as_ref(),
    )?;
    let changed = state
        .orgs
        .change_member_answered(
            &member.audit_context(),
            ChangeMemberRequest {
                org_id: member.org_id(),
                actor: member.user_id()?,
                target,
                expected_version: Some(version),
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
                committee: body.committee,
                children: children(body.children),
                account,
            },
        )
        .await?;
    answer_change(&state, &member, changed).await.map(tagged)
}

async fn update_own_profile(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<UpdateOwnProfileBody>,
) -> Result<Reply<MemberView>, ApiError> {
    let me = member.user_id()?;
    let version = super::common::required_version(body.version, if_match)?;
    let account = account_changes(
        body.first_name.as_ref(),
        body.last_name.as_ref(),
        body.phone.as_ref(),
        None,
    )?;
    let changed = state
        .orgs
        .change_member_answered(
            &member.audit_context(),
            ChangeMemberRequest {
                org_id: member.org_id(),
                actor: me,
                target: me,
                expected_version: Some(version),
                role: None,
                status: None,
                role_ends_at: None,
                committee: body.committee,
                children: children(body.children),
                account,
            },
        )
        .await?;
    answer_change(&state, &member, changed).await
}

/// The answer to a member change: the member as the change's own transaction left
/// them, as `viewer` may see them.
async fn answer_change(
    state: &State,
    viewer: &OrgMember,
    changed: ChangedMember,
) -> Result<Reply<MemberView>, ApiError> {
    let who = viewer_of(state, viewer, changed.user.id, false).await?;
    Ok(Reply(member_as_seen(
        who,
        changed.user,
        changed.membership,
        &changed.policy,
        &changed.choices,
    )))
}

/// A member's view as `who` may see it under the org's `policy` and the member's
/// `choices`, with their confirmation state.
fn member_as_seen(
    who: Viewer,
    u: User,
    m: Membership,
    policy: &DirectoryPolicy,
    choices: &PrivacyChoices,
) -> MemberView {
    let shown = visibility(who, policy, choices);
    let dates = (m.details_confirmed_at, m.joined_at);
    with_confirmation(shown_view(u, m, &shown), policy, dates)
}

/// One member as `viewer` may see them (404 if not a member). A read (`read`: not the
/// answer to a write) of someone else's record by an admin is recorded as data-access
/// activity before it is answered; another member reading an unlisted member gets 404.
async fn read_member(
    state: &State,
    viewer: &OrgMember,
    user: UserId,
    read: bool,
) -> Result<Reply<MemberView>, ApiError> {
    let org = viewer.org_id();
    let found = if wants_own_writes() {
        state.orgs.get_member(org, user).await
    } else {
        state
            .directory_cache
            .profile(org, user, state.orgs.get_member(org, user))
            .await
    };
    let (u, m) = found?.ok_or_else(|| ApiError::not_found("no such member"))?;
    let who = viewer_of(state, viewer, user, read).await?;
    let (policy, choices) = state
        .privacy
        .choices(org, user)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    // Another member finds only members in the directory: listed, and not lapsed in
    // the org's confirmation cycle.
    if read
        && who == Viewer::Member
        && !in_directory(
            &policy,
            &choices,
            m.details_confirmed_at,
            m.joined_at,
            time::OffsetDateTime::now_utc().date(),
        )
    {
        return Err(ApiError::not_found("no such member"));
    }
    Ok(Reply(member_as_seen(who, u, m, &policy, &choices)))
}

/// How long a bulk-removal confirmation token is valid.
const CONFIRMATION_TTL_SECS: i64 = 300;

/// Member ids of a bulk operation: 1–500, no duplicates.
fn distinct_ids(ids: &[Uuid], _ctx: &()) -> garde::Result {
    let unique: std::collections::HashSet<&Uuid> = ids.iter().collect();
    if unique.len() == ids.len() {
        Ok(())
    } else {
        Err(garde::Error::new("the ids must be distinct"))
    }
}

/// A bulk change of role and/or status.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdateBody {
    /// The members (1–500 distinct user ids).
    #[garde(length(min = 1, max = 500), custom(distinct_ids))]
    pub user_ids: Vec<Uuid>,
    /// New role for all of them.
    #[garde(skip)]
    pub role: Option<RoleChoiceDto>,
    /// New status for all of them.
    #[garde(skip)]
    pub status: Option<StatusDto>,
}

/// A bulk removal.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BulkRemoveBody {
    /// The members (1–500 distinct user ids).
    #[garde(length(min = 1, max = 500), custom(distinct_ids))]
    pub user_ids: Vec<Uuid>,
    /// The token from the first step, for exactly these ids.
    #[garde(inner(length(chars, max = 200)))]
    #[schemars(length(max = 200))]
    pub confirmation_token: Option<String>,
}

/// An item's failure.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ItemError {
    /// The error code a single request would have answered with.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// The outcome for one member of a bulk operation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkItem {
    /// The member.
    pub user_id: Uuid,
    /// Whether it was applied.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// The outcome of a bulk operation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkOutcome {
    /// `done`, or `confirmation_required` (nothing was changed).
    pub status: &'static str,
    /// Items applied.
    pub succeeded: usize,
    /// Items refused.
    pub failed: usize,
    /// Per member, in request order (empty until confirmed).
    pub results: Vec<BulkItem>,
    /// The token to send back to confirm (when `confirmation_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_token: Option<String>,
    /// Until when the token is valid (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_expires_at: Option<String>,
}

impl BulkOutcome {
    fn done(results: Vec<BulkItem>) -> Self {
        let succeeded = results.iter().filter(|r| r.ok).count();
        Self {
            status: "done",
            succeeded,
            failed: results.len() - succeeded,
            results,
            confirmation_token: None,
            confirmation_expires_at: None,
        }
    }
}

fn item(user_id: Uuid, result: Result<(), ApiError>) -> BulkItem {
    match result {
        Ok(()) => BulkItem {
            user_id,
            ok: true,
            error: None,
        },
        Err(e) => BulkItem {
            user_id,
            ok: false,
            error: Some(ItemError {
                code: e.code,
                message: e.message,
            }),
        },
    }
}

async fn bulk_update(
    state: State,
    member: OrgMember,
    Json(body): Json<BulkUpdateBody>,
) -> Result<Reply<BulkOutcome>, ApiError> {
    if body.role.is_none() && body.status.is_none() {
        return Err(ApiError::validation(vec![FieldError {
            field: "role".into(),
            code: "required".into(),
            message: "give a role, a status or both".into(),
        }]));
    }
    let actor = member.user_id()?;
    let ctx = member.audit_context();
    let role = body.role.map(|r| match r {
        RoleChoiceDto::Builtin(b) => RoleChoice::Builtin(b.into()),
        RoleChoiceDto::Custom { custom_role_id } => RoleChoice::Custom(RoleId(custom_role_id)),
    });
    let status = body.status.map(|s| match s {
        StatusDto::Active => MembershipStatus::Active,
        StatusDto::Suspended => MembershipStatus::Suspended,
    });
    let mut results = Vec::with_capacity(body.user_ids.len());
    let mut changed = Vec::with_capacity(body.user_ids.len());
    for id in body.user_ids {
        let outcome = state
            .orgs
            .change_member(
                &ctx,
                ChangeMemberRequest {
                    org_id: member.org_id(),
                    actor,
                    target: UserId::from_uuid(id),
                    expected_version: None,
                    role: role.clone(),
                    status,
                    role_ends_at: None,
                    committee: None,
                    children: None,
                    account: tenancy::ports::AccountChanges::default(),
                },
            )
            .await
            .map(|_| ())
            .map_err(ApiError::from);
        if outcome.is_ok() {
            changed.push(id);
        }
        results.push(item(id, outcome));
    }
    Ok(Reply(BulkOutcome::done(results)))
}

/// What a bulk-removal token confirms: the org, the actor, and each member (sorted by
/// id) with the version of their membership as it is now (`-`: not a member). Removing
/// a member moves their membership away and restoring one raises its version, so a
/// token stops matching once used: it confirms exactly the state the admin saw, once.
async fn removal_subject(
    state: &State,
    org: tenancy::OrgId,
    actor: Uuid,
    ids: &[Uuid],
) -> Result<String, ApiError> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    let mut parts = Vec::with_capacity(sorted.len());
    for id in sorted {
        let version = state
            .orgs
            .get_membership(org, UserId::from_uuid(id))
            .await?
            .map_or_else(|| "-".to_owned(), |m| m.version.to_string());
        parts.push(format!("{id}:{version}"));
    }
    Ok(format!("bulk-remove|{org}|{actor}|{}", parts.join(",")))
}

async fn bulk_remove(
    state: State,
    member: OrgMember,
    Json(body): Json<BulkRemoveBody>,
) -> Result<Reply<BulkOutcome>, ApiError> {
    let actor = member.user_id()?;
    let org = member.org_id();
    let subject = removal_subject(&state, org, actor.as_uuid(), &body.user_ids).await?;
    let now = time::OffsetDateTime::now_utc();
    let Some(token) = body.confirmation_token else {
        let expires = now + time::Duration::seconds(CONFIRMATION_TTL_SECS);
        return Ok(Reply(BulkOutcome {
            status: "confirmation_required",
            succeeded: 0,
            failed: 0,
            results: Vec::new(),
            confirmation_token: Some(
                state
                    .confirmations
                    .issue(&subject, expires.unix_timestamp()),
            ),
            confirmation_expires_at: expires
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
        }));
    };
    if !state
        .confirmations
        .verify(&token, &subject, now.unix_timestamp())
    {
        return Err(ApiError::validation(vec![FieldError {
            field: "confirmation_token".into(),
            code: "invalid_value".into(),
            message: "the token is invalid, expired, already used, or was issued for other \
                      members or before one of them changed"
                .into(),
        }]));
    }
    let ctx = member.audit_context();
    let mut results = Vec::with_capacity(body.user_ids.len());
    let mut changed = Vec::with_capacity(body.user_ids.len());
    for id in body.user_ids {
        let outcome = state
            .orgs
            .remove_member(&ctx, org, actor, UserId::from_uuid(id))
            .await
            .map_err(ApiError::from);
        if outcome.is_ok() {
            changed.push(id);
        }
        results.push(item(id, outcome));
    }
    Ok(Reply(BulkOutcome::done(results)))
}

/// A removed member.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RemovedMemberView {
    /// The member as they were when removed.
    #[serde(flatten)]
    pub member: MemberView,
    /// When they were removed (RFC 3339).
    pub removed_at: String,
    /// Who removed them.
    pub removed_by: Option<Uuid>,
}

async fn list_removed(
    state: State,
    member: OrgMember,
    Query(q): Query<PageQuery>,
) -> Result<Paged<RemovedMemberView>, ApiError> {
    let limit = q.limit();
    let rows = state
        .orgs
        .list_removed(
            member.org_id(),
            q.cursor.map(UserId::from_uuid),
            u64::from(limit) + 1,
        )
        .await?;
    Ok(
        Paged::from_overfetch(rows, limit, |(u, _)| u.id, None).map(|(u, r)| RemovedMemberView {
            member: member_view(u, r.membership),
            removed_at: r
                .removed_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            removed_by: r.removed_by.map(|u| u.as_uuid()),
        }),
    )
}

async fn restore_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
) -> Result<Reply<MemberView>, ApiError> {
    let target = UserId::from_uuid(p.user_id);
    state
        .orgs
        .restore_member(
            &member.audit_context(),
            member.org_id(),
            member.user_id()?,
            target,
        )
        .await?;
    read_member(&state, &member, target, false).await
}

async fn remove_member(
    state: State,
    member: OrgMember,
    Path(p): Path<MemberPath>,
) -> Result<NoContent, ApiError> {
    state
        .orgs
        .remove_member(
            &member.audit_context(),
            member.org_id(),
            member.user_id()?,
            UserId::from_uuid(p.user_id),
        )
        .await?;
    Ok(NoContent)
}

async fn leave_org(state: State, member: OrgMember) -> Result<NoContent, ApiError> {
    let me = member.user_id()?;
    state
        .orgs
        .remove_member(&member.audit_context(), member.org_id(), me, me)
        .await?;
    Ok(NoContent)
}

/// 422: ordering the directory by e-mail would reveal hidden addresses.
pub(super) fn email_sort_refused() -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "sort".into(),
        code: "not_allowed".into(),
        message: "sorting by e-mail is for the org's admins (addresses may be hidden from you)"
            .into(),
    }])
}

/// What `member` (the viewer) is to `subject`, and records a read of the record by an
/// admin as data-access activity (one insert, before the record is returned).
pub(super) async fn viewer_of(
    state: &State,
    member: &OrgMember,
    subject: UserId,
    log_record_read: bool,
) -> Result<Viewer, ApiError> {
    let viewer_id = member.user_id().ok();
    let viewer = Viewer::of(viewer_id, subject, member.is_admin());
    if log_record_read
        && viewer == Viewer::Admin
        && let Some(accessor) = viewer_id
    {
        state
            .privacy
            .record_access(member.org_id(), accessor, subject, "member.record")
            .await?;
    }
    Ok(viewer)
}
