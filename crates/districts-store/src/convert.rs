//! Row ↔ domain conversions and the shared write helpers.

use audit::EventType;
use audit::{ChangeType, TenantScope};
use districts::ports::{
    AuditContext, BoxError, CreateDistrictError, CreateSchoolError, DeleteDistrictError,
    DeleteSchoolError, MoveOrgError, MoveSchoolError, ReadError, RemoveStaffError, SetStaffError,
    UpdateDistrictError, UpdateSchoolError,
};
use districts::{
    District, DistrictCode, DistrictId, DistrictStaff, DistrictStaffRole, School, SchoolId,
    SubscriptionTier,
};
use persistence::StorageError;
use persistence::WriteTx;
use sea_orm::{DbErr, SqlErr};
use tenancy::UserId;

use crate::entity::{district_rows, district_staff, schools};

/// A storage failure on its way to a domain error's `Unexpected` variant.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) BoxError);

impl From<DbErr> for Failure {
    fn from(e: DbErr) -> Self {
        Self(persistence::boxed(e))
    }
}

macro_rules! unexpected_from_failure {
    ($($t:ty),*) => {$(
        impl From<Failure> for $t {
            fn from(f: Failure) -> Self {
                Self::Unexpected(f.0)
            }
        }
    )*};
}

unexpected_from_failure!(
    ReadError,
    CreateDistrictError,
    UpdateDistrictError,
    DeleteDistrictError,
    DeleteSchoolError,
    CreateSchoolError,
    UpdateSchoolError,
    MoveSchoolError,
    MoveOrgError,
    SetStaffError,
    RemoveStaffError
);

/// A driver error as a [`Failure`].
pub(crate) fn failure(e: DbErr) -> Failure {
    Failure::from(e)
}

/// Data that should have been impossible to store.
pub(crate) fn corrupt(what: String) -> Failure {
    Failure(Box::new(StorageError::Query(what)))
}

/// Whether a write failed on a unique index.
pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Whether a write failed on a foreign key.
pub(crate) fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
}

/// Begins a write transaction; on SQLite with `BEGIN IMMEDIATE`, so that it holds the
/// write lock from its first statement and a read can never need upgrading to a write
/// (which fails with "database is locked" under WAL).
pub(crate) async fn begin(db: &persistence::Database) -> Result<WriteTx, Failure> {
    db.begin_write().await.map_err(failure)
}

/// A value as JSON for an audit event's old/new value.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// The audit scope of an event about a district, or the platform when there is none.
pub(crate) fn district_scope(district: Option<DistrictId>) -> TenantScope {
    district.map_or(TenantScope::PLATFORM, |d| {
        TenantScope::district(d.as_uuid())
    })
}

/// Appends the audit event of a change inside the caller's write transaction.
pub(crate) async fn record(
    txn: &WriteTx,
    ctx: &AuditContext,
    scope: TenantScope,
    what: EventType,
    entity: (&str, String),
    change: ChangeType,
    values: (Option<serde_json::Value>, Option<serde_json::Value>),
) -> Result<(), Failure> {
    audit_store::append_in(txn, vec![ctx.change(scope, what, entity, change, values)])
        .await
        .map(|_| ())
        .map_err(|e| Failure(Box::new(e)))
}

pub(crate) fn district(m: district_rows::Model) -> Result<District, Failure> {
    let bad = |what: &str| corrupt(format!("districts row {}: bad {what}", m.id));
    Ok(District {
        id: DistrictId::from_uuid(m.id),
        name: m.name.clone(),
        code: DistrictCode::parse(&m.code).map_err(|_| bad("code"))?,
        tier: SubscriptionTier::parse(&m.tier).map_err(|_| bad("tier"))?,
        settings: match m.settings {
            serde_json::Value::Object(ref map) => map.clone(),
            _ => return Err(bad("settings")),
        },
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(crate) fn school(m: schools::Model) -> Result<School, Failure> {
    let bad = |what: &str| corrupt(format!("schools row {}: bad {what}", m.id));
    Ok(School {
        id: SchoolId::from_uuid(m.id),
        district_id: m.district_id.map(DistrictId::from_uuid),
        name: m.name.clone(),
        code: DistrictCode::parse(&m.code).map_err(|_| bad("code"))?,
        grade_levels: serde_json::from_value(m.grade_levels.clone())
            .map_err(|_| bad("grade_levels"))?,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(crate) fn staff(m: district_staff::Model) -> Result<DistrictStaff, Failure> {
    Ok(DistrictStaff {
        district_id: DistrictId::from_uuid(m.district_id),
        user_id: UserId::from_uuid(m.user_id),
        role: staff_role(&m.role).map_err(|_| {
            corrupt(format!(
                "district_staff row ({}, {}): bad role",
                m.district_id, m.user_id
            ))
        })?,
        created_at: m.created_at,
        version: m.version,
    })
}

pub(crate) fn staff_role(s: &str) -> Result<DistrictStaffRole, Failure> {
    DistrictStaffRole::parse(s).map_err(|e| corrupt(e.to_string()))
}
