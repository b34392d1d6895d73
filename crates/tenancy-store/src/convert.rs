//! Row ↔ domain conversions and the shared write helpers.

use audit::{ChangeType, EventType, NewAuditEvent, TenantScope};
use permissions::{BuiltinRole, KeySet};
use persistence::{StorageError, WriteTx};
use sea_orm::DbErr;
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::{
    Child, CustomRole, Email, Membership, MembershipStatus, OrgId, OrgKind, OrgStatus,
    Organization, PersonName, RoleAssignment, RoleId, SignupCode, User, UserId, UserStatus,
};

use crate::entity::{memberships, org_roles, organizations, users};

/// A driver error as the domain's opaque storage failure.
pub(crate) fn failure(e: DbErr) -> StorageFailure {
    StorageFailure(persistence::boxed(e))
}

/// Data that should have been impossible to store.
pub(crate) fn corrupt(what: String) -> StorageFailure {
    StorageFailure(Box::new(StorageError::Query(what)))
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
) -> Result<(), StorageFailure> {
    record_all(txn, vec![ctx.change(scope, what, entity, change, values)]).await
}

/// Appends audit events inside the caller's write transaction, one head lock per chain
/// (`audit_store::append_in`).
pub(crate) async fn record_all(
    txn: &WriteTx,
    events: Vec<NewAuditEvent>,
) -> Result<(), StorageFailure> {
    audit_store::append_in(txn, events)
        .await
        .map(|_| ())
        .map_err(|e| StorageFailure(Box::new(e)))
}

/// Appends an activity event (sign-in, sign-out, …) inside the caller's transaction.
pub(crate) async fn record_activity(
    txn: &WriteTx,
    ctx: &AuditContext,
    what: EventType,
    user: UserId,
) -> Result<(), StorageFailure> {
    let event = NewAuditEvent::activity(
        TenantScope::PLATFORM,
        ctx.actor,
        what.action(),
        "user",
        user.to_string(),
    )
    .with_request(&ctx.request);
    record_all(txn, vec![event]).await
}

pub(crate) fn user(m: users::Model) -> Result<User, StorageFailure> {
    let bad = |what: &str| corrupt(format!("users row {}: bad {what}", m.id));
    Ok(User {
        id: UserId::from_uuid(m.id),
        email: Email::parse(&m.email).map_err(|_| bad("email"))?,
        first_name: PersonName::parse(&m.first_name).map_err(|_| bad("first_name"))?,
        last_name: PersonName::parse(&m.last_name).map_err(|_| bad("last_name"))?,
        status: match m.status.as_str() {
            "active" => UserStatus::Active,
            "disabled" => UserStatus::Disabled,
            _ => return Err(bad("status")),
        },
        created_at: m.created_at,
        phone: m.phone,
        last_active_at: m.last_active_at,
    })
}

pub(crate) fn org_kind_str(k: OrgKind) -> &'static str {
    match k {
        OrgKind::Pto => "pto",
        OrgKind::Pta => "pta",
        OrgKind::Ptsa => "ptsa",
        OrgKind::Other => "other",
    }
}

pub(crate) fn org(m: organizations::Model) -> Result<Organization, StorageFailure> {
    let bad = |what: &str| corrupt(format!("organizations row {}: bad {what}", m.id));
    Ok(Organization {
        id: OrgId::from_uuid(m.id),
        name: m.name.clone(),
        kind: match m.kind.as_str() {
            "pto" => OrgKind::Pto,
            "pta" => OrgKind::Pta,
            "ptsa" => OrgKind::Ptsa,
            "other" => OrgKind::Other,
            _ => return Err(bad("kind")),
        },
        school_id: m.school_id,
        district_id: m.district_id,
        signup_code: SignupCode::parse(&m.signup_code).map_err(|_| bad("signup_code"))?,
        branding: m.branding.clone(),
        status: match m.status.as_str() {
            "active" => OrgStatus::Active,
            "suspended" => OrgStatus::Suspended,
            "archived" => OrgStatus::Archived,
            _ => return Err(bad("status")),
        },
        version: m.version,
        created_at: m.created_at,
    })
}

pub(crate) fn role(m: org_roles::Model) -> Result<CustomRole, StorageFailure> {
    let bad = |what: &str| corrupt(format!("org_roles row {}: bad {what}", m.id));
    Ok(CustomRole {
        id: RoleId(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        name: m.name.clone(),
        counts_as: BuiltinRole::parse(&m.counts_as).map_err(|_| bad("counts_as"))?,
        extra_keys: serde_json::from_value::<KeySet>(m.extra_keys.clone())
            .map_err(|_| bad("extra_keys"))?,
        max_holders: m
            .max_holders
            .map(|n| u32::try_from(n).map_err(|_| bad("max_holders")))
            .transpose()?,
        version: m.version,
    })
}

pub(crate) fn status_str(s: MembershipStatus) -> &'static str {
    match s {
        MembershipStatus::Active => "active",
        MembershipStatus::Invited => "invited",
        MembershipStatus::Suspended => "suspended",
    }
}

/// A membership row with its custom role row (when it has one).
pub(crate) fn membership(
    m: memberships::Model,
    custom: Option<&org_roles::Model>,
) -> Result<Membership, StorageFailure> {
    let bad = |what: &str| {
        corrupt(format!(
            "memberships row ({}, {}): bad {what}",
            m.org_id, m.user_id
        ))
    };
    let role = match (&m.builtin_role, m.custom_role_id, custom) {
        (Some(b), None, _) => {
            RoleAssignment::builtin(BuiltinRole::parse(b).map_err(|_| bad("builtin_role"))?)
        }
        (None, Some(id), Some(r)) if r.id == id => {
            let r = role(r.clone())?;
            RoleAssignment::Custom {
                id: r.id,
                name: r.name,
                counts_as: r.counts_as,
                extra_keys: r.extra_keys,
            }
        }
        _ => return Err(bad("role")),
    };
    let status = match m.status.as_str() {
        "active" => MembershipStatus::Active,
        "invited" => MembershipStatus::Invited,
        "suspended" => MembershipStatus::Suspended,
        _ => return Err(bad("status")),
    };
    let children: Vec<Child> = m
        .profile
        .get("children")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| bad("profile.children"))?
        .unwrap_or_default();
    Ok(Membership {
        org_id: OrgId::from_uuid(m.org_id),
        user_id: UserId::from_uuid(m.user_id),
        role,
        status,
        committee: m.committee,
        children,
        role_ends_at: m.role_ends_at,
        version: m.version,
        joined_at: m.joined_at,
        last_active_at: m.active_at,
        details_confirmed_at: m.details_confirmed_at,
    })
}

/// The audit scope of an org (with its district when it has one).
pub(crate) fn org_scope(org: &organizations::Model) -> TenantScope {
    match org.district_id {
        Some(d) => TenantScope::org_in_district(org.id, d),
        None => TenantScope::org(org.id),
    }
}
