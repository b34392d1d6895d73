//! The bulk writes of `seed --enterprise`: one multi-row `INSERT` per batch, table by
//! table in foreign-key order, all in the caller's transaction.

use permissions::{BuiltinRole, Module, PermissionKey};
use sea_orm::Value;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{KEYS, Params, Plan, district_code, tag, user_email};
use crate::seed::bulk::BulkInsert;
use crate::seed::rng::SplitMix64;

/// A setting's minimum role and whether it is enabled: any role; 10% disabled, except
/// the member-management keys (no tenant locks its admins out of its member list).
fn setting_value(seed: u64, tag: u64, scope: usize, key: usize) -> (BuiltinRole, bool) {
    let mut rng = SplitMix64::stream(seed, tag, (scope * KEYS + key) as u64);
    let role = *rng.pick(&BuiltinRole::ALL);
    let enabled = rng.percent(90.0) || PermissionKey::ALL[key].module() == Module::UserManagement;
    (role, enabled)
}

pub(crate) const FIRST_NAMES: [&str; 24] = [
    "Ava", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wes",
    "Yuki",
];
pub(crate) const LAST_NAMES: [&str; 24] = [
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones",
    "Khan", "Lopez", "Miller", "Nguyen", "Okafor", "Patel", "Quist", "Rossi", "Smith", "Tanaka",
    "Usman", "Varga", "Walsh", "Young",
];
pub(crate) const COMMITTEES: [&str; 5] = [
    "Events",
    "Fundraising",
    "Hospitality",
    "Communications",
    "Grants",
];
pub(crate) const GRADE_BANDS: [&[&str]; 3] = [
    &["K", "1", "2", "3", "4", "5"],
    &["6", "7", "8"],
    &["9", "10", "11", "12"],
];

/// The columns of a bulk-inserted user.
pub(crate) const USER_COLUMNS: [&str; 11] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "password_hash",
    "status",
    "is_platform_admin",
    "version",
    "created_at",
    "updated_at",
    "deleted_at",
];

/// The generated first and last name of user `u` (the same stream the users table uses).
pub(crate) fn user_names(seed: u64, u: usize) -> (&'static str, &'static str) {
    let mut rng = SplitMix64::stream(seed, tag::USER, u as u64 + (1 << 40));
    let first = *rng.pick(&FIRST_NAMES);
    (first, *rng.pick(&LAST_NAMES))
}

/// The search document of user `u`'s membership with this committee.
fn search_doc(seed: u64, u: usize, committee: Option<&str>) -> String {
    let (first, last) = user_names(seed, u);
    tenancy::search::document(first, last, &user_email(u), None, committee, &[])
}

pub(super) fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

/// Every phase, in foreign-key order; returns the rows per table.
pub(super) async fn write_all(
    txn: &persistence::WriteTx,
    p: &Params,
    plan: &Plan,
    hash: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let seed = p.seed;
    let mut counts = Vec::new();
    let no_time: Option<OffsetDateTime> = None;
    let no_uuid: Option<Uuid> = None;

    // Users.
    let mut out = BulkInsert::new(
        txn,
        "users",
        &USER_COLUMNS,
        p.batch,
        plan.users.len() as u64,
    );
    for (u, id) in plan.users.iter().enumerate() {
        let (first, last) = user_names(seed, u);
        out.push([
            v(*id),
            v(user_email(u)),
            v(first),
            v(last),
            v(hash),
            v("active"),
            v(false),
            v(1i64),
            v(now),
            v(now),
            v(no_time),
        ])
        .await?;
    }
    counts.push(("users", out.finish().await?));

    // Districts.
    let mut out = BulkInsert::new(
        txn,
        "districts",
        &[
            "id",
            "name",
            "code",
            "tier",
            "settings",
            "version",
            "created_at",
            "updated_at",
        ],
        p.batch,
        plan.districts.len() as u64,
    );
    for (d, district) in plan.districts.iter().enumerate() {
        out.push([
            v(district.id),
            v(format!("Bench District {:04}", d + 1)),
            v(district_code(d)),
            v("enterprise"),
            v(json!({})),
            v(1i64),
            v(now),
            v(now),
        ])
        .await?;
    }
    counts.push(("districts", out.finish().await?));

    // District staff: the admin of each district's first org.
    let first_org_admin = |d: usize| {
        let o = d * p.schools_per_district * p.orgs_per_school;
        (p.orgs_per_school > 0 && p.members_per_org > 0).then(|| o * p.members_per_org)
    };
    let staff: Vec<(usize, usize)> = (0..plan.districts.len())
        .filter_map(|d| first_org_admin(d).map(|u| (d, u)))
        .collect();
    let mut out = BulkInsert::new(
        txn,
        "district_staff",
        &["district_id", "user_id", "role", "created_at"],
        p.batch,
        staff.len() as u64,
    );
    for (d, u) in staff {
        out.push([
            v(plan.districts[d].id),
            v(plan.users[u]),
            v("district_admin"),
            v(now),
        ])
        .await?;
    }
    counts.push(("district_staff", out.finish().await?));

    // Schools.
    let mut out = BulkInsert::new(
        txn,
        "schools",
        &[
            "id",
            "district_id",
            "name",
            "code",
            "grade_levels",
            "version",
            "created_at",
            "updated_at",
        ],
        p.batch,
        plan.schools.len() as u64,
    );
    for (s, id) in plan.schools.iter().enumerate() {
        let d = s / p.schools_per_district;
        let within = s % p.schools_per_district;
        let band = GRADE_BANDS[within % GRADE_BANDS.len()];
        out.push([
            v(*id),
            v(plan.districts[d].id),
            v(format!("Bench School {:04}-{:03}", d + 1, within + 1)),
            v(format!("S{:03}", within + 1)),
            v(json!(band)),
            v(1i64),
            v(now),
            v(now),
        ])
        .await?;
    }
    counts.push(("schools", out.finish().await?));

    // Organizations.
    let mut out = BulkInsert::new(
        txn,
        "organizations",
        &[
            "id",
            "name",
            "kind",
            "school_id",
            "district_id",
            "signup_code",
            "branding",
            "status",
            "version",
            "permissions_version",
            "created_at",
            "updated_at",
        ],
        p.batch,
        plan.orgs.len() as u64,
    );
    for (o, id) in plan.orgs.iter().enumerate() {
        let s = plan.school_of(p, o);
        let d = s / p.schools_per_district;
        let mut rng = SplitMix64::stream(seed, tag::ORG, o as u64 + (1 << 40));
        let kind = match rng.below(10) {
            0..7 => "pto",
            7..9 => "pta",
            _ => "ptsa",
        };
        let name = if o < p.base_orgs() {
            format!(
                "Bench School {:04}-{:03} {}",
                d + 1,
                s % p.schools_per_district + 1,
                kind.to_uppercase()
            )
        } else {
            format!("Bench Org {:06}", o + 1)
        };
        out.push([
            v(*id),
            v(name),
            v(kind),
            v(plan.schools[s]),
            v(plan.districts[d].id),
            v(format!("BENCH{:07}", o + 1)),
            v(json!({})),
            v("active"),
            v(1i64),
            v(1i64),
            v(now),
            v(now),
        ])
        .await?;
    }
    counts.push(("organizations", out.finish().await?));

    // Memberships.
    let mut out = BulkInsert::new(
        txn,
        "memberships",
        &[
            "org_id",
            "user_id",
            "builtin_role",
            "custom_role_id",
            "status",
            "committee",
            "profile",
            "role_ends_at",
            "version",
            "joined_at",
            "updated_at",
            "search_doc",
            "sort_name",
            "email",
        ],
        p.batch,
        plan.memberships(p),
    );
    let no_text: Option<String> = None;
    for o in 0..p.base_orgs() {
        for m in 0..p.members_per_org {
            let u = o * p.members_per_org + m;
            let mut rng = SplitMix64::stream(seed, tag::MEMBER, u as u64);
            let role = match m {
                0 => BuiltinRole::Admin,
                1..=2 => BuiltinRole::BoardMember,
                3..=6 => BuiltinRole::CommitteeLead,
                _ => BuiltinRole::Volunteer,
            };
            let status = match (m, rng.below(100)) {
                (0, _) | (_, 0..97) => "active",
                (_, 97..99) => "invited",
                _ => "suspended",
            };
            let committee =
                (role == BuiltinRole::CommitteeLead).then(|| (*rng.pick(&COMMITTEES)).to_owned());
            let doc = search_doc(seed, u, committee.as_deref());
            let (first, last) = user_names(seed, u);
            out.push([
                v(plan.orgs[o]),
                v(plan.users[u]),
                v(role.as_str()),
                v(no_uuid),
                v(status),
                v(committee),
                v(json!({})),
                v(no_time),
                v(1i64),
                v(now),
                v(now),
                v(doc),
                v(tenancy::search::sort_name(first, last)),
                v(user_email(u)),
            ])
            .await?;
        }
    }
    for o in p.base_orgs()..plan.orgs.len() {
        if let Some(u) = plan.large_org_admin(o) {
            out.push([
                v(plan.orgs[o]),
                v(plan.users[u]),
                v(BuiltinRole::Admin.as_str()),
                v(no_uuid),
                v("active"),
                v(no_text.clone()),
                v(json!({})),
                v(no_time),
                v(1i64),
                v(now),
                v(now),
                v(search_doc(seed, u, None)),
                v({
                    let (first, last) = user_names(seed, u);
                    tenancy::search::sort_name(first, last)
                }),
                v(user_email(u)),
            ])
            .await?;
        }
    }
    counts.push(("memberships", out.finish().await?));

    // Settings: districts (with locks), schools, orgs.
    let setting_columns: [&'static [&'static str]; 3] = [
        &[
            "district_id",
            "key",
            "min_role",
            "enabled",
            "locked",
            "updated_by",
            "updated_at",
        ],
        &[
            "school_id",
            "key",
            "min_role",
            "enabled",
            "locked",
            "updated_by",
            "updated_at",
        ],
        &[
            "org_id",
            "key",
            "min_role",
            "enabled",
            "locked",
            "updated_by",
            "updated_at",
        ],
    ];
    let district_scopes: Vec<(Uuid, u32, u32)> = plan
        .districts
        .iter()
        .map(|d| (d.id, d.keys, d.locked))
        .collect();
    let school_scopes: Vec<(Uuid, u32, u32)> = plan
        .schools
        .iter()
        .zip(&plan.school_keys)
        .map(|(id, keys)| (*id, *keys, 0))
        .collect();
    let org_scopes: Vec<(Uuid, u32, u32)> = plan
        .orgs
        .iter()
        .zip(&plan.org_keys)
        .map(|(id, keys)| (*id, *keys, 0))
        .collect();
    for ((table, columns, value_tag), scopes) in [
        (
            "district_permission_settings",
            setting_columns[0],
            tag::DISTRICT_VALUE,
        ),
        (
            "school_permission_settings",
            setting_columns[1],
            tag::SCHOOL_VALUE,
        ),
        (
            "org_permission_settings",
            setting_columns[2],
            tag::ORG_VALUE,
        ),
    ]
    .into_iter()
    .zip([district_scopes, school_scopes, org_scopes])
    {
        let total = scopes.iter().map(|s| u64::from(s.1.count_ones())).sum();
        let mut out = BulkInsert::new(txn, table, columns, p.batch, total);
        for (i, (id, keys, locked)) in scopes.iter().enumerate() {
            for (k, key) in PermissionKey::ALL.iter().enumerate() {
                if keys & (1 << k) == 0 {
                    continue;
                }
                let (role, enabled) = setting_value(seed, value_tag, i, k);
                out.push([
                    v(*id),
                    v(key.as_str()),
                    v(role.as_str()),
                    v(enabled),
                    v(locked & (1 << k) != 0),
                    v(no_uuid),
                    v(now),
                ])
                .await?;
            }
        }
        counts.push((table, out.finish().await?));
    }

    // Direct grants, granted by the org's admin.
    let mut out = BulkInsert::new(
        txn,
        "permission_grants",
        &[
            "org_id",
            "user_id",
            "key",
            "expires_at",
            "reason",
            "granted_by",
            "created_at",
        ],
        p.batch,
        plan.grants.len() as u64,
    );
    for g in &plan.grants {
        let expires = g.expires_in_days.map(|d| now + Duration::days(d));
        out.push([
            v(plan.orgs[g.org]),
            v(plan.users[g.user]),
            v(g.key.as_str()),
            v(expires),
            v(Some("benchmark seed".to_owned())),
            v(Some(plan.users[g.org * p.members_per_org])),
            v(now),
        ])
        .await?;
    }
    counts.push(("permission_grants", out.finish().await?));
    Ok(counts)
}
