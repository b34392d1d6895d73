//! Adding members inside the caller's transaction: one (the invite flow) or many at once
//! (a step of the import job), with the same rules, rows and audit events either way.
//!
//! A batch costs a fixed number of statements, whatever its size: lock the org, read
//! the actor, the custom roles named and their holders, the accounts of the e-mails and
//! which of them are members already; then insert the new accounts and the memberships
//! with multi-row inserts and append the audit events to the org's chain with one lock
//! of its head ([`audit_store::append_events`]). Every refusal is decided before the
//! first write, so a refused row writes nothing and leaves the transaction usable.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    Set, TryIntoModel,
};
use tenancy::ports::{
    AddMemberError, AddMemberRequest, AddedMember, AuditContext, RoleChoice, StorageFailure,
};
use tenancy::rules::RoleChangeRefused;
use tenancy::{CustomRole, RoleAssignment, UserId};

use crate::convert::{self, audit_event, failure};
use crate::entity::{memberships, org_roles, users};
use crate::orgs::{directory_fields, held_keys, load_membership, lock_org, unusable_password_hash};
use persistence::now_micros;

/// Rows per multi-row insert and values per `IN (…)` list: at most 16 columns × 256
/// rows = 4,096 bind parameters, within PostgreSQL's and SQLite's limits.
const CHUNK: usize = 256;

/// Adds a member inside the caller's transaction (which should be scoped to
/// `req.org_id` with `Database::begin_for_org`): locks the org row, checks the actor's
/// rank and the custom role's maximum, finds or creates the account, inserts the
/// membership (`invited`, with its search document) and appends its `member.add` audit
/// event. Nothing is committed here, so a caller can apply it together with other
/// writes. Refusals are detected before any write, so a failed call leaves the
/// transaction usable. [`add_members_in`] adds many at once.
///
/// # Errors
/// See [`AddMemberError`].
pub async fn add_member_in(
    txn: &DatabaseTransaction,
    ctx: &AuditContext,
    req: AddMemberRequest,
) -> Result<AddedMember, AddMemberError> {
    add_members_in(txn, ctx, vec![req])
        .await?
        .pop()
        .ok_or_else(|| {
            AddMemberError::Unexpected(StorageFailure("no outcome for the request".into()))
        })?
}

/// Adds members inside the caller's transaction, each exactly as [`add_member_in`]
/// would in the given order (a later request sees the earlier ones: the same e-mail
/// twice is [`AddMemberError::AlreadyMember`] the second time, and additions count
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
    txn: &DatabaseTransaction,
    ctx: &AuditContext,
    reqs: Vec<AddMemberRequest>,
) -> Result<Vec<Result<AddedMember, AddMemberError>>, StorageFailure> {
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
    let mut roles = custom_roles_named(txn, org.as_uuid(), &reqs).await?;
    let mut accounts = accounts_of(txn, &reqs).await?;
    let mut members = members_among(txn, org.as_uuid(), accounts.values()).await?;

    // Decide every request, in order, before writing anything.
    let now = now_micros();
    let mut outcomes: Vec<Result<(), AddMemberError>> = Vec::with_capacity(reqs.len());
    let mut planned: Vec<Planned> = Vec::new();
    for req in reqs {
        let (role, custom_row) = match &req.role {
            RoleChoice::Builtin(r) => (RoleAssignment::builtin(*r), None),
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
                (
                    RoleAssignment::Custom {
                        id: held.role.id,
                        name: held.role.name.clone(),
                        counts_as: held.role.counts_as,
                        extra_keys: held.role.extra_keys,
                    },
                    Some(held.row.clone()),
                )
            }
        };
        if let Err(refused) = tenancy::rules::check_assignable_role(&actor, &role, actor_holds) {
            outcomes.push(Err(refused.into()));
            continue;
        }
        let (account, user_created) = match accounts.get(req.email.as_str()) {
            Some(u) if members.contains(&u.id) => {
                outcomes.push(Err(AddMemberError::AlreadyMember { email: req.email }));
                continue;
            }
            Some(u) => (u.clone(), false),
            None => {
                let u = new_account(&req, now);
                accounts.insert(u.email.clone(), u.clone());
                (u, true)
            }
        };
        members.insert(account.id);
        if let RoleChoice::Custom(id) = &req.role
            && let Some(held) = roles.get_mut(&id.0)
        {
            held.holders += 1;
        }
        let membership = new_membership(&req, &account, now)?;
        outcomes.push(Ok(()));
        planned.push(Planned {
            account,
            user_created,
            membership,
            custom_row,
        });
    }

    // Write: the new accounts, the memberships, then the audit events.
    for chunk in planned.chunks(CHUNK) {
        let created: Vec<users::ActiveModel> = chunk
            .iter()
            .filter(|p| p.user_created)
            .map(|p| users::ActiveModel::from(p.account.clone()).reset_all())
            .collect();
        if !created.is_empty() {
            users::Entity::insert_many(created)
                .exec_without_returning(txn)
                .await
                .map_err(failure)?;
        }
    }
    for chunk in planned.chunks(CHUNK) {
        memberships::Entity::insert_many(
            chunk
                .iter()
                .map(|p| memberships::ActiveModel::from(p.membership.clone()).reset_all()),
        )
        .exec_without_returning(txn)
        .await
        .map_err(failure)?;
    }
    let mut added = Vec::with_capacity(planned.len());
    let mut events = Vec::with_capacity(planned.len());
    for p in planned {
        let membership = convert::membership(p.membership, p.custom_row.as_ref())?;
        let user = convert::user(p.account)?;
        events.push(audit_event(
            ctx,
            convert::org_scope(&org_row),
            "member.add",
            ("member", user.id.to_string()),
            audit::ChangeType::Create,
            (
                None,
                Some(serde_json::json!({
                    "email": user.email,
                    "user_created": p.user_created,
                    "membership": membership,
                })),
            ),
        ));
        added.push(AddedMember {
            user,
            membership,
            user_created: p.user_created,
        });
    }
    convert::record_all(txn, events).await?;
    // The added members come in the order of the accepted requests.
    let mut added = added.into_iter();
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.and_then(|()| {
                added
                    .next()
                    .ok_or_else(|| StorageFailure("a planned member was lost".into()).into())
            })
        })
        .collect())
}

/// A request that passed every rule: the rows it will write.
struct Planned {
    account: users::Model,
    user_created: bool,
    membership: memberships::Model,
    custom_row: Option<org_roles::Model>,
}

/// A custom role named by a request, with its current number of holders.
struct HeldRole {
    row: org_roles::Model,
    role: CustomRole,
    holders: u64,
}

/// The org's custom roles that the requests name (unknown ids are simply absent), with
/// their holders counted where the role has a maximum.
async fn custom_roles_named(
    txn: &DatabaseTransaction,
    org: uuid::Uuid,
    reqs: &[AddMemberRequest],
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
            memberships::Entity::find()
                .filter(memberships::Column::OrgId.eq(org))
                .filter(memberships::Column::CustomRoleId.eq(row.id))
                .count(txn)
                .await
                .map_err(failure)?
        } else {
            0
        };
        out.insert(row.id, HeldRole { row, role, holders });
    }
    Ok(out)
}

/// The live accounts of the requests' e-mail addresses, by address.
async fn accounts_of(
    txn: &DatabaseTransaction,
    reqs: &[AddMemberRequest],
) -> Result<HashMap<String, users::Model>, StorageFailure> {
    let emails: Vec<&str> = reqs
        .iter()
        .map(|r| r.email.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut out = HashMap::with_capacity(emails.len());
    for chunk in emails.chunks(CHUNK) {
        let found = users::Entity::find()
            .filter(users::Column::Email.is_in(chunk.iter().copied()))
            .filter(users::Column::DeletedAt.is_null())
            .all(txn)
            .await
            .map_err(failure)?;
        out.extend(found.into_iter().map(|u| (u.email.clone(), u)));
    }
    Ok(out)
}

/// Which of these accounts are members of `org` already.
async fn members_among(
    txn: &DatabaseTransaction,
    org: uuid::Uuid,
    accounts: impl Iterator<Item = &users::Model>,
) -> Result<HashSet<uuid::Uuid>, StorageFailure> {
    let ids: Vec<uuid::Uuid> = accounts.map(|u| u.id).collect();
    let mut out = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let found = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org))
            .filter(memberships::Column::UserId.is_in(chunk.iter().copied()))
            .all(txn)
            .await
            .map_err(failure)?;
        out.extend(found.into_iter().map(|m| m.user_id));
    }
    Ok(out)
}

/// The account an invitation creates: no usable password until the user sets one.
fn new_account(req: &AddMemberRequest, now: time::OffsetDateTime) -> users::Model {
    users::Model {
        id: UserId::new().as_uuid(),
        email: req.email.as_str().to_owned(),
        first_name: req.first_name.as_str().to_owned(),
        last_name: req.last_name.as_str().to_owned(),
        password_hash: unusable_password_hash(),
        status: "active".to_owned(),
        is_platform_admin: false,
        version: 1,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        phone: req
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        last_active_at: None,
    }
}

/// The membership row of an added member (`invited`), with its directory columns.
fn new_membership(
    req: &AddMemberRequest,
    account: &users::Model,
    now: time::OffsetDateTime,
) -> Result<memberships::Model, StorageFailure> {
    let committee = req
        .committee
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let profile = if req.children.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "children": req.children })
    };
    let (builtin, custom_id) = match &req.role {
        RoleChoice::Builtin(r) => (Some(r.as_str().to_owned()), None),
        RoleChoice::Custom(id) => (None, Some(id.0)),
    };
    let directory = directory_fields(account, committee.as_deref(), &profile);
    memberships::ActiveModel {
        org_id: Set(req.org_id.as_uuid()),
        user_id: Set(account.id),
        builtin_role: Set(builtin),
        custom_role_id: Set(custom_id),
        status: Set("invited".to_owned()),
        committee: Set(committee),
        profile: Set(profile),
        role_ends_at: Set(None),
        version: Set(1),
        joined_at: Set(now),
        updated_at: Set(now),
        ..directory
    }
    .try_into_model()
    .map_err(failure)
}
