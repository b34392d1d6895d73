//! Directory privacy: what other members see of a member, and what the org's
//! administrators work with.
//!
//! A member is shown in two ways:
//! - the **record**: everything the org holds about them (their account's e-mail and
//!   phone, committee, children and grades, role, term) — seen by the org's admins and
//!   by the member themself;
//! - the **directory**: what *other* members see — their name and role, and of the
//!   fields below only those the org's [`DirectoryPolicy`] shows **and** the member did
//!   not hide ([`PrivacyChoices`]).
//!
//! The org decides which fields its directory shows and whether members are listed
//! unless they opt out ([`Listing::OptOut`]) or only once they opt in
//! ([`Listing::OptIn`]); each member decides per field. An admin setting can only hide
//! more: a field a member hid is never shown in the directory, whatever the policy
//! says ([`visibility`] is the one place this is decided).
//!
//! The same policy carries two rules about what the org *holds*, not only shows
//! (issue #17, "Retention"):
//! - **children's data** can be switched off for the org entirely
//!   ([`DirectoryPolicy::children_data`]): no path stores children or grades then
//!   ([`DirectoryPolicy::admit_children`] refuses a write that sends some,
//!   [`DirectoryPolicy::keep_children`] drops those a write did not send, e.g. of a
//!   restored membership), none is shown, and switching it off deletes what was stored;
//! - the yearly **"confirm your details"** cycle ([`ConfirmationCycle`]): once its
//!   `confirm_by` date has passed, members who have not confirmed since the cycle
//!   started drop out of the directory ([`in_directory`]); the org's admins still see
//!   their records, and every member sees their own.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use std::future::Future;

use crate::UserId;
use crate::ports::{AuditContext, StorageFailure};

/// A field of a member that the directory may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryField {
    /// The account's phone number.
    Phone,
    /// The account's e-mail address.
    Email,
    /// The member's committee in the org.
    Committee,
    /// The member's children and their grades.
    ChildrenAndGrades,
}

impl DirectoryField {
    /// Every field, in the order the API lists them.
    pub const ALL: [Self; 4] = [
        Self::Phone,
        Self::Email,
        Self::Committee,
        Self::ChildrenAndGrades,
    ];

    /// The API name (`phone`, `email`, `committee`, `children_and_grades`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Committee => "committee",
            Self::ChildrenAndGrades => "children_and_grades",
        }
    }
}

/// Whether members are in the directory unless they opt out, or only once they opt in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    /// Listed (and each field the policy shows, shown) unless the member says no.
    OptOut,
    /// Not listed (and no field shown) until the member says yes.
    OptIn,
}

impl Listing {
    /// The API name (`opt_out`, `opt_in`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OptOut => "opt_out",
            Self::OptIn => "opt_in",
        }
    }

    /// Parses the API name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::OptOut, Self::OptIn]
            .into_iter()
            .find(|l| l.as_str() == s)
    }

    /// What a member who made no choice (for their listing or a field) has chosen.
    #[must_use]
    pub const fn default_choice(self) -> Choice {
        match self {
            Self::OptOut => Choice::Members,
            Self::OptIn => Choice::Hidden,
        }
    }
}

/// A member's choice for their listing or one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Not shown to other members (admins still see the record).
    Hidden,
    /// Shown to the org's members (if the org's policy shows the field).
    Members,
}

impl Choice {
    /// The API and storage name (`hidden`, `members`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::Members => "members",
        }
    }

    /// Parses the API and storage name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Hidden, Self::Members]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// An org's directory policy: which fields its directory shows, and how members are
/// listed. Versioned: each change raises `version`, which is also the version of the
/// privacy notice members see (what they chose under is recorded with their choice).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirectoryPolicy {
    /// Whether the directory may show phone numbers.
    pub phone: bool,
    /// Whether the directory may show e-mail addresses.
    pub email: bool,
    /// Whether the directory may show committees.
    pub committee: bool,
    /// Whether the directory may show children and their grades.
    pub children_and_grades: bool,
    /// Opt-out or opt-in listing.
    pub listing: Listing,
    /// Whether the org keeps children's names and grades at all. Off: no path stores
    /// them, the directory and records show none, and switching it off deletes those
    /// stored.
    #[serde(default = "yes")]
    pub children_data: bool,
    /// The yearly "confirm your details" cycle (`None`: the org runs none).
    #[serde(default)]
    pub confirm_cycle: Option<ConfirmationCycle>,
    /// 0 until the org first sets its policy (the defaults apply), then 1, 2, …
    pub version: i64,
    /// When it was last changed (`None`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

const fn yes() -> bool {
    true
}

/// An org's "confirm your details" cycle: from `starts_on` members confirm that their
/// details are current; once `confirm_by` has passed, those who have not confirmed (or
/// joined) since `starts_on` drop out of the directory until they do. Days are UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfirmationCycle {
    /// The first day of the cycle: confirmations from this day on count.
    pub starts_on: Date,
    /// The last day to confirm: from the day after, unconfirmed members are not listed.
    pub confirm_by: Date,
}

/// A cycle whose deadline comes before its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("confirm_by ({confirm_by}) must not be before starts_on ({starts_on})")]
pub struct BadCycle {
    /// The start given.
    pub starts_on: Date,
    /// The deadline given.
    pub confirm_by: Date,
}

impl ConfirmationCycle {
    /// A cycle from `starts_on` to `confirm_by` (inclusive).
    ///
    /// # Errors
    /// [`BadCycle`] when `confirm_by` is before `starts_on`.
    pub fn new(starts_on: Date, confirm_by: Date) -> Result<Self, BadCycle> {
        if confirm_by < starts_on {
            return Err(BadCycle {
                starts_on,
                confirm_by,
            });
        }
        Ok(Self {
            starts_on,
            confirm_by,
        })
    }

    /// The instant the cycle starts (midnight UTC of `starts_on`): a confirmation (or a
    /// join) at or after it counts for this cycle.
    #[must_use]
    pub fn start(&self) -> OffsetDateTime {
        self.starts_on.midnight().assume_utc()
    }

    /// Whether the deadline has passed on `today` (the day after `confirm_by` on).
    #[must_use]
    pub fn deadline_passed(&self, today: Date) -> bool {
        today > self.confirm_by
    }

    /// Whether a member who last confirmed at `confirmed_at` and joined at `joined_at`
    /// has confirmed for this cycle (joining counts: the details were just given).
    #[must_use]
    pub fn confirmed(
        &self,
        confirmed_at: Option<OffsetDateTime>,
        joined_at: OffsetDateTime,
    ) -> bool {
        let start = self.start();
        joined_at >= start || confirmed_at.is_some_and(|t| t >= start)
    }
}

/// Whether a member's details are confirmed for the org's current cycle, as the
/// member and the org's admins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationStatus {
    /// The org runs no cycle.
    NoCycle,
    /// Confirmed (or joined) since the cycle started.
    Confirmed,
    /// Not yet, and the deadline has not passed: still listed.
    Due,
    /// Not confirmed and the deadline has passed: not in the directory.
    Lapsed,
}

impl ConfirmationStatus {
    /// The API name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCycle => "no_cycle",
            Self::Confirmed => "confirmed",
            Self::Due => "due",
            Self::Lapsed => "lapsed",
        }
    }
}

/// Children sent on a write while the org keeps no children's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this organization does not keep children's data (its directory policy has children_data off): send no children"
)]
pub struct ChildrenNotCollected;

impl Default for DirectoryPolicy {
    /// What a directory showed before orgs could choose: e-mail, committee and
    /// children, listed unless the member opts out; phone numbers (never shown before)
    /// stay off until the org turns them on.
    fn default() -> Self {
        Self {
            phone: false,
            email: true,
            committee: true,
            children_and_grades: true,
            listing: Listing::OptOut,
            children_data: true,
            confirm_cycle: None,
            version: 0,
            updated_at: None,
        }
    }
}

impl DirectoryPolicy {
    /// Whether the policy lets the directory show `field` at all (children and grades
    /// only while the org keeps children's data).
    #[must_use]
    pub const fn shows(&self, field: DirectoryField) -> bool {
        match field {
            DirectoryField::Phone => self.phone,
            DirectoryField::Email => self.email,
            DirectoryField::Committee => self.committee,
            DirectoryField::ChildrenAndGrades => self.children_and_grades && self.children_data,
        }
    }

    /// The rule for a write that sends `children` (a profile edit, an invitation, an
    /// import row): while the org keeps no children's data, any child is refused (an
    /// empty list, which stores nothing, is fine).
    ///
    /// # Errors
    /// [`ChildrenNotCollected`] when children are sent and the org keeps none.
    pub fn admit_children(&self, children: &[crate::Child]) -> Result<(), ChildrenNotCollected> {
        if self.children_data || children.is_empty() {
            Ok(())
        } else {
            Err(ChildrenNotCollected)
        }
    }

    /// The children a write stores when it carries children the writer did not send
    /// (a membership restored, an invitation accepted): all of them, or none while the
    /// org keeps no children's data.
    #[must_use]
    pub fn keep_children(&self, children: Vec<crate::Child>) -> Vec<crate::Child> {
        if self.children_data {
            children
        } else {
            Vec::new()
        }
    }

    /// The instant since which members must have confirmed (or joined) to be in the
    /// directory on `today`: `None` while the org runs no cycle or its deadline has not
    /// passed (the SQL form of [`in_directory`]'s confirmation part).
    #[must_use]
    pub fn confirmed_since(&self, today: Date) -> Option<OffsetDateTime> {
        self.confirm_cycle
            .filter(|c| c.deadline_passed(today))
            .map(|c| c.start())
    }

    /// A member's confirmation status on `today`.
    #[must_use]
    pub fn confirmation(
        &self,
        confirmed_at: Option<OffsetDateTime>,
        joined_at: OffsetDateTime,
        today: Date,
    ) -> ConfirmationStatus {
        match self.confirm_cycle {
            None => ConfirmationStatus::NoCycle,
            Some(c) if c.confirmed(confirmed_at, joined_at) => ConfirmationStatus::Confirmed,
            Some(c) if c.deadline_passed(today) => ConfirmationStatus::Lapsed,
            Some(_) => ConfirmationStatus::Due,
        }
    }
}

/// Whether a member is in the directory (what other members list, search and export)
/// on `today`: listed by their choice or the listing mode ([`is_listed`]), and not
/// lapsed in the org's confirmation cycle. The org's admins and the member themself
/// see the record whatever this says.
#[must_use]
pub fn in_directory(
    policy: &DirectoryPolicy,
    choices: &PrivacyChoices,
    confirmed_at: Option<OffsetDateTime>,
    joined_at: OffsetDateTime,
    today: Date,
) -> bool {
    is_listed(policy, choices)
        && policy.confirmation(confirmed_at, joined_at, today) != ConfirmationStatus::Lapsed
}

/// A member's privacy choices in one org, with when and under which notice (policy
/// version) they were made. `None` for a field: no choice made, the org's listing mode
/// decides ([`Listing::default_choice`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrivacyChoices {
    /// Whether to be listed in the directory at all.
    pub listing: Option<Choice>,
    /// Phone number.
    pub phone: Option<Choice>,
    /// E-mail address.
    pub email: Option<Choice>,
    /// Committee.
    pub committee: Option<Choice>,
    /// Children and their grades.
    pub children_and_grades: Option<Choice>,
    /// The policy version (privacy notice) the member saw when choosing.
    pub notice_version: Option<i64>,
    /// When the choices were last made (`None`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub chosen_at: Option<OffsetDateTime>,
    /// 0 until the member first chooses, then 1, 2, …
    pub version: i64,
}

impl PrivacyChoices {
    /// The member's choice for `field`, if they made one.
    #[must_use]
    pub const fn field(&self, field: DirectoryField) -> Option<Choice> {
        match field {
            DirectoryField::Phone => self.phone,
            DirectoryField::Email => self.email,
            DirectoryField::Committee => self.committee,
            DirectoryField::ChildrenAndGrades => self.children_and_grades,
        }
    }
}

/// Who looks at a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Viewer {
    /// The member themself: their whole record.
    Themself,
    /// An admin of the org reading the member's record.
    Admin,
    /// Another member (or an integration's API key) reading the directory.
    Member,
}

impl Viewer {
    /// Who `viewer` (`None`: not a person, e.g. an API key) is to `subject`, given
    /// whether the viewer is an active admin of the org.
    #[must_use]
    pub fn of(viewer: Option<UserId>, subject: UserId, viewer_is_admin: bool) -> Self {
        if viewer == Some(subject) {
            Self::Themself
        } else if viewer_is_admin {
            Self::Admin
        } else {
            Self::Member
        }
    }
}

/// Which of a member's two views is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// The record (admins, the member themself).
    Record,
    /// The directory entry (other members).
    Directory,
}

/// What a viewer sees of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Visibility {
    /// Which view.
    pub view: View,
    /// Whether the member is shown at all.
    pub listed: bool,
    /// Phone number shown.
    pub phone: bool,
    /// E-mail shown.
    pub email: bool,
    /// Committee shown.
    pub committee: bool,
    /// Children and grades shown.
    pub children_and_grades: bool,
}

impl Visibility {
    /// Everything (the record).
    pub const RECORD: Self = Self {
        view: View::Record,
        listed: true,
        phone: true,
        email: true,
        committee: true,
        children_and_grades: true,
    };

    /// Whether `field` is shown.
    #[must_use]
    pub const fn shows(&self, field: DirectoryField) -> bool {
        match field {
            DirectoryField::Phone => self.phone,
            DirectoryField::Email => self.email,
            DirectoryField::Committee => self.committee,
            DirectoryField::ChildrenAndGrades => self.children_and_grades,
        }
    }

    /// The fields not shown, in [`DirectoryField::ALL`] order.
    #[must_use]
    pub fn hidden_fields(&self) -> Vec<DirectoryField> {
        DirectoryField::ALL
            .into_iter()
            .filter(|f| !self.shows(*f))
            .collect()
    }
}

/// Whether a directory (another member) may see `field` of a member with `choices`
/// under `policy`: the policy shows it, the member is listed, and the member's own
/// choice (or, without one, the listing mode's default) is `members`.
#[must_use]
pub fn directory_shows(
    policy: &DirectoryPolicy,
    choices: &PrivacyChoices,
    field: DirectoryField,
) -> bool {
    is_listed(policy, choices)
        && policy.shows(field)
        && choices
            .field(field)
            .unwrap_or_else(|| policy.listing.default_choice())
            == Choice::Members
}

/// Whether a member with `choices` is listed in the directory under `policy`.
#[must_use]
pub fn is_listed(policy: &DirectoryPolicy, choices: &PrivacyChoices) -> bool {
    choices
        .listing
        .unwrap_or_else(|| policy.listing.default_choice())
        == Choice::Members
}

/// What `viewer` sees of a member who made `choices`, under the org's `policy`: the
/// member themself and the org's admins see the record; anyone else sees the directory
/// entry, in which a field is shown only when the policy shows it **and** the member
/// has not hidden it (no policy overrides a member's choice).
#[must_use]
pub fn visibility(
    viewer: Viewer,
    policy: &DirectoryPolicy,
    choices: &PrivacyChoices,
) -> Visibility {
    match viewer {
        Viewer::Themself | Viewer::Admin => Visibility::RECORD,
        Viewer::Member => Visibility {
            view: View::Directory,
            listed: is_listed(policy, choices),
            phone: directory_shows(policy, choices, DirectoryField::Phone),
            email: directory_shows(policy, choices, DirectoryField::Email),
            committee: directory_shows(policy, choices, DirectoryField::Committee),
            children_and_grades: directory_shows(
                policy,
                choices,
                DirectoryField::ChildrenAndGrades,
            ),
        },
    }
}

/// The search document of a member as `shown` lets a searcher see them
/// ([`crate::search::document`] without the hidden fields): search never matches a
/// member on a field hidden from the searcher.
#[must_use]
pub fn visible_document(
    shown: &Visibility,
    first_name: &str,
    last_name: &str,
    email: &str,
    phone: Option<&str>,
    committee: Option<&str>,
    children: &[String],
) -> String {
    crate::search::document(
        first_name,
        last_name,
        if shown.email { email } else { "" },
        if shown.phone { phone } else { None },
        if shown.committee { committee } else { None },
        if shown.children_and_grades {
            children
        } else {
            &[]
        },
    )
}

/// New choices of a member (each `None`: no choice, the org's listing mode decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewChoices {
    /// Whether to be listed at all.
    pub listing: Option<Choice>,
    /// Phone number.
    pub phone: Option<Choice>,
    /// E-mail address.
    pub email: Option<Choice>,
    /// Committee.
    pub committee: Option<Choice>,
    /// Children and grades.
    pub children_and_grades: Option<Choice>,
    /// The policy version (privacy notice) the member saw; `None`: the current one.
    pub notice_version: Option<i64>,
}

/// A notice version the member cannot have seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "notice version {given} is not a version of this org's directory policy (current: {current})"
)]
pub struct UnknownNoticeVersion {
    /// What was sent.
    pub given: i64,
    /// The policy's current version.
    pub current: i64,
}

impl NewChoices {
    /// The choices as recorded at `now` under `policy`, following `previous` (version
    /// + 1).
    ///
    /// # Errors
    /// [`UnknownNoticeVersion`] when `notice_version` is negative or newer than the
    /// policy.
    pub fn record(
        &self,
        policy: &DirectoryPolicy,
        previous: &PrivacyChoices,
        now: OffsetDateTime,
    ) -> Result<PrivacyChoices, UnknownNoticeVersion> {
        let notice = self.notice_version.unwrap_or(policy.version);
        if notice < 0 || notice > policy.version {
            return Err(UnknownNoticeVersion {
                given: notice,
                current: policy.version,
            });
        }
        Ok(PrivacyChoices {
            listing: self.listing,
            phone: self.phone,
            email: self.email,
            committee: self.committee,
            children_and_grades: self.children_and_grades,
            notice_version: Some(notice),
            chosen_at: Some(now),
            version: previous.version + 1,
        })
    }
}

/// One read of a member's record by someone other than the member (data-access
/// activity: who, whose, when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAccess {
    /// Identifier (UUID v7: ordered by time).
    pub id: uuid::Uuid,
    /// The org whose record was read.
    pub org_id: crate::OrgId,
    /// Who read it.
    pub accessor: UserId,
    /// Whose record it was.
    pub subject: UserId,
    /// What was read (`member.record`).
    pub what: String,
    /// When.
    pub at: OffsetDateTime,
}

/// A page of data-access activity, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogQuery {
    /// Only entries older than this one (the previous page's last id).
    pub before: Option<uuid::Uuid>,
    /// Only reads of this member's record (org-wide queries).
    pub subject: Option<UserId>,
    /// At most this many entries.
    pub limit: u64,
}

/// Why a directory policy was not changed.
#[derive(Debug, thiserror::Error)]
pub enum SetPolicyError {
    /// The org does not exist.
    #[error("no such organization")]
    NotFound,
    /// The policy changed since the version the caller saw.
    #[error("the directory policy changed (now at version {current})")]
    VersionMismatch {
        /// Current version.
        current: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Why a member's choices were not recorded.
#[derive(Debug, thiserror::Error)]
pub enum SetChoicesError {
    /// Not a member of the org.
    #[error("no such member")]
    NotFound,
    /// The choices changed since the version the caller saw.
    #[error("your privacy choices changed (now at version {current})")]
    VersionMismatch {
        /// Current version.
        current: i64,
    },
    /// The notice version is not one of the policy's.
    #[error(transparent)]
    UnknownNotice(#[from] UnknownNoticeVersion),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Why a confirmation was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmDetailsError {
    /// Not a member of the org.
    #[error("no such member")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// The fields of a directory policy an admin sets (the version and time are the
/// store's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyChange {
    /// Show phone numbers.
    pub phone: bool,
    /// Show e-mail addresses.
    pub email: bool,
    /// Show committees.
    pub committee: bool,
    /// Show children and grades.
    pub children_and_grades: bool,
    /// Opt-out or opt-in listing.
    pub listing: Listing,
    /// Keep children's data (`None`: as it is).
    pub children_data: Option<bool>,
    /// The confirmation cycle (`None`: as it is; `Some(None)`: no cycle).
    pub confirm_cycle: Option<Option<ConfirmationCycle>>,
}

impl PolicyChange {
    /// The policy after this change at `now`, following `previous`.
    #[must_use]
    pub fn apply(self, previous: &DirectoryPolicy, now: OffsetDateTime) -> DirectoryPolicy {
        DirectoryPolicy {
            phone: self.phone,
            email: self.email,
            committee: self.committee,
            children_and_grades: self.children_and_grades,
            listing: self.listing,
            children_data: self.children_data.unwrap_or(previous.children_data),
            confirm_cycle: self.confirm_cycle.unwrap_or(previous.confirm_cycle),
            version: previous.version + 1,
            updated_at: Some(now),
        }
    }

    /// Whether this change switches children's data off (the stored children of the
    /// org's members, removed members and invitations are then deleted with it).
    #[must_use]
    pub fn switches_children_off(self, previous: &DirectoryPolicy) -> bool {
        previous.children_data && self.children_data == Some(false)
    }
}

/// What switching children's data off deleted (counts only: the audit event records
/// these, never a child's name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildrenErased {
    /// Members whose children were deleted.
    pub members: u64,
    /// Removed (restorable) members whose children were deleted.
    pub removed_members: u64,
    /// Invitations whose children were deleted.
    pub invitations: u64,
    /// Children deleted in all.
    pub children: u64,
}

/// Storage of directory policies, members' choices and data-access activity. Writes
/// of policies and choices are audited in their transaction.
pub trait PrivacyRepository: Send + Sync + 'static {
    /// The org's directory policy (the defaults until it sets one).
    fn policy(
        &self,
        org: crate::OrgId,
    ) -> impl Future<Output = Result<DirectoryPolicy, StorageFailure>> + Send;

    /// Replaces the org's policy if it is still at `expected_version`.
    fn set_policy(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        expected_version: i64,
        change: PolicyChange,
    ) -> impl Future<Output = Result<DirectoryPolicy, SetPolicyError>> + Send;

    /// The org's policy and `user`'s choices in it (defaults if none made); `None` if
    /// `user` is not a member.
    fn choices(
        &self,
        org: crate::OrgId,
        user: UserId,
    ) -> impl Future<Output = Result<Option<(DirectoryPolicy, PrivacyChoices)>, StorageFailure>> + Send;

    /// Records `user`'s new choices (if still at `expected_version`, when given).
    fn set_choices(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        user: UserId,
        expected_version: Option<i64>,
        choices: NewChoices,
    ) -> impl Future<Output = Result<(DirectoryPolicy, PrivacyChoices), SetChoicesError>> + Send;

    /// Records that `accessor` read `subject`'s record in `org` (one insert).
    fn record_access(
        &self,
        org: crate::OrgId,
        accessor: UserId,
        subject: UserId,
        what: &str,
    ) -> impl Future<Output = Result<(), StorageFailure>> + Send;

    /// The org's data-access activity, newest first.
    fn org_access_log(
        &self,
        org: crate::OrgId,
        query: &AccessLogQuery,
    ) -> impl Future<Output = Result<Vec<RecordAccess>, StorageFailure>> + Send;

    /// Records that `user` confirmed their details in `org` now (audited
    /// `member.update`); answers the policy and the confirmation time.
    fn confirm_details(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        user: UserId,
    ) -> impl Future<Output = Result<(DirectoryPolicy, crate::Membership), ConfirmDetailsError>> + Send;

    /// Reads of `subject`'s records in every org, newest first (`query.subject` is
    /// ignored).
    fn own_access_log(
        &self,
        subject: UserId,
        query: &AccessLogQuery,
    ) -> impl Future<Output = Result<Vec<RecordAccess>, StorageFailure>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(choice: Option<Choice>) -> PrivacyChoices {
        PrivacyChoices {
            listing: choice,
            phone: choice,
            email: choice,
            committee: choice,
            children_and_grades: choice,
            ..PrivacyChoices::default()
        }
    }

    fn open_policy(listing: Listing) -> DirectoryPolicy {
        DirectoryPolicy {
            phone: true,
            email: true,
            committee: true,
            children_and_grades: true,
            listing,
            ..DirectoryPolicy::default()
        }
    }

    #[test]
    fn the_member_and_admins_see_the_record_whatever_was_chosen() {
        let policy = DirectoryPolicy {
            phone: false,
            email: false,
            committee: false,
            children_and_grades: false,
            listing: Listing::OptIn,
            ..DirectoryPolicy::default()
        };
        for viewer in [Viewer::Themself, Viewer::Admin] {
            let v = visibility(viewer, &policy, &all(Some(Choice::Hidden)));
            assert_eq!(v, Visibility::RECORD);
            assert!(v.hidden_fields().is_empty());
        }
    }

    #[test]
    fn no_policy_overrides_a_members_opt_out_in_the_directory() {
        let policy = open_policy(Listing::OptOut);
        for field in DirectoryField::ALL {
            let mut choices = PrivacyChoices::default();
            match field {
                DirectoryField::Phone => choices.phone = Some(Choice::Hidden),
                DirectoryField::Email => choices.email = Some(Choice::Hidden),
                DirectoryField::Committee => choices.committee = Some(Choice::Hidden),
                DirectoryField::ChildrenAndGrades => {
                    choices.children_and_grades = Some(Choice::Hidden);
                }
            }
            let v = visibility(Viewer::Member, &policy, &choices);
            assert_eq!(v.view, View::Directory);
            assert!(v.listed);
            assert_eq!(v.hidden_fields(), vec![field], "{field:?}");
        }
    }

    #[test]
    fn the_policy_hides_fields_even_from_members_who_share_them() {
        let policy = DirectoryPolicy {
            phone: false,
            children_and_grades: false,
            ..open_policy(Listing::OptOut)
        };
        let v = visibility(Viewer::Member, &policy, &all(Some(Choice::Members)));
        assert_eq!(
            v.hidden_fields(),
            vec![DirectoryField::Phone, DirectoryField::ChildrenAndGrades]
        );
        assert!(v.email && v.committee && v.listed);
    }

    #[test]
    fn opt_out_lists_and_shows_by_default_opt_in_neither() {
        let v = visibility(
            Viewer::Member,
            &open_policy(Listing::OptOut),
            &PrivacyChoices::default(),
        );
        assert!(v.listed && v.phone && v.email && v.committee && v.children_and_grades);
        let v = visibility(
            Viewer::Member,
            &open_policy(Listing::OptIn),
            &PrivacyChoices::default(),
        );
        assert!(!v.listed);
        assert_eq!(v.hidden_fields(), DirectoryField::ALL.to_vec());
        // Opting in to the listing alone shows the name, not the fields.
        let listed_only = PrivacyChoices {
            listing: Some(Choice::Members),
            ..PrivacyChoices::default()
        };
        let v = visibility(Viewer::Member, &open_policy(Listing::OptIn), &listed_only);
        assert!(v.listed);
        assert_eq!(v.hidden_fields(), DirectoryField::ALL.to_vec());
        // Opting in to a field shows it.
        let with_email = PrivacyChoices {
            email: Some(Choice::Members),
            ..listed_only
        };
        let v = visibility(Viewer::Member, &open_policy(Listing::OptIn), &with_email);
        assert!(v.email && !v.phone);
    }

    #[test]
    fn an_unlisted_member_shows_no_field() {
        let choices = PrivacyChoices {
            listing: Some(Choice::Hidden),
            ..all(Some(Choice::Members))
        };
        let v = visibility(Viewer::Member, &open_policy(Listing::OptOut), &choices);
        assert!(!v.listed);
        assert_eq!(v.hidden_fields(), DirectoryField::ALL.to_vec());
    }

    #[test]
    fn default_policy_is_todays_directory_without_phones() {
        let p = DirectoryPolicy::default();
        assert!(!p.phone && p.email && p.committee && p.children_and_grades);
        assert_eq!((p.listing, p.version), (Listing::OptOut, 0));
    }

    #[test]
    fn the_viewer_is_decided_by_identity_then_rank() {
        let (me, other) = (UserId::new(), UserId::new());
        assert_eq!(Viewer::of(Some(me), me, false), Viewer::Themself);
        assert_eq!(Viewer::of(Some(me), me, true), Viewer::Themself);
        assert_eq!(Viewer::of(Some(other), me, true), Viewer::Admin);
        assert_eq!(Viewer::of(Some(other), me, false), Viewer::Member);
        assert_eq!(Viewer::of(None, me, false), Viewer::Member);
    }

    #[test]
    fn search_documents_leave_out_hidden_fields() {
        let shown = visibility(
            Viewer::Member,
            &open_policy(Listing::OptOut),
            &PrivacyChoices {
                email: Some(Choice::Hidden),
                phone: Some(Choice::Hidden),
                ..PrivacyChoices::default()
            },
        );
        let doc = visible_document(
            &shown,
            "Jane",
            "Roe",
            "secret.mail@example.org",
            Some("555 0199"),
            Some("Garden"),
            &["Ava".into()],
        );
        let find = |q: &str| {
            crate::search::SearchQuery::parse(q)
                .expect("query")
                .score(&doc)
        };
        assert!(find("jane").is_some() && find("garden").is_some() && find("ava").is_some());
        assert!(find("secret").is_none(), "{doc}");
        assert!(find("5550199").is_none(), "{doc}");
        let full = visible_document(
            &Visibility::RECORD,
            "Jane",
            "Roe",
            "secret.mail@example.org",
            Some("555 0199"),
            None,
            &[],
        );
        assert!(full.contains("secret") && full.contains("5550199"));
    }

    #[test]
    fn choices_record_the_notice_they_were_made_under() {
        let policy = DirectoryPolicy {
            version: 3,
            ..DirectoryPolicy::default()
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let previous = PrivacyChoices {
            version: 4,
            ..PrivacyChoices::default()
        };
        let new = NewChoices {
            phone: Some(Choice::Hidden),
            ..NewChoices::default()
        };
        let recorded = new.record(&policy, &previous, now).expect("current notice");
        assert_eq!(recorded.notice_version, Some(3));
        assert_eq!(recorded.chosen_at, Some(now));
        assert_eq!(recorded.version, 5);
        assert_eq!(recorded.phone, Some(Choice::Hidden));
        let older = NewChoices {
            notice_version: Some(2),
            ..new.clone()
        };
        assert_eq!(
            older
                .record(&policy, &previous, now)
                .map(|c| c.notice_version),
            Ok(Some(2))
        );
        for bad in [-1, 4] {
            let refused = NewChoices {
                notice_version: Some(bad),
                ..new.clone()
            };
            assert_eq!(
                refused.record(&policy, &previous, now),
                Err(UnknownNoticeVersion {
                    given: bad,
                    current: 3
                })
            );
        }
    }

    fn day(y: i32, m: time::Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).expect("a day")
    }

    #[test]
    fn children_switched_off_are_refused_dropped_and_never_shown() {
        let kids = vec![crate::Child {
            name: "Ava".into(),
            grade: Some("3".into()),
        }];
        let on = open_policy(Listing::OptOut);
        assert_eq!(on.admit_children(&kids), Ok(()));
        assert_eq!(on.keep_children(kids.clone()), kids);
        let off = DirectoryPolicy {
            children_data: false,
            ..on.clone()
        };
        assert_eq!(off.admit_children(&kids), Err(ChildrenNotCollected));
        // Sending none (or clearing the list) stores nothing: fine.
        assert_eq!(off.admit_children(&[]), Ok(()));
        assert!(off.keep_children(kids).is_empty());
        // The directory never shows children then, whatever the field policy says.
        assert!(!off.shows(DirectoryField::ChildrenAndGrades));
        let v = visibility(Viewer::Member, &off, &all(Some(Choice::Members)));
        assert_eq!(v.hidden_fields(), vec![DirectoryField::ChildrenAndGrades]);
    }

    #[test]
    fn a_change_leaves_out_fields_as_they_are_and_says_when_children_go() {
        let cycle = ConfirmationCycle::new(
            day(2026, time::Month::August, 1),
            day(2026, time::Month::September, 30),
        )
        .expect("cycle");
        let before = DirectoryPolicy {
            confirm_cycle: Some(cycle),
            version: 2,
            ..DirectoryPolicy::default()
        };
        let change = PolicyChange {
            phone: true,
            email: true,
            committee: true,
            children_and_grades: true,
            listing: Listing::OptOut,
            children_data: None,
            confirm_cycle: None,
        };
        let after = change.apply(&before, OffsetDateTime::UNIX_EPOCH);
        assert!(after.children_data);
        assert_eq!(after.confirm_cycle, Some(cycle));
        assert_eq!(after.version, 3);
        assert!(!change.switches_children_off(&before));
        let off = PolicyChange {
            children_data: Some(false),
            confirm_cycle: Some(None),
            ..change
        };
        assert!(off.switches_children_off(&before));
        let after = off.apply(&before, OffsetDateTime::UNIX_EPOCH);
        assert!(!after.children_data && after.confirm_cycle.is_none());
        // Already off: nothing more to delete.
        assert!(!off.switches_children_off(&after));
    }

    #[test]
    fn a_cycle_ends_no_earlier_than_it_starts() {
        let (a, b) = (
            day(2026, time::Month::August, 1),
            day(2026, time::Month::July, 31),
        );
        assert_eq!(
            ConfirmationCycle::new(a, b),
            Err(BadCycle {
                starts_on: a,
                confirm_by: b
            })
        );
        assert!(ConfirmationCycle::new(a, a).is_ok());
    }

    #[test]
    fn unconfirmed_members_drop_out_of_the_directory_after_the_deadline() {
        use time::Month::{August, July, October, September};
        let cycle =
            ConfirmationCycle::new(day(2026, August, 1), day(2026, September, 30)).expect("cycle");
        let policy = DirectoryPolicy {
            confirm_cycle: Some(cycle),
            ..open_policy(Listing::OptOut)
        };
        let listed = PrivacyChoices::default();
        let old_join = day(2025, September, 1).midnight().assume_utc();
        let last_year = Some(day(2025, September, 2).midnight().assume_utc());
        let this_year = Some(day(2026, August, 1).midnight().assume_utc());
        let (before, on_deadline, after) = (
            day(2026, September, 1),
            day(2026, September, 30),
            day(2026, October, 1),
        );
        // Not confirmed this cycle: due until the deadline, lapsed after it.
        for today in [before, on_deadline] {
            assert_eq!(
                policy.confirmation(last_year, old_join, today),
                ConfirmationStatus::Due
            );
            assert!(in_directory(&policy, &listed, last_year, old_join, today));
            assert_eq!(policy.confirmed_since(today), None);
        }
        assert_eq!(
            policy.confirmation(last_year, old_join, after),
            ConfirmationStatus::Lapsed
        );
        assert!(!in_directory(&policy, &listed, last_year, old_join, after));
        assert!(!in_directory(&policy, &listed, None, old_join, after));
        assert_eq!(policy.confirmed_since(after), Some(cycle.start()));
        // Confirmed from the cycle's first instant, or joined since: listed.
        assert_eq!(
            policy.confirmation(this_year, old_join, after),
            ConfirmationStatus::Confirmed
        );
        assert!(in_directory(&policy, &listed, this_year, old_join, after));
        let new_join = day(2026, August, 15).midnight().assume_utc();
        assert!(in_directory(&policy, &listed, None, new_join, after));
        let just_before = Some(
            day(2026, July, 31)
                .with_hms(23, 59, 59)
                .expect("t")
                .assume_utc(),
        );
        assert!(!in_directory(
            &policy,
            &listed,
            just_before,
            old_join,
            after
        ));
        // Confirming does not list a member who opted out.
        let unlisted = PrivacyChoices {
            listing: Some(Choice::Hidden),
            ..PrivacyChoices::default()
        };
        assert!(!in_directory(
            &policy, &unlisted, this_year, old_join, after
        ));
        // No cycle: nobody lapses.
        let none = open_policy(Listing::OptOut);
        assert_eq!(
            none.confirmation(None, old_join, after),
            ConfirmationStatus::NoCycle
        );
        assert!(in_directory(&none, &listed, None, old_join, after));
        assert_eq!(none.confirmed_since(after), None);
    }

    #[test]
    fn names_round_trip() {
        for c in [Choice::Hidden, Choice::Members] {
            assert_eq!(Choice::parse(c.as_str()), Some(c));
        }
        for l in [Listing::OptIn, Listing::OptOut] {
            assert_eq!(Listing::parse(l.as_str()), Some(l));
        }
        assert_eq!(Choice::parse("everyone"), None);
        assert_eq!(
            DirectoryField::ALL.map(DirectoryField::as_str),
            ["phone", "email", "committee", "children_and_grades"]
        );
    }
}
