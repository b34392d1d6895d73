//! Custom roles after their creation: reading one, changing one (name, rank, extra
//! keys, maximum), deleting one nobody holds; and deleting a whole org.
//!
//! Each write locks the org first (as every membership change does), so the rules
//! checked here — who may hand out what, the last admin, the maximum of holders —
//! hold against concurrent changes.

use audit::{ChangeType, EventType};
use permissions::BuiltinRole;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use tenancy::ports::{
    AuditContext, DeleteOrgError, DeleteRoleError, DeletedOrg, StorageFailure, UpdateRoleError,
    UpdateRoleRequest,
};
use tenancy::rules::{self, RoleDefinition};
use tenancy::{CustomRole, InvitationStatus, OrgId, RoleId, UserId};

use crate::convert::{self, failure, record};
use crate::entity::{invitations, memberships, org_roles, organizations, removed_memberships};
use crate::invitations::status_at;
use crate::orgs::{
    count_active_admins, held_keys, is_unique_violation, json, load_membership, lock_org,
};
use persistence::{Database, WriteTx, now_micros};

/// Whether `name` is a built-in role's name (`Board member` reads as `board_member`).
pub(crate) fn reserved_name(name: &str) -> bool {
    BuiltinRole::ALL.iter().any(|b| {
        b.as_str()
            .eq_ignore_ascii_case(&name.trim().replace(' ', "_"))
    })
}

/// Whether another role of the org (not `except`) has `name`, case-insensitively.
pub(crate) async fn name_taken(
    txn: &WriteTx,
    org: OrgId,
    name: &str,
    except: Option<uuid::Uuid>,
) -> Result<bool, StorageFailure> {
    let wanted = name.trim().to_lowercase();
    Ok(org_roles::Entity::find()
        .filter(org_roles::Column::OrgId.eq(org.as_uuid()))
        .all(txn)
        .await
        .map_err(failure)?
        .iter()
        .any(|r| Some(r.id) != except && r.name.to_lowercase() == wanted))
}

/// Members holding the role, with any status (`active_only`: active ones).
async fn holders(
    txn: &WriteTx,
    org: OrgId,
    role: uuid::Uuid,
    active_only: bool,
) -> Result<u64, StorageFailure> {
    let mut q = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
        .filter(memberships::Column::CustomRoleId.eq(role));
    if active_only {
        q = q.filter(memberships::Column::Status.eq("active"));
    }
    q.count(txn).await.map_err(failure)
}

fn definition(r: &CustomRole) -> RoleDefinition {
    RoleDefinition {
        counts_as: r.counts_as,
        extra_keys: r.extra_keys,
    }
}

/// One custom role of the org.
pub(crate) async fn get_role(
    db: &Database,
    org: OrgId,
    id: RoleId,
) -> Result<Option<CustomRole>, StorageFailure> {
    org_roles::Entity::find_by_id((org.as_uuid(), id.0))
        .one(db.primary())
        .await
        .map_err(failure)?
        .map(convert::role)
        .transpose()
}

/// See [`tenancy::ports::OrgRepository::update_role`].
pub(crate) async fn update_role(
    db: &Database,
    ctx: &AuditContext,
    req: UpdateRoleRequest,
) -> Result<CustomRole, UpdateRoleError> {
    let org = req.org_id;
    let changes = req.changes;
    let name = changes.name.as_ref().map(|n| n.trim().to_owned());
    if name.as_deref().is_some_and(reserved_name) {
        return Err(UpdateRoleError::ReservedName);
    }
    let txn = db.begin_for_org(org.as_uuid()).await.map_err(failure)?;
    let Some(org_row) = lock_org(&txn, org).await? else {
        return Err(UpdateRoleError::NotFound);
    };
    let actor = load_membership(&txn, org, req.actor)
        .await?
        .ok_or(UpdateRoleError::NotFound)?;
    let row = org_roles::Entity::find_by_id((org.as_uuid(), req.role_id.0))
        .one(&txn)
        .await
        .map_err(failure)?
        .ok_or(UpdateRoleError::NotFound)?;
    if row.version != req.expected_version {
        return Err(UpdateRoleError::VersionMismatch {
            current: row.version,
        });
    }
    let before = convert::role(row.clone())?;
    let after_definition = RoleDefinition {
        counts_as: changes.counts_as.unwrap_or(before.counts_as),
        extra_keys: changes.extra_keys.unwrap_or(before.extra_keys),
    };
    rules::check_role_edit(
        actor.role.rank(),
        held_keys(&txn, org, req.actor).await?,
        definition(&before),
        after_definition,
    )?;
    let active_holders = holders(&txn, org, row.id, true).await?;
    if after_definition.counts_as != before.counts_as {
        let admins = count_active_admins(&txn, org).await?;
        let outside = if before.counts_as == BuiltinRole::Admin {
            admins.saturating_sub(active_holders)
        } else {
            admins
        };
        rules::check_role_rerank(before.counts_as, after_definition.counts_as, outside)?;
    }
    if let Some(Some(max)) = changes.max_holders {
        let all = holders(&txn, org, row.id, false).await?;
        if all > u64::from(max) {
            return Err(UpdateRoleError::BelowHolders { holders: all });
        }
    }
    if let Some(n) = &name
        && name_taken(&txn, org, n, Some(row.id)).await?
    {
        return Err(UpdateRoleError::DuplicateName);
    }
    let mut active: org_roles::ActiveModel = row.clone().into();
    if let Some(n) = name {
        active.name = Set(n);
    }
    active.counts_as = Set(after_definition.counts_as.as_str().to_owned());
    active.extra_keys = Set(serde_json::to_value(after_definition.extra_keys).unwrap_or_default());
    if let Some(max) = changes.max_holders {
        active.max_holders = Set(max.map(|n| i32::try_from(n).unwrap_or(i32::MAX)));
    }
    active.version = Set(row.version + 1);
    active.updated_at = Set(now_micros());
    let updated = active.update(&txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            UpdateRoleError::DuplicateName
        } else {
            failure(e).into()
        }
    })?;
    let after = convert::role(updated)?;
    let scope = convert::org_scope(&org_row);
    if before.counts_as == BuiltinRole::Admin && after.counts_as != BuiltinRole::Admin {
        // API keys are an admin's: they die with their creator's admin rights.
        let holders = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org.as_uuid()))
            .filter(memberships::Column::CustomRoleId.eq(row.id))
            .all(&txn)
            .await
            .map_err(failure)?;
        for m in holders {
            crate::api_keys::revoke_keys_of_creator(
                &txn,
                ctx,
                scope,
                org,
                UserId::from_uuid(m.user_id),
            )
            .await?;
        }
    }
    record(
        &txn,
        ctx,
        scope,
        EventType::RoleUpdate,
        ("role", after.id.0.to_string()),
        ChangeType::Update,
        (json(&before), json(&after)),
    )
    .await?;
    txn.commit().await.map_err(failure)?;
    Ok(after)
}

/// See [`tenancy::ports::OrgRepository::delete_role`].
pub(crate) async fn delete_role(
    db: &Database,
    ctx: &AuditContext,
    org: OrgId,
    actor: UserId,
    id: RoleId,
    expected_version: i64,
) -> Result<(), DeleteRoleError> {
    let txn = db.begin_for_org(org.as_uuid()).await.map_err(failure)?;
    let Some(org_row) = lock_org(&txn, org).await? else {
        return Err(DeleteRoleError::NotFound);
    };
    let actor_m = load_membership(&txn, org, actor)
        .await?
        .ok_or(DeleteRoleError::NotFound)?;
    let row = org_roles::Entity::find_by_id((org.as_uuid(), id.0))
        .one(&txn)
        .await
        .map_err(failure)?
        .ok_or(DeleteRoleError::NotFound)?;
    if row.version != expected_version {
        return Err(DeleteRoleError::VersionMismatch {
            current: row.version,
        });
    }
    let role = convert::role(row.clone())?;
    rules::check_role_edit(
        actor_m.role.rank(),
        held_keys(&txn, org, actor).await?,
        definition(&role),
        definition(&role),
    )?;
    let now = now_micros();
    let members = holders(&txn, org, row.id, false).await?;
    let pending = invitations::Entity::find()
        .filter(invitations::Column::OrgId.eq(org.as_uuid()))
        .filter(invitations::Column::CustomRoleId.eq(row.id))
        .filter(status_at(InvitationStatus::Pending, now))
        .count(&txn)
        .await
        .map_err(failure)?;
    if members > 0 || pending > 0 {
        return Err(DeleteRoleError::InUse {
            members,
            invitations: pending,
        });
    }
    // Ended invitations that offered it keep its rank, as a built-in role.
    invitations::Entity::update_many()
        .col_expr(
            invitations::Column::BuiltinRole,
            Expr::value(Some(role.counts_as.as_str().to_owned())),
        )
        .col_expr(
            invitations::Column::CustomRoleId,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .filter(invitations::Column::OrgId.eq(org.as_uuid()))
        .filter(invitations::Column::CustomRoleId.eq(row.id))
        .exec(&txn)
        .await
        .map_err(failure)?;
    org_roles::Entity::delete_by_id((org.as_uuid(), row.id))
        .exec(&txn)
        .await
        .map_err(failure)?;
    record(
        &txn,
        ctx,
        convert::org_scope(&org_row),
        EventType::RoleDelete,
        ("role", role.id.0.to_string()),
        ChangeType::Delete,
        (json(&role), None),
    )
    .await?;
    txn.commit().await.map_err(failure)?;
    Ok(())
}

/// See [`tenancy::ports::OrgRepository::delete_org`].
pub(crate) async fn delete_org(
    db: &Database,
    ctx: &AuditContext,
    org: OrgId,
    expected_version: i64,
) -> Result<DeletedOrg, DeleteOrgError> {
    let txn = db.begin_for_org(org.as_uuid()).await.map_err(failure)?;
    let Some(row) = lock_org(&txn, org).await? else {
        return Err(DeleteOrgError::NotFound);
    };
    if row.status == "archived" {
        return Err(DeleteOrgError::NotFound);
    }
    if row.version != expected_version {
        return Err(DeleteOrgError::VersionMismatch {
            current: row.version,
        });
    }
    // Recorded in the chains the org belonged to (its district's too).
    let scope = convert::org_scope(&row);
    let before = convert::org(row.clone())?;
    let now = now_micros();
    let actor = match ctx.actor {
        audit::Actor::User(u) => Some(u),
        _ => None,
    };
    // Every membership ends: kept aside with the org (as a removal is), so nothing
    // that decides access sees it.
    let rows = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
        .all(&txn)
        .await
        .map_err(failure)?;
    let members = rows.len() as u64;
    for m in rows {
        removed_memberships::Entity::delete_by_id((m.org_id, m.user_id))
            .exec(&txn)
            .await
            .map_err(failure)?;
        removed_memberships::ActiveModel {
            org_id: Set(m.org_id),
            user_id: Set(m.user_id),
            builtin_role: Set(m.builtin_role),
            custom_role_id: Set(m.custom_role_id),
            status: Set(m.status),
            committee: Set(m.committee),
            profile: Set(m.profile),
            role_ends_at: Set(m.role_ends_at),
            version: Set(m.version),
            joined_at: Set(m.joined_at),
            removed_at: Set(now),
            removed_by: Set(actor),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
    }
    memberships::Entity::delete_many()
        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
        .exec(&txn)
        .await
        .map_err(failure)?;
    let invitations = invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(InvitationStatus::Revoked.as_str()),
        )
        .col_expr(
            invitations::Column::Version,
            Expr::col(invitations::Column::Version).add(1),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
        .filter(invitations::Column::OrgId.eq(org.as_uuid()))
        .filter(status_at(InvitationStatus::Pending, now))
        .exec(&txn)
        .await
        .map_err(failure)?
        .rows_affected;
    let api_keys = crate::api_keys::revoke_keys(&txn, ctx, scope, org, None)
        .await?
        .len() as u64;
    let mut active: organizations::ActiveModel = row.clone().into();
    active.status = Set("archived".to_owned());
    active.school_id = Set(None);
    active.district_id = Set(None);
    active.version = Set(row.version + 1);
    active.updated_at = Set(now);
    active.update(&txn).await.map_err(failure)?;
    let summary = DeletedOrg {
        members,
        invitations,
        api_keys,
    };
    record(
        &txn,
        ctx,
        scope,
        EventType::OrgDelete,
        ("organization", org.to_string()),
        ChangeType::Delete,
        (
            json(&before),
            Some(serde_json::json!({
                "status": "archived",
                "members_removed": summary.members,
                "invitations_revoked": summary.invitations,
                "api_keys_revoked": summary.api_keys,
            })),
        ),
    )
    .await?;
    txn.commit().await.map_err(failure)?;
    Ok(summary)
}
