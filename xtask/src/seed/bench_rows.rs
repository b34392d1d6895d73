//! The rows of a bulk-inserted benchmark member, shared by the benchmarks that seed
//! directories: the account (which never signs in) and the membership with the search
//! and sort columns the add-member path derives.

use sea_orm::Value;
use time::OffsetDateTime;

/// The membership columns [`membership_row`] fills, in its order.
pub(crate) const MEMBERSHIP_COLUMNS: [&str; 12] = [
    "org_id",
    "user_id",
    "builtin_role",
    "status",
    "profile",
    "version",
    "joined_at",
    "updated_at",
    "search_doc",
    "sort_name",
    "email",
    "committee",
];

/// The `users` row (columns [`super::USER_COLUMNS`]) of an account that never signs in.
pub(crate) fn user_row(
    id: uuid::Uuid,
    email: &str,
    first: &str,
    last: &str,
    now: OffsetDateTime,
) -> [Value; 11] {
    [
        Value::from(id),
        Value::from(email.to_owned()),
        Value::from(first.to_owned()),
        Value::from(last.to_owned()),
        // Not a hash of anything: these accounts never sign in.
        Value::from("$argon2id$v=19$m=19456,t=2,p=1$bench$bench"),
        Value::from("active"),
        Value::from(false),
        Value::from(1_i64),
        Value::from(now),
        Value::from(now),
        Value::from(None::<OffsetDateTime>),
    ]
}

/// A member as a benchmark generates one.
pub(crate) struct BenchMember<'a> {
    pub(crate) org: uuid::Uuid,
    pub(crate) user: uuid::Uuid,
    /// A built-in role's name.
    pub(crate) role: &'a str,
    pub(crate) status: &'a str,
    pub(crate) first: &'a str,
    pub(crate) last: &'a str,
    pub(crate) email: &'a str,
    pub(crate) committee: Option<&'a str>,
    /// The children's names (searchable) and the profile that holds them.
    pub(crate) children: &'a [String],
    pub(crate) profile: serde_json::Value,
    pub(crate) joined: OffsetDateTime,
}

/// The `memberships` row (columns [`MEMBERSHIP_COLUMNS`]) of `m`.
pub(crate) fn membership_row(m: BenchMember<'_>, now: OffsetDateTime) -> [Value; 12] {
    let doc = tenancy::search::document(m.first, m.last, m.email, None, m.committee, m.children);
    [
        Value::from(m.org),
        Value::from(m.user),
        Value::from(m.role.to_owned()),
        Value::from(m.status.to_owned()),
        Value::from(m.profile),
        Value::from(1_i64),
        Value::from(m.joined),
        Value::from(now),
        Value::from(doc),
        Value::from(tenancy::search::sort_name(m.first, m.last)),
        Value::from(m.email.to_owned()),
        Value::from(m.committee.map(str::to_owned)),
    ]
}
