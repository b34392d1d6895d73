//! An org's invitations: the rows, and listing and revoking them (adding them is
//! [`crate::add_members_in`]).

use audit::EventType;
use std::collections::HashMap;

use crate::notices::Notice;
use persistence::WriteTx;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, Set};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tenancy::ports::{
    AcceptedInvitation, AddMemberError, AddMemberRequest, AnswerInvitationError, AuditContext,
    Claimant, InvitationRepository, MemberAdder, RevokeInvitationError, StorageFailure,
};
use tenancy::{
    Child, Email, Invitation, InvitationId, InvitationStatus, InvitedProfile, OrgId, PersonName,
    RoleAssignment, UserId,
};
use tenancy::{OneTimeToken, TokenRefused};

use crate::convert::{self, corrupt, failure};
use crate::entity::{
    invitations, memberships, org_roles, organizations, removed_memberships, users,
};
use crate::orgs::SeaOrmOrgRepository;
use permissions::BuiltinRole;

/// The row of an invitation, whose link carries the token with digest `token_hash`.
pub(crate) fn row(
    inv: &Invitation,
    token_hash: Option<String>,
    now: time::OffsetDateTime,
) -> invitations::Model {
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
        token_hash,
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
        let added = crate::add_members::add_member_in(&txn, ctx, &self.notices, req).await?;
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

    async fn get_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let Some(row) = invitations::Entity::find_by_id((org.as_uuid(), id.as_uuid()))
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(None);
        };
        let roles = if row.custom_role_id.is_some() {
            roles_of(&txn, org).await?
        } else {
            HashMap::new()
        };
        txn.commit().await.map_err(failure)?;
        invitation(row, &roles).map(Some)
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
        let (org_row, before) = org_invitation(&txn, org, id).await?;
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

    async fn resend_invitation(
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
        let (org_row, current) = org_invitation(&txn, org, id).await?;
        let status = current.status_at(now);
        if status != InvitationStatus::Pending {
            return Err(tenancy::InvitationEnded { status }.into());
        }
        let token = OneTimeToken::generate();
        let updated = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::TokenHash,
                Expr::value(Some(token.digest())),
            )
            .col_expr(
                invitations::Column::Version,
                Expr::value(current.version + 1),
            )
            .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
            .filter(invitations::Column::OrgId.eq(org.as_uuid()))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(failure)?;
        if updated.rows_affected == 0 {
            return Err(RevokeInvitationError::NotFound);
        }
        convert::record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::InvitationResend,
            ("invitation", id.to_string()),
            audit::ChangeType::Update,
            (None, None),
        )
        .await?;
        let (inviter, inviter_locale) = match ctx.actor {
            audit::Actor::User(u) => inviter(&txn, u).await?,
            _ => (String::new(), None),
        };
        self.notices
            .queue_all(
                &txn,
                vec![(
                    current.email.clone(),
                    Notice::Invitation {
                        org_id: org.as_uuid(),
                        org_name: org_row.name.clone(),
                        inviter,
                        token,
                        inviter_locale,
                    },
                )],
            )
            .await?;
        txn.commit().await.map_err(failure)?;
        Ok(Invitation {
            version: current.version + 1,
            ..current
        })
    }

    async fn accept_invitation(
        &self,
        ctx: &AuditContext,
        token: &OneTimeToken,
        claimant: Claimant,
        now: time::OffsetDateTime,
    ) -> Result<AcceptedInvitation, AnswerInvitationError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let row = invitations::Entity::find()
            .filter(invitations::Column::TokenHash.eq(token.digest()))
            .one(&txn)
            .await
            .map_err(failure)?
            .ok_or(TokenRefused::Unknown)?;
        let invited = users::Entity::find()
            .filter(users::Column::Email.eq(row.email.clone()))
            .filter(users::Column::DeletedAt.is_null())
            .one(&txn)
            .await
            .map_err(failure)?;
        let (user, created) = match claimant {
            Claimant::Account(me) => {
                let Some(u) = invited.filter(|u| u.id == me.as_uuid()) else {
                    return Err(AnswerInvitationError::WrongAccount);
                };
                (u, false)
            }
            Claimant::NewAccount {
                first_name,
                last_name,
                password_hash,
            } => {
                if invited.is_some() {
                    return Err(AnswerInvitationError::AccountExists);
                }
                (
                    new_account(
                        &txn,
                        ctx,
                        &row.email,
                        &first_name,
                        &last_name,
                        password_hash,
                        now,
                    )
                    .await?,
                    true,
                )
            }
        };
        let accepted = accept_in(&txn, ctx, row, &user, now).await?;
        txn.commit().await.map_err(failure)?;
        Ok(AcceptedInvitation {
            user: convert::user(user)?,
            created,
            ..accepted
        })
    }

    async fn invitations_to(
        &self,
        email: &Email,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Invitation>, StorageFailure> {
        let rows = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email.as_str()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::Id)
            .all(self.db.primary())
            .await
            .map_err(failure)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let roles = if row.custom_role_id.is_some() {
                roles_of(self.db.primary(), OrgId::from_uuid(row.org_id)).await?
            } else {
                HashMap::new()
            };
            out.push(invitation(row, &roles)?);
        }
        Ok(out)
    }

    async fn answer_invitation(
        &self,
        ctx: &AuditContext,
        user: UserId,
        org: OrgId,
        id: InvitationId,
        accept: bool,
        now: time::OffsetDateTime,
    ) -> Result<Option<AcceptedInvitation>, AnswerInvitationError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let me = users::Entity::find_by_id(user.as_uuid())
            .filter(users::Column::DeletedAt.is_null())
            .one(&txn)
            .await
            .map_err(failure)?
            .ok_or(AnswerInvitationError::WrongAccount)?;
        if me.email_verified_at.is_none() {
            return Err(AnswerInvitationError::NotVerified);
        }
        let row = invitations::Entity::find_by_id((org.as_uuid(), id.as_uuid()))
            .one(&txn)
            .await
            .map_err(failure)?
            .filter(|r| r.email.eq_ignore_ascii_case(&me.email))
            .ok_or(TokenRefused::Unknown)?;
        if accept {
            let accepted = accept_in(&txn, ctx, row, &me, now).await?;
            txn.commit().await.map_err(failure)?;
            return Ok(Some(AcceptedInvitation {
                user: convert::user(me)?,
                created: false,
                ..accepted
            }));
        }
        let (org_row, current) = pending(&txn, row, now).await?;
        let declined = current.clone().decline(now)?;
        set_status(&txn, &current, &declined, now).await?;
        convert::record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::InvitationDecline,
            ("invitation", current.id.to_string()),
            audit::ChangeType::Update,
            (
                Some(serde_json::json!({ "status": current.status })),
                Some(serde_json::json!({ "status": declined.status })),
            ),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(None)
    }
}

/// The org row and its invitation `id`, read in `txn`.
async fn org_invitation(
    txn: &WriteTx,
    org: OrgId,
    id: InvitationId,
) -> Result<(organizations::Model, Invitation), RevokeInvitationError> {
    let (Some(org_row), Some(row)) = (
        organizations::Entity::find_by_id(org.as_uuid())
            .one(txn)
            .await
            .map_err(failure)?,
        invitations::Entity::find_by_id((org.as_uuid(), id.as_uuid()))
            .one(txn)
            .await
            .map_err(failure)?,
    ) else {
        return Err(RevokeInvitationError::NotFound);
    };
    let roles = if row.custom_role_id.is_some() {
        roles_of(txn, org).await?
    } else {
        HashMap::new()
    };
    Ok((org_row, invitation(row, &roles)?))
}

/// The org row and the invitation of `row`, if it is still pending at `now`.
async fn pending(
    txn: &WriteTx,
    row: invitations::Model,
    now: time::OffsetDateTime,
) -> Result<(organizations::Model, Invitation), AnswerInvitationError> {
    let org = OrgId::from_uuid(row.org_id);
    let org_row = crate::orgs::lock_org(txn, org)
        .await?
        .ok_or(TokenRefused::Unknown)?;
    let roles = if row.custom_role_id.is_some() {
        roles_of(txn, org).await?
    } else {
        HashMap::new()
    };
    let current = invitation(row, &roles)?;
    match current.status_at(now) {
        InvitationStatus::Pending => Ok((org_row, current)),
        InvitationStatus::Expired => Err(TokenRefused::Expired.into()),
        status => Err(tenancy::InvitationEnded { status }.into()),
    }
}

/// Moves `current` to `next`'s status, from the version read (a concurrent answer wins).
async fn set_status(
    txn: &WriteTx,
    current: &Invitation,
    next: &Invitation,
    now: time::OffsetDateTime,
) -> Result<(), AnswerInvitationError> {
    let updated = invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(next.status.as_str()),
        )
        .col_expr(invitations::Column::Version, Expr::value(next.version))
        .col_expr(
            invitations::Column::TokenHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
        .filter(invitations::Column::OrgId.eq(current.org_id.as_uuid()))
        .filter(invitations::Column::Id.eq(current.id.as_uuid()))
        .filter(invitations::Column::Version.eq(current.version))
        .exec(txn)
        .await
        .map_err(failure)?;
    if updated.rows_affected == 0 {
        return Err(tenancy::InvitationEnded {
            status: InvitationStatus::Accepted,
        }
        .into());
    }
    Ok(())
}

/// Accepts the invitation `row` for the account `user` inside `txn`: the membership
/// with the invited role and profile, the address proven, the events.
async fn accept_in(
    txn: &WriteTx,
    ctx: &AuditContext,
    row: invitations::Model,
    user: &users::Model,
    now: time::OffsetDateTime,
) -> Result<AcceptedInvitation, AnswerInvitationError> {
    let (org_row, current) = pending(txn, row, now).await?;
    let org = current.org_id;
    if memberships::Entity::find_by_id((org.as_uuid(), user.id))
        .one(txn)
        .await
        .map_err(failure)?
        .is_some()
    {
        return Err(AnswerInvitationError::AlreadyMember);
    }
    let accepted = current.clone().accept(now)?;
    set_status(txn, &current, &accepted, now).await?;
    if user.email_verified_at.is_none() {
        users::Entity::update_many()
            .col_expr(users::Column::EmailVerifiedAt, Expr::value(Some(now)))
            .filter(users::Column::Id.eq(user.id))
            .exec(txn)
            .await
            .map_err(failure)?;
    }
    // Invited again by the org: an earlier removal no longer stands.
    removed_memberships::Entity::delete_many()
        .filter(removed_memberships::Column::OrgId.eq(org.as_uuid()))
        .filter(removed_memberships::Column::UserId.eq(user.id))
        .exec(txn)
        .await
        .map_err(failure)?;
    let (builtin_role, custom_role_id) = match &current.role {
        RoleAssignment::Builtin { role } => (Some(role.as_str().to_owned()), None),
        RoleAssignment::Custom { id, .. } => (None, Some(id.0)),
    };
    // Children become the member's only while the org keeps children's data.
    let children = crate::privacy::load_policy(txn, org)
        .await?
        .keep_children(current.profile.children.clone());
    let profile = if children.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "children": children })
    };
    let committee = current.profile.committee.clone();
    let inserted = memberships::ActiveModel {
        org_id: Set(org.as_uuid()),
        user_id: Set(user.id),
        builtin_role: Set(builtin_role),
        custom_role_id: Set(custom_role_id),
        status: Set("active".to_owned()),
        committee: Set(committee.clone()),
        profile: Set(profile.clone()),
        role_ends_at: Set(None),
        version: Set(1),
        joined_at: Set(now),
        updated_at: Set(now),
        ..crate::orgs::directory_fields(user, committee.as_deref(), &profile)
    }
    .insert(txn)
    .await
    .map_err(failure)?;
    let custom = match inserted.custom_role_id {
        Some(id) => org_roles::Entity::find_by_id((org.as_uuid(), id))
            .one(txn)
            .await
            .map_err(failure)?,
        None => None,
    };
    let membership = convert::membership(inserted, custom.as_ref())?;
    let scope = convert::org_scope(&org_row);
    convert::record_all(
        txn,
        vec![
            ctx.change(
                scope,
                EventType::InvitationAccept,
                ("invitation", current.id.to_string()),
                audit::ChangeType::Update,
                (
                    Some(serde_json::json!({ "status": current.status })),
                    Some(serde_json::json!({ "status": accepted.status, "user_id": user.id })),
                ),
            ),
            ctx.change(
                scope,
                EventType::MemberCreate,
                ("member", user.id.to_string()),
                audit::ChangeType::Create,
                (None, serde_json::to_value(&membership).ok()),
            ),
        ],
    )
    .await?;
    Ok(AcceptedInvitation {
        user: convert::user(user.clone())?,
        created: false,
        org: convert::org(org_row)?,
        membership,
    })
}

/// Creates the account of an invited address (proven by the link), audited
/// `auth.register`.
async fn new_account(
    txn: &WriteTx,
    ctx: &AuditContext,
    email: &str,
    first_name: &PersonName,
    last_name: &PersonName,
    password_hash: String,
    now: time::OffsetDateTime,
) -> Result<users::Model, AnswerInvitationError> {
    let model = users::ActiveModel {
        id: Set(UserId::new().as_uuid()),
        email: Set(email.to_owned()),
        first_name: Set(first_name.as_str().to_owned()),
        last_name: Set(last_name.as_str().to_owned()),
        password_hash: Set(password_hash),
        status: Set("active".to_owned()),
        is_platform_admin: Set(false),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        phone: Set(None),
        last_active_at: Set(None),
        email_verified_at: Set(Some(now)),
        locale: Set(None),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        if matches!(
            e.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ) {
            AnswerInvitationError::AccountExists
        } else {
            failure(e).into()
        }
    })?;
    convert::record_activity(
        txn,
        ctx,
        EventType::AuthRegister,
        UserId::from_uuid(model.id),
    )
    .await?;
    Ok(model)
}

/// The acting member's name, for the invitation's "who invited you".
/// The display name and language of an inviter.
pub(crate) async fn inviter(
    txn: &WriteTx,
    user: uuid::Uuid,
) -> Result<(String, Option<tenancy::Language>), StorageFailure> {
    Ok(users::Entity::find_by_id(user)
        .one(txn)
        .await
        .map_err(failure)?
        .map(|u| {
            let locale = u
                .locale
                .as_deref()
                .and_then(|l| tenancy::Language::parse(l).ok());
            (format!("{} {}", u.first_name, u.last_name), locale)
        })
        .unwrap_or_default())
}
