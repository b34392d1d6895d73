//! The member directory: how an org's member list is filtered, sorted and paged, and
//! the port that answers it.
//!
//! Lists are paged by **keyset** (the cursor holds the last row's sort key and user id),
//! so rows inserted or removed between page fetches cause no gaps or duplicates. Search
//! results are ranked by [`crate::search::SearchQuery::score`] and paged by position.

use std::fmt::Write as _;
use std::future::Future;

use permissions::BuiltinRole;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ports::StorageFailure;
use crate::privacy::{DirectoryPolicy, PrivacyChoices};
use crate::search::SearchQuery;
use crate::{Membership, MembershipStatus, OrgId, RoleId, User, UserId};

/// The sort keys of the member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberSort {
    /// Last name, then first name (case-insensitive).
    Name,
    /// E-mail address.
    Email,
    /// When they joined the org.
    Joined,
    /// When they last signed in (else when they joined).
    LastActive,
}

impl MemberSort {
    /// The API name (`name`, `email`, `joined`, `last_active`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Email => "email",
            Self::Joined => "joined",
            Self::LastActive => "last_active",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Name, Self::Email, Self::Joined, Self::LastActive]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A role to filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFilter {
    /// Members holding this built-in role.
    Builtin(BuiltinRole),
    /// Members holding this custom role.
    Custom(RoleId),
}

/// Filters of the member list (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    /// Only this role.
    pub role: Option<RoleFilter>,
    /// Only this status.
    pub status: Option<MembershipStatus>,
    /// Only this committee (exact, case-insensitive).
    pub committee: Option<String>,
    /// Joined at or after.
    pub joined_from: Option<OffsetDateTime>,
    /// Joined before.
    pub joined_to: Option<OffsetDateTime>,
}

/// The sort key of one row, as a cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// The stored name key ([`crate::search::sort_name`]).
    Name(String),
    /// Lower-cased e-mail.
    Email(String),
    /// A time (joined, last active).
    Time(OffsetDateTime),
}

/// Where the next page of a list starts: after this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCursor {
    /// The sort the cursor belongs to.
    pub sort: MemberSort,
    /// Whether the list is descending.
    pub descending: bool,
    /// The last row's sort key.
    pub key: SortKey,
    /// The last row's user id (the tie-breaker).
    pub user_id: UserId,
}

/// A cursor that does not decode, or belongs to another sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is invalid or belongs to another sort order")]
pub struct BadCursor;

impl MemberCursor {
    /// The cursor of the row `(user, membership)` in a list sorted by `sort`.
    #[must_use]
    pub fn after(sort: MemberSort, descending: bool, user: &User, m: &Membership) -> Self {
        let key = match sort {
            MemberSort::Name => SortKey::Name(crate::search::sort_name(
                user.first_name.as_str(),
                user.last_name.as_str(),
            )),
            MemberSort::Email => SortKey::Email(user.email.to_string()),
            MemberSort::Joined => SortKey::Time(m.joined_at),
            MemberSort::LastActive => SortKey::Time(m.last_active_at.unwrap_or(m.joined_at)),
        };
        Self {
            sort,
            descending,
            key,
            user_id: user.id,
        }
    }

    /// An opaque, URL-safe string (hex of `sort|dir|key…|user`).
    #[must_use]
    pub fn encode(&self) -> String {
        let key = match &self.key {
            SortKey::Name(name) => name.clone(),
            SortKey::Email(e) => e.clone(),
            SortKey::Time(t) => t.format(&Rfc3339).unwrap_or_default(),
        };
        let raw = format!(
            "{}|{}|{}|{}",
            self.sort.as_str(),
            if self.descending { "d" } else { "a" },
            self.user_id,
            key
        );
        raw.bytes()
            .fold(String::with_capacity(raw.len() * 2), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// Decodes a cursor for a list sorted by `sort` in direction `descending`.
    ///
    /// # Errors
    /// [`BadCursor`] if it is malformed or was made for another order.
    pub fn decode(s: &str, sort: MemberSort, descending: bool) -> Result<Self, BadCursor> {
        if !s.len().is_multiple_of(2) || s.len() > 2048 {
            return Err(BadCursor);
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(s.get(i..i + 2).ok_or(BadCursor)?, 16).map_err(|_| BadCursor)
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let raw = String::from_utf8(bytes).map_err(|_| BadCursor)?;
        let mut parts = raw.splitn(4, '|');
        let (Some(sort_s), Some(dir), Some(user), Some(key)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadCursor);
        };
        let found = MemberSort::parse(sort_s).ok_or(BadCursor)?;
        if found != sort || (dir == "d") != descending || !matches!(dir, "a" | "d") {
            return Err(BadCursor);
        }
        let user_id = UserId::from_uuid(uuid::Uuid::parse_str(user).map_err(|_| BadCursor)?);
        let key = match sort {
            MemberSort::Name => SortKey::Name(key.to_owned()),
            MemberSort::Email => SortKey::Email(key.to_owned()),
            MemberSort::Joined | MemberSort::LastActive => {
                SortKey::Time(OffsetDateTime::parse(key, &Rfc3339).map_err(|_| BadCursor)?)
            }
        };
        Ok(Self {
            sort,
            descending,
            key,
            user_id,
        })
    }
}

/// Whom a page of the directory is for: it decides which members a page holds and
/// what a search or a filter may match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Audience {
    /// The org's admins (and exports of records): every member, every field.
    Record,
    /// Other members: only listed members, filters and search only on the fields each
    /// member shows them ([`crate::privacy::directory_shows`]).
    #[default]
    Directory,
}

impl Audience {
    /// Whether this audience may sort by `sort`: ordering by e-mail would reveal hidden
    /// addresses (the cursor carries them), so only the record is sorted by e-mail.
    #[must_use]
    pub const fn may_sort_by(self, sort: MemberSort) -> bool {
        !matches!((self, sort), (Self::Directory, MemberSort::Email))
    }
}

/// A request for one page of the member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberListRequest {
    /// The org.
    pub org: OrgId,
    /// Filters.
    pub filter: MemberFilter,
    /// Sort key.
    pub sort: MemberSort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// Start after this row.
    pub after: Option<MemberCursor>,
    /// Page size.
    pub limit: u32,
    /// Whom the page is for.
    pub audience: Audience,
}

/// A request for one page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSearchRequest {
    /// The org.
    pub org: OrgId,
    /// The parsed search text.
    pub query: SearchQuery,
    /// Filters.
    pub filter: MemberFilter,
    /// Rows to skip (search pages are positional: results are ranked).
    pub offset: u32,
    /// Page size.
    pub limit: u32,
    /// Whom the page is for.
    pub audience: Audience,
}

/// A member and their account, as a list shows them.
pub type MemberRow = (User, Membership);

/// One page: the rows and whether more follow, with the org's directory policy and the
/// rows' members' privacy choices as they were read with the rows (so a page is shaped
/// for each viewer by [`crate::privacy::visibility`] under the policy it was selected
/// by).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberPage {
    /// The rows of this page.
    pub rows: Vec<MemberRow>,
    /// Whether another page follows.
    pub more: bool,
    /// The org's directory policy.
    pub policy: DirectoryPolicy,
    /// The choices of the rows' members who made any (others: none).
    pub privacy: Vec<(UserId, PrivacyChoices)>,
}

impl MemberPage {
    /// The privacy choices of `user` (none made: the defaults).
    #[must_use]
    pub fn choices_of(&self, user: UserId) -> PrivacyChoices {
        self.privacy
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }
}

/// Reads of an org's member directory.
pub trait MemberDirectory: Send + Sync + 'static {
    /// One page of the org's members, filtered and sorted.
    fn list(
        &self,
        req: &MemberListRequest,
    ) -> impl Future<Output = Result<MemberPage, StorageFailure>> + Send;

    /// One page of the org's members matching a search, best first.
    fn search(
        &self,
        req: &MemberSearchRequest,
    ) -> impl Future<Output = Result<MemberPage, StorageFailure>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_record_is_sorted_by_email() {
        for sort in [MemberSort::Name, MemberSort::Joined, MemberSort::LastActive] {
            assert!(Audience::Directory.may_sort_by(sort));
        }
        assert!(!Audience::Directory.may_sort_by(MemberSort::Email));
        assert!(Audience::Record.may_sort_by(MemberSort::Email));
    }

    #[test]
    fn cursors_round_trip_and_refuse_another_order() {
        let user_id = UserId::new();
        for key in [
            SortKey::Name(crate::search::sort_name("Ana María", "O'Brien")),
            SortKey::Email("a|b@example.org".into()),
        ] {
            let sort = if matches!(key, SortKey::Name(..)) {
                MemberSort::Name
            } else {
                MemberSort::Email
            };
            let c = MemberCursor {
                sort,
                descending: true,
                key,
                user_id,
            };
            let s = c.encode();
            assert!(s.chars().all(|ch| ch.is_ascii_hexdigit()));
            assert_eq!(MemberCursor::decode(&s, sort, true), Ok(c.clone()));
            assert_eq!(MemberCursor::decode(&s, sort, false), Err(BadCursor));
            assert_eq!(
                MemberCursor::decode(&s, MemberSort::Joined, true),
                Err(BadCursor)
            );
        }
        let t = MemberCursor {
            sort: MemberSort::Joined,
            descending: false,
            key: SortKey::Time(
                OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(1_234_567),
            ),
            user_id,
        };
        assert_eq!(
            MemberCursor::decode(&t.encode(), MemberSort::Joined, false),
            Ok(t)
        );
        for bad in ["", "zz", "abc", "00"] {
            assert_eq!(
                MemberCursor::decode(bad, MemberSort::Name, false),
                Err(BadCursor),
                "{bad:?}"
            );
        }
    }
}
