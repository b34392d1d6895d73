//! Adding members inside the caller's transaction: one (the invite flow) or many at once
//! (a step of the import job), with the same rules, rows and audit events either way.
//!
//! Adding someone creates an **invitation** of the org (`tenancy::Invitation`): the
//! address, the role and the profile exactly as typed. No account is read, attached or
//! created (accounts are read only to find this org's own members) — so the outcome is
//! the same whether or not the address has an account, and nobody's address is taken by
//! an account they did not claim (see docs/decisions.md, "Invitations instead of attached
//! accounts"). What is checked is the org's own data: its members' addresses and its
//! pending invitations.
//!
//! A batch costs a fixed number of statements, whatever its size: lock the org, read
//! the actor, the custom roles named and their holders, which addresses are members or
//! have a pending invitation already; then mark the lapsed pending invitations of these
//! addresses expired, insert the invitations with multi-row inserts and append the audit
//! events to the org's chain with one lock of its head
//! ([`audit_store::append_events`]). Every refusal is decided before the first write, so
//! a refused row writes nothing and leaves the transaction usable.

use audit::EventType;
use persistence::WriteTx;
use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use tenancy::ports::{AddMemberError, AddMemberRequest, AuditContext, RoleChoice, StorageFailure};
use tenancy::rules::RoleChangeRefused;
use tenancy::{CustomRole, Invitation, InvitationStatus, InvitedProfile, RoleAssignment};

use crate::convert::{self, failure};
use crate::entity::{invitations, memberships, org_roles, users};
use crate::invitations::{row, status_at};
use crate::notices::{Notice, Notices};
use crate::orgs::{held_keys, load_membership, lock_org};
use persistence::now_micros;
use tenancy::OneTimeToken;

/// Rows per multi-row insert and values per `IN (…)` list: at most 16 columns × 256
/// rows = 4,096 bind parameters, within PostgreSQL's and SQLite's limits.
const CHUNK: usize = 256;

/// Adds someone inside the caller's transaction (which should be scoped to
/// `req.org_id` with `Database::begin_for_org`): locks the org row, checks the actor's
/// rank and the custom role's maximum, and creates a pending invitation with its
/// `member.invite` audit event. Nothing is committed here, so a caller can apply it
/// together with other writes. Refusals are detected before any write, so a failed
/// call leaves the transaction usable. [`add_members_in`] adds many at once.
///
/// # Errors
/// See [`AddMemberError`].
pub async fn add_member_in(
    txn: &WriteTx,
    ctx: &AuditContext,
    notices: &Notices,
    req: AddMemberRequest,
) -> Result<Invitation, AddMemberError> {
    add_members_in(txn, ctx, notices, vec![req])
        .await?
        .pop()
        .ok_or_else(|| {
            AddMemberError::Unexpected(StorageFailure("no outcome for the request".into()))
        })?
}

/// Adds people inside the caller's transaction, each exactly as [`add_member_in`]
/// would in the given order (a later request sees the earlier ones: the same e-mail
/// twice is [`AddMemberError::AlreadyInvited`] the second time, and invitations count
/// toward a custom role's maximum), in a fixed number of statements for the whole batch.
/// Returns one outcome per request, in order; refused requests write nothing.
///
/// Every request must name the same org and actor (one org row is locked, one audit
/// chain appended to).
///
/// # Errors
/// Storage failures, and a batch that mixes orgs or actors: the caller must then roll
/// the transaction back.
pub async fn add_members_in(
    txn: &WriteTx,
    ctx: &AuditContext,
    notices: &Notices,
    reqs: Vec<AddMemberRequest>,
) -> Result<Vec<Result<Invitation, AddMemberError>>, StorageFailure> {
    let Some((org, actor_id)) = reqs.first().map(|r| (r.org_id, r.actor)) else {
        return Ok(Vec::new());
    };
    if reqs.iter().any(|r| r.org_id != org || r.actor != actor_id) {
        return Err(StorageFailure(
            "add_members_in: every request must name the same org and actor".into(),
        ));
    }
    let not_found = || reqs.iter().map(|_| Err(AddMemberError::NotFound)).collect();
    let Some(org_row) = lock_org(txn, org).await? else {
        return Ok(not_found());
    };
    let Some(actor) = load_membership(txn, org, actor_id).await? else {
        return Ok(not_found());
    };
    let actor_holds = held_keys(txn, org, actor_id).await?;
    let now = now_micros();
    let mut roles = custom_roles_named(txn, org.as_uuid(), &reqs, now).await?;
    let emails: Vec<&str> = reqs
        .iter()
        .map(|r| r.email.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let members = members_among(txn, org.as_uuid(), &emails).await?;
    let (mut pending, lapsed) = pending_among(txn, org.as_uuid(), &emails, now).await?;
    let policy = crate::privacy::load_policy(txn, org).await?;

    // Decide every request, in order, before writing anything.
    let mut outcomes: Vec<Result<(), AddMemberError>> = Vec::with_capacity(reqs.len());
    let mut planned: Vec<Invitation> = Vec::new();
    for req in reqs {
        let role = match &req.role {
            RoleChoice::Builtin(r) => RoleAssignment::builtin(*r),
            RoleChoice::Custom(id) => {
                let Some(held) = roles.get(&id.0) else {
                    outcomes.push(Err(AddMemberError::UnknownRole));
                    continue;
                };
                if let Some(max) = held.role.max_holders
                    && held.holders >= u64::from(max)
                {
                    outcomes.push(Err(RoleChangeRefused::RoleFull {
                        role: held.role.name.clone(),
                        max,
                    }
                    .into()));
                    continue;
                }
                RoleAssignment::Custom {
                    id: held.role.id,
                    name: held.role.name.clone(),
                    counts_as: held.role.counts_as,
                    extra_keys: held.role.extra_keys,
                }
            }
        };
        if let Err(refused) = policy.admit_children(&req.children) {
            outcomes.push(Err(refused.into()));
            continue;
        }
        if let Err(refused) = tenancy::rules::check_assignable_role(&actor, &role, actor_holds) {
            outcomes.push(Err(refused.into()));
            continue;
        }
        if members.contains(req.email.as_str()) {
            outcomes.push(Err(AddMemberError::AlreadyMember { email: req.email }));
            continue;
        }
        if !pending.insert(req.email.as_str().to_owned()) {
            outcomes.push(Err(AddMemberError::AlreadyInvited { email: req.email }));
            continue;
        }
        if let RoleChoice::Custom(id) = &req.role
            && let Some(held) = roles.get_mut(&id.0)
        {
            held.holders += 1;
        }
        let profile = InvitedProfile::new(
            req.first_name,
            req.last_name,
            req.phone.as_deref(),
            req.committee.as_deref(),
            req.children,
        );
        outcomes.push(Ok(()));
        planned.push(Invitation::new(
            org,
            req.email,
            role,
            profile,
            Some(actor_id),
            now,
            req.valid_for,
        ));
    }

    // Write: lapsed invitations of these addresses become expired (the unique index
    // admits one pending invitation per address), then the new ones, then the events.
    let planned_emails: HashSet<&str> = planned.iter().map(|p| p.email.as_str()).collect();
    let lapsed: Vec<&str> = lapsed
        .iter()
        .map(String::as_str)
        .filter(|e| planned_emails.contains(e))
        .collect();
    for chunk in lapsed.chunks(CHUNK) {
        invitations::Entity::update_many()
            .col_expr(
                invitations::Column::Status,
                Expr::value(InvitationStatus::Expired.as_str()),
            )
            .col_expr(
                invitations::Column::Version,
                Expr::col(invitations::Column::Version).add(1),
            )
            .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
            .filter(invitations::Column::OrgId.eq(org.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.lte(now))
            .filter(invitations::Column::Email.is_in(chunk.iter().copied()))
            .exec(txn)
            .await
            .map_err(failure)?;
    }
    // Each invitation's link carries its own token; only the digest is stored.
    let tokens: Vec<OneTimeToken> = planned.iter().map(|_| OneTimeToken::generate()).collect();
    for (chunk, tokens) in planned.chunks(CHUNK).zip(tokens.chunks(CHUNK)) {
        invitations::Entity::insert_many(chunk.iter().zip(tokens).map(|(inv, token)| {
            invitations::ActiveModel::from(row(inv, Some(token.digest()), now)).reset_all()
        }))
        .exec_without_returning(txn)
        .await
        .map_err(failure)?;
    }
    let mut events = Vec::with_capacity(planned.len());
    for inv in &planned {
        // Only what this org typed: the invitation itself.
        let value = serde_json::to_value(inv).map_err(|e| StorageFailure(Box::new(e)))?;
        events.push(ctx.change(
            convert::org_scope(&org_row),
            EventType::MemberInvite,
            ("invitation", inv.id.to_string()),
            audit::ChangeType::Create,
            (None, Some(value)),
        ));
    }
    convert::record_all(txn, events).await?;
    let (inviter, inviter_locale) = crate::invitations::inviter(txn, actor_id.as_uuid()).await?;
    notices
        .queue_all(
            txn,
            planned
                .iter()
                .zip(tokens)
                .map(|(inv, token)| {
                    (
                        inv.email.clone(),
                        Notice::Invitation {
                            org_id: org.as_uuid(),
                            org_name: org_row.name.clone(),
                            inviter: inviter.clone(),
                            token,
                            inviter_locale: inviter_locale.clone(),
                        },
                    )
                })
                .collect(),
        )
        .await?;
    // The invitations come in the order of the accepted requests.
    let mut added = planned.into_iter();
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.and_then(|()| {
                added
                    .next()
                    .ok_or_else(|| StorageFailure("a planned invitation was lost".into()).into())
            })
        })
        .collect())
}

/// A custom role named by a request, with its current number of holders (members
/// holding it and pending invitations to it: an invitation reserves a seat).
struct HeldRole {
    role: CustomRole,
    holders: u64,
}

/// The org's custom roles that the requests name (unknown ids are simply absent), with
/// their holders counted where the role has a maximum.
async fn custom_roles_named(
    txn: &WriteTx,
    org: uuid::Uuid,
    reqs: &[AddMemberRequest],
    now: time::OffsetDateTime,
) -> Result<HashMap<uuid::Uuid, HeldRole>, StorageFailure> {
    let ids: HashSet<uuid::Uuid> = reqs
        .iter()
        .filter_map(|r| match r.role {
            RoleChoice::Custom(id) => Some(id.0),
            RoleChoice::Builtin(_) => None,
        })
        .collect();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = org_roles::Entity::find()
        .filter(org_roles::Column::OrgId.eq(org))
        .filter(org_roles::Column::Id.is_in(ids))
        .all(txn)
        .await
        .map_err(failure)?;
    for row in rows {
        let role = convert::role(row.clone())?;
        let holders = if role.max_holders.is_some() {
            let members = memberships::Entity::find()
                .filter(memberships::Column::OrgId.eq(org))
                .filter(memberships::Column::CustomRoleId.eq(row.id))
                .count(txn)
                .await
                .map_err(failure)?;
            let invited = invitations::Entity::find()
                .filter(invitations::Column::OrgId.eq(org))
                .filter(invitations::Column::CustomRoleId.eq(row.id))
                .filter(status_at(InvitationStatus::Pending, now))
                .count(txn)
                .await
                .map_err(failure)?;
            members + invited
        } else {
            0
        };
        out.insert(row.id, HeldRole { role, holders });
    }
    Ok(out)
}

/// Which of these addresses belong to members of `org` (only this org's members'
/// accounts are read).
async fn members_among(
    txn: &WriteTx,
    org: uuid::Uuid,
    emails: &[&str],
) -> Result<HashSet<String>, StorageFailure> {
    let mut out = HashSet::new();
    for chunk in emails.chunks(CHUNK) {
        let found: Vec<String> = memberships::Entity::find()
            .select_only()
            .column(users::Column::Email)
            .inner_join(users::Entity)
            .filter(memberships::Column::OrgId.eq(org))
            .filter(users::Column::Email.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(failure)?;
        out.extend(found);
    }
    Ok(out)
}

/// Of these addresses, those with a pending invitation of `org` that is still open at
/// `now`, and those whose pending invitation has lapsed (expired but stored pending).
async fn pending_among(
    txn: &WriteTx,
    org: uuid::Uuid,
    emails: &[&str],
    now: time::OffsetDateTime,
) -> Result<(HashSet<String>, HashSet<String>), StorageFailure> {
    let mut open = HashSet::new();
    let mut lapsed = HashSet::new();
    for chunk in emails.chunks(CHUNK) {
        let found: Vec<(String, time::OffsetDateTime)> = invitations::Entity::find()
            .select_only()
            .column(invitations::Column::Email)
            .column(invitations::Column::ExpiresAt)
            .filter(invitations::Column::OrgId.eq(org))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::Email.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(failure)?;
        for (email, expires_at) in found {
            // As `Invitation::status_at`: expired from `expires_at` on.
            if now >= expires_at {
                lapsed.insert(email);
            } else {
                open.insert(email);
            }
        }
    }
    Ok((open, lapsed))
}
