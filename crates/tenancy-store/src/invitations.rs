//! An org's invitations: the rows, and listing and revoking them (adding them is
//! [`crate::add_members_in`]).

use audit::EventType;
use std::collections::HashMap;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tenancy::ports::{
    AddMemberError, AddMemberRequest, AuditContext, InvitationRepository, MemberAdder,
    RevokeInvitationError, StorageFailure,
};
use tenancy::{
    Child, Email, Invitation, InvitationId, InvitationStatus, InvitedProfile, OrgId, PersonName,
    RoleAssignment, UserId,
};

use crate::convert::{self, corrupt, failure};
use crate::entity::{invitations, org_roles, organizations};
use crate::orgs::SeaOrmOrgRepository;
use permissions::BuiltinRole;

/// The row of an invitation.
pub(crate) fn row(inv: &Invitation, now: time::OffsetDateTime) -> invitations::Model {
    let (builtin_role, custom_role_id) = match &inv.role {
        RoleAssignment::Builtin { role } => (Some(role.as_str().to_owned()), None),
        RoleAssignment::Custom { id, .. } => (None, Some(id.0)),
    };
    let profile = if inv.profile.children.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "children": inv.profile.children })
    };
    invitations::Model {
        org_id: inv.org_id.as_uuid(),
        id: inv.id.as_uuid(),
        email: inv.email.as_str().to_owned(),
        builtin_role,
        custom_role_id,
        first_name: inv.profile.first_name.as_str().to_owned(),
        last_name: inv.profile.last_name.as_str().to_owned(),
        phone: inv.profile.phone.clone(),
        committee: inv.profile.committee.clone(),
        profile,
        status: inv.status.as_str().to_owned(),
        invited_by: inv.invited_by.map(|u| u.as_uuid()),
        created_at: inv.created_at,
        expires_at: inv.expires_at,
        updated_at: now,
        version: inv.version,
    }
}

/// An invitation row with the org's custom roles (by id).
pub(crate) fn invitation(
    m: invitations::Model,
    roles: &HashMap<uuid::Uuid, org_roles::Model>,
) -> Result<Invitation, StorageFailure> {
    let bad = |what: &str| {
        corrupt(format!(
            "invitations row ({}, {}): bad {what}",
            m.org_id, m.id
        ))
    };
    let role = match (&m.builtin_role, m.custom_role_id) {
        (Some(b), None) => {
            RoleAssignment::builtin(BuiltinRole::parse(b).map_err(|_| bad("builtin_role"))?)
        }
        (None, Some(id)) => {
            let r = convert::role(
                roles
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| bad("custom_role_id"))?,
            )?;
            RoleAssignment::Custom {
                id: r.id,
                name: r.name,
                counts_as: r.counts_as,
                extra_keys: r.extra_keys,
            }
        }
        _ => return Err(bad("role")),
    };
    let children: Vec<Child> = m
        .profile
        .get("children")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| bad("profile.children"))?
        .unwrap_or_default();
    Ok(Invitation {
        id: InvitationId::from_uuid(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        email: Email::parse(&m.email).map_err(|_| bad("email"))?,
        role,
        profile: InvitedProfile {
            first_name: PersonName::parse(&m.first_name).map_err(|_| bad("first_name"))?,
            last_name: PersonName::parse(&m.last_name).map_err(|_| bad("last_name"))?,
            phone: m.phone,
            committee: m.committee,
            children,
        },
        status: InvitationStatus::parse(&m.status).ok_or_else(|| bad("status"))?,
        invited_by: m.invited_by.map(UserId::from_uuid),
        created_at: m.created_at,
        expires_at: m.expires_at,
        version: m.version,
    })
}

/// The org's custom roles by id (to read invitations of custom roles).
async fn roles_of<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
) -> Result<HashMap<uuid::Uuid, org_roles::Model>, StorageFailure> {
    Ok(org_roles::Entity::find()
        .filter(org_roles::Column::OrgId.eq(org.as_uuid()))
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|r| (r.id, r))
        .collect())
}

/// The condition "has status `status` at `now`" (a pending invitation past its expiry
/// is expired).
pub(crate) fn status_at(status: InvitationStatus, now: time::OffsetDateTime) -> Condition {
    let stored = |s: InvitationStatus| invitations::Column::Status.eq(s.as_str());
    match status {
        InvitationStatus::Pending => Condition::all()
            .add(stored(InvitationStatus::Pending))
            .add(invitations::Column::ExpiresAt.gt(now)),
        InvitationStatus::Expired => Condition::any().add(stored(InvitationStatus::Expired)).add(
            Condition::all()
                .add(stored(InvitationStatus::Pending))
                .add(invitations::Column::ExpiresAt.lte(now)),
        ),
        s => Condition::all().add(stored(s)),
    }
}

impl MemberAdder for SeaOrmOrgRepository {
    async fn add_member(
        &self,
        ctx: &AuditContext,
        req: AddMemberRequest,
    ) -> Result<Invitation, AddMemberError> {
        let txn = self
            .db
            .begin_for_org(req.org_id.as_uuid())
            .await
            .map_err(failure)?;
        let added = crate::add_members::add_member_in(&txn, ctx, req).await?;
        txn.commit().await.map_err(failure)?;
        Ok(added)
    }
}

impl InvitationRepository for SeaOrmOrgRepository {
    async fn list_invitations(
        &self,
        org: OrgId,
        status: Option<InvitationStatus>,
        after: Option<InvitationId>,
        limit: u64,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Invitation>, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let mut q =
            invitations::Entity::find().filter(invitations::Column::OrgId.eq(org.as_uuid()));
        if let Some(s) = status {
            q = q.filter(status_at(s, now));
        }
        if let Some(after) = after {
            q = q.filter(invitations::Column::Id.lt(after.as_uuid()));
        }
        let rows = q
            .order_by_desc(invitations::Column::Id)
            .limit(limit)
            .all(&txn)
            .await
            .map_err(failure)?;
        let roles = if rows.iter().any(|r| r.custom_role_id.is_some()) {
            roles_of(&txn, org).await?
        } else {
            HashMap::new()
        };
        txn.commit().await.map_err(failure)?;
        rows.into_iter().map(|r| invitation(r, &roles)).collect()
    }

    async fn revoke_invitation(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        id: InvitationId,
        now: time::OffsetDateTime,
    ) -> Result<Invitation, RevokeInvitationError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let (Some(org_row), Some(row)) = (
            organizations::Entity::find_by_id(org.as_uuid())
                .one(&txn)
                .await
                .map_err(failure)?,
            invitations::Entity::find_by_id((org.as_uuid(), id.as_uuid()))
                .one(&txn)
                .await
                .map_err(failure)?,
        ) else {
            return Err(RevokeInvitationError::NotFound);
        };
        let roles = if row.custom_role_id.is_some() {
            roles_of(&txn, org).await?
        } else {
            HashMap::new()
        };
        let before = invitation(row, &roles)?;
        let revoked = before.clone().revoke(now)?;
        // Only from the version read: a concurrent change (another revoke) wins.
        let updated = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::Status,
                Expr::value(revoked.status.as_str()),
            )
            .col_expr(invitations::Column::Version, Expr::value(revoked.version))
            .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
            .filter(invitations::Column::OrgId.eq(org.as_uuid()))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::Version.eq(before.version))
            .exec(&txn)
            .await
            .map_err(failure)?;
        if updated.rows_affected == 0 {
            return Err(RevokeInvitationError::Ended(tenancy::InvitationEnded {
                status: InvitationStatus::Revoked,
            }));
        }
        convert::record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::InvitationRevoke,
            ("invitation", id.to_string()),
            audit::ChangeType::Update,
            (
                Some(serde_json::json!({ "status": before.status_at(now) })),
                Some(serde_json::json!({ "status": revoked.status })),
            ),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(revoked)
    }
}
