use audit::ChangeType;
use audit::EventType;
use permissions::BuiltinRole;
use persistence::WriteTx;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use tenancy::ports::{
    AuditContext, ChangeMemberError, ChangeMemberRequest, ChangedMember, CreateOrgError,
    CreateOrgRequest, CreateRoleError, CreateRoleRequest, JoinOrgError, OrgChanges, OrgRepository,
    RemovedMember, RestoreMemberError, RoleChoice, StorageFailure, UpdateOrgError,
};
use tenancy::rules::{self, RoleChangeRefused};
use tenancy::{
    CustomRole, Membership, OrgId, Organization, RoleAssignment, SignupCode, User, UserId,
};
use time::OffsetDateTime;

use crate::convert::{self, failure, record};
use crate::entity::{memberships, org_roles, organizations, removed_memberships, schools, users};
use persistence::{Database, now_micros};

/// Ids per `IN (…)` list (well under SQLite's bound on bound parameters).
const IN_LIST_CHUNK: usize = 500;

/// [`OrgRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmOrgRepository {
    pub(crate) db: Database,
    pub(crate) notices: crate::Notices,
}

impl SeaOrmOrgRepository {
    /// A repository over the given database (queueing no messages: see
    /// [`SeaOrmOrgRepository::with_notices`]).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            db,
            notices: crate::Notices::none(),
        }
    }

    /// The same repository, queueing its messages (invitations) through `notices`.
    #[must_use]
    pub fn with_notices(mut self, notices: crate::Notices) -> Self {
        self.notices = notices;
        self
    }
}

pub(crate) fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// Takes the org's write lock for the rest of the transaction (a row lock on
/// PostgreSQL, the database write lock on SQLite) and returns the org row.
pub(crate) async fn lock_org(
    txn: &WriteTx,
    org: OrgId,
) -> Result<Option<organizations::Model>, StorageFailure> {
    txn.lock_org_reading(
        org.as_uuid(),
        organizations::Entity::find_by_id(org.as_uuid()),
    )
    .await
    .map_err(failure)
}

/// Loads one membership with its custom role.
pub(crate) async fn load_membership<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
    user: UserId,
) -> Result<Option<Membership>, StorageFailure> {
    let Some(row) = memberships::Entity::find_by_id((org.as_uuid(), user.as_uuid()))
        .one(conn)
        .await
        .map_err(failure)?
    else {
        return Ok(None);
    };
    membership_of_row(conn, org, row).await.map(Some)
}

/// The membership of a row already read (its custom role read here).
async fn membership_of_row<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
    row: memberships::Model,
) -> Result<Membership, StorageFailure> {
    let custom = match row.custom_role_id {
        Some(id) => org_roles::Entity::find_by_id((org.as_uuid(), id))
            .one(conn)
            .await
            .map_err(failure)?,
        None => None,
    };
    convert::membership(row, custom.as_ref())
}

async fn load_user<C: ConnectionTrait>(
    conn: &C,
    user: uuid::Uuid,
) -> Result<users::Model, StorageFailure> {
    users::Entity::find_by_id(user)
        .one(conn)
        .await
        .map_err(failure)?
        .ok_or_else(|| convert::corrupt(format!("membership of unknown user {user}")))
}

/// The search document of a membership (`tenancy::search::document`), from the user's
/// account and the membership's committee and profile.
fn search_doc_of(u: &users::Model, committee: Option<&str>, profile: &serde_json::Value) -> String {
    let children = children_names(profile);
    tenancy::search::document(
        &u.first_name,
        &u.last_name,
        &u.email,
        u.phone.as_deref(),
        committee,
        &children,
    )
}

/// The search document of a membership as `shown` lets a searcher see it
/// (`tenancy::privacy::visible_document`).
pub(crate) fn visible_search_doc(
    u: &users::Model,
    committee: Option<&str>,
    profile: &serde_json::Value,
    shown: &tenancy::privacy::Visibility,
) -> String {
    tenancy::privacy::visible_document(
        shown,
        &u.first_name,
        &u.last_name,
        &u.email,
        u.phone.as_deref(),
        committee,
        &children_names(profile),
    )
}

fn children_names(profile: &serde_json::Value) -> Vec<String> {
    profile
        .get("children")
        .and_then(serde_json::Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(serde_json::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The directory columns of `user`'s membership: the search document, the name and
/// e-mail sort keys and the last sign-in (`ActiveModel` with only those fields set, to be
/// completed by the caller). One read of the account.
pub(crate) async fn member_directory_fields<C: ConnectionTrait>(
    conn: &C,
    user: uuid::Uuid,
    committee: Option<&str>,
    profile: &serde_json::Value,
) -> Result<memberships::ActiveModel, StorageFailure> {
    Ok(directory_fields(
        &load_user(conn, user).await?,
        committee,
        profile,
    ))
}

/// The directory columns of a membership of account `u` (see
/// [`member_directory_fields`]), when the account is at hand.
pub(crate) fn directory_fields(
    u: &users::Model,
    committee: Option<&str>,
    profile: &serde_json::Value,
) -> memberships::ActiveModel {
    memberships::ActiveModel {
        search_doc: Set(search_doc_of(u, committee, profile)),
        sort_name: Set(tenancy::search::sort_name(&u.first_name, &u.last_name)),
        email: Set(u.email.clone()),
        active_at: Set(u.last_active_at),
        ..Default::default()
    }
}

/// Active members whose role counts as admin (built-in or custom).
/// The keys `user` may hand out in `org` now (held through their rank or role, as the
/// permission engine decides it), read in `conn` (the write's own transaction): "who may
/// hand out what" compares against it.
pub(crate) async fn held_keys<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
    user: UserId,
) -> Result<permissions::KeySet, StorageFailure> {
    permissions_store::keys_to_hand_out_in(
        conn,
        org.as_uuid(),
        user.as_uuid(),
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|e| StorageFailure(Box::new(e)))
}

pub(crate) async fn count_active_admins<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
) -> Result<u64, StorageFailure> {
    let builtin = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
        .filter(memberships::Column::Status.eq("active"))
        .filter(memberships::Column::BuiltinRole.eq(BuiltinRole::Admin.as_str()))
        .count(conn)
        .await
        .map_err(failure)?;
    let admin_roles: Vec<uuid::Uuid> = org_roles::Entity::find()
        .filter(org_roles::Column::OrgId.eq(org.as_uuid()))
        .filter(org_roles::Column::CountsAs.eq(BuiltinRole::Admin.as_str()))
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let custom = if admin_roles.is_empty() {
        0
    } else {
        memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org.as_uuid()))
            .filter(memberships::Column::Status.eq("active"))
            .filter(memberships::Column::CustomRoleId.is_in(admin_roles))
            .count(conn)
            .await
            .map_err(failure)?
    };
    Ok(builtin + custom)
}

impl OrgRepository for SeaOrmOrgRepository {
    async fn create_org(
        &self,
        ctx: &AuditContext,
        req: CreateOrgRequest,
    ) -> Result<(Organization, Membership), CreateOrgError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let district_id = match req.school_id {
            Some(school) => {
                // Lock the school row first (a row lock on PostgreSQL, the write lock on
                // SQLite) so a concurrent move of the school cannot leave the new org
                // with the old district.
                let lock = Query::update()
                    .table(schools::Entity)
                    .value(
                        schools::Column::Version,
                        Expr::col(schools::Column::Version),
                    )
                    .and_where(schools::Column::Id.eq(school))
                    .to_owned();
                if txn.execute(&lock).await.map_err(failure)?.rows_affected() == 0 {
                    return Err(CreateOrgError::SchoolNotFound);
                }
                let Some(s) = schools::Entity::find_by_id(school)
                    .one(&txn)
                    .await
                    .map_err(failure)?
                else {
                    return Err(CreateOrgError::SchoolNotFound);
                };
                s.district_id
            }
            None => None,
        };
        let now = now_micros();
        let org_row = organizations::ActiveModel {
            id: Set(OrgId::new().as_uuid()),
            name: Set(req.name.trim().to_owned()),
            kind: Set(convert::org_kind_str(req.kind).to_owned()),
            school_id: Set(req.school_id),
            district_id: Set(district_id),
            signup_code: Set(req.signup_code.as_str().to_owned()),
            branding: Set(serde_json::json!({})),
            status: Set("active".to_owned()),
            version: Set(1),
            permissions_version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CreateOrgError::SignupCodeTaken
            } else {
                failure(e).into()
            }
        })?;
        let member_row = memberships::ActiveModel {
            org_id: Set(org_row.id),
            user_id: Set(req.creator.as_uuid()),
            builtin_role: Set(Some(BuiltinRole::Admin.as_str().to_owned())),
            custom_role_id: Set(None),
            status: Set("active".to_owned()),
            committee: Set(None),
            profile: Set(serde_json::json!({})),
            role_ends_at: Set(None),
            version: Set(1),
            joined_at: Set(now),
            updated_at: Set(now),
            ..member_directory_fields(&txn, req.creator.as_uuid(), None, &serde_json::json!({}))
                .await?
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        let scope = convert::org_scope(&org_row);
        let org = convert::org(org_row)?;
        let membership = convert::membership(member_row, None)?;
        record(
            &txn,
            ctx,
            scope,
            EventType::OrgCreate,
            ("organization", org.id.to_string()),
            ChangeType::Create,
            (None, json(&org)),
        )
        .await?;
        record(
            &txn,
            ctx,
            scope,
            EventType::MemberCreate,
            ("member", membership.user_id.to_string()),
            ChangeType::Create,
            (None, json(&membership)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok((org, membership))
    }

    async fn get_org(&self, id: OrgId) -> Result<Option<Organization>, StorageFailure> {
        organizations::Entity::find_by_id(id.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(convert::org)
            .transpose()
    }

    async fn update_org(
        &self,
        ctx: &AuditContext,
        id: OrgId,
        expected_version: Option<i64>,
        changes: OrgChanges,
    ) -> Result<Organization, UpdateOrgError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = lock_org(&txn, id).await? else {
            return Err(UpdateOrgError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(UpdateOrgError::VersionMismatch {
                current: row.version,
            });
        }
        let scope = convert::org_scope(&row);
        let before = convert::org(row.clone())?;
        let mut active: organizations::ActiveModel = row.clone().into();
        if let Some(name) = changes.name {
            active.name = Set(name.trim().to_owned());
        }
        if let Some(kind) = changes.kind {
            active.kind = Set(convert::org_kind_str(kind).to_owned());
        }
        if let Some(branding) = changes.branding {
            active.branding = Set(branding);
        }
        if let Some(code) = &changes.signup_code {
            active.signup_code = Set(code.as_str().to_owned());
        }
        active.version = Set(row.version + 1);
        active.updated_at = Set(now_micros());
        let updated = active.update(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                UpdateOrgError::SignupCodeTaken
            } else {
                failure(e).into()
            }
        })?;
        let after = convert::org(updated)?;
        let action = if changes.signup_code.is_some() {
            EventType::OrgSignupCodeRotate
        } else {
            EventType::OrgUpdate
        };
        record(
            &txn,
            ctx,
            scope,
            action,
            ("organization", id.to_string()),
            ChangeType::Update,
            (json(&before), json(&after)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(after)
    }

    async fn join_by_code(
        &self,
        ctx: &AuditContext,
        code: &SignupCode,
        user: UserId,
    ) -> Result<(Organization, Membership), JoinOrgError> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(org_row) = organizations::Entity::find()
            .filter(organizations::Column::SignupCode.eq(code.as_str()))
            .filter(organizations::Column::Status.eq("active"))
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(JoinOrgError::UnknownCode);
        };
        // Removed by someone else: the code is not a way back (an admin restores).
        let removed = removed_memberships::Entity::find_by_id((org_row.id, user.as_uuid()))
            .one(&txn)
            .await
            .map_err(failure)?;
        if removed.is_some_and(|r| r.removed_by != Some(user.as_uuid())) {
            return Err(JoinOrgError::RemovedByAdmin);
        }
        let now = now_micros();
        let inserted = memberships::ActiveModel {
            org_id: Set(org_row.id),
            user_id: Set(user.as_uuid()),
            builtin_role: Set(Some(BuiltinRole::Volunteer.as_str().to_owned())),
            custom_role_id: Set(None),
            status: Set("active".to_owned()),
            committee: Set(None),
            profile: Set(serde_json::json!({})),
            role_ends_at: Set(None),
            version: Set(1),
            joined_at: Set(now),
            updated_at: Set(now),
            ..member_directory_fields(&txn, user.as_uuid(), None, &serde_json::json!({})).await?
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                JoinOrgError::AlreadyMember
            } else {
                failure(e).into()
            }
        })?;
        let scope = convert::org_scope(&org_row);
        let membership = convert::membership(inserted, None)?;
        record(
            &txn,
            ctx,
            scope,
            EventType::MemberJoin,
            ("member", user.to_string()),
            ChangeType::Create,
            (None, json(&membership)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok((convert::org(org_row)?, membership))
    }

    async fn get_membership(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<Membership>, StorageFailure> {
        load_membership(self.db.primary(), org, user).await
    }

    async fn get_member(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<(User, Membership)>, StorageFailure> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(m) = load_membership(&txn, org, user).await? else {
            return Ok(None);
        };
        let Some(u) = users::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(None);
        };
        txn.commit().await.map_err(failure)?;
        Ok(Some((convert::user(u)?, m)))
    }

    async fn memberships_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(Organization, Membership)>, StorageFailure> {
        let conn = self.db.primary();
        let rows = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user.as_uuid()))
            .order_by_asc(memberships::Column::JoinedAt)
            .all(conn)
            .await
            .map_err(failure)?;
        // Three round trips whatever the number of memberships: the rows, their orgs,
        // their custom roles (a role id is unique within its org; matched on both).
        let mut orgs = std::collections::HashMap::with_capacity(rows.len());
        let mut roles = std::collections::HashMap::new();
        for chunk in rows.chunks(IN_LIST_CHUNK) {
            let ids: Vec<uuid::Uuid> = chunk.iter().map(|r| r.org_id).collect();
            for org in organizations::Entity::find()
                .filter(organizations::Column::Id.is_in(ids))
                .all(conn)
                .await
                .map_err(failure)?
            {
                orgs.insert(org.id, org);
            }
            let role_ids: Vec<uuid::Uuid> = chunk.iter().filter_map(|r| r.custom_role_id).collect();
            if role_ids.is_empty() {
                continue;
            }
            for role in org_roles::Entity::find()
                .filter(org_roles::Column::Id.is_in(role_ids))
                .all(conn)
                .await
                .map_err(failure)?
            {
                roles.insert((role.org_id, role.id), role);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(org_row) = orgs.remove(&row.org_id) else {
                continue;
            };
            let custom = row
                .custom_role_id
                .and_then(|id| roles.get(&(row.org_id, id)));
            let membership = convert::membership(row, custom)?;
            out.push((convert::org(org_row)?, membership));
        }
        Ok(out)
    }

    async fn change_member(
        &self,
        ctx: &AuditContext,
        req: ChangeMemberRequest,
    ) -> Result<Membership, ChangeMemberError> {
        change_member_in(&self.db, ctx, req, false)
            .await
            .map(|(after, _)| after)
    }

    async fn change_member_answered(
        &self,
        ctx: &AuditContext,
        req: ChangeMemberRequest,
    ) -> Result<ChangedMember, ChangeMemberError> {
        let (_, answer) = change_member_in(&self.db, ctx, req, true).await?;
        answer.ok_or_else(|| {
            ChangeMemberError::Unexpected(convert::corrupt(
                "a member change asked for its answer came back without it".to_owned(),
            ))
        })
    }

    async fn remove_member(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        actor: UserId,
        target: UserId,
    ) -> Result<(), ChangeMemberError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(org_row) = lock_org(&txn, org).await? else {
            return Err(ChangeMemberError::NotFound);
        };
        let actor_m = load_membership(&txn, org, actor)
            .await?
            .ok_or(ChangeMemberError::NotFound)?;
        let target_m = load_membership(&txn, org, target)
            .await?
            .ok_or(ChangeMemberError::NotFound)?;
        let admins = count_active_admins(&txn, org).await?;
        rules::check_member_removal(&actor_m, &target_m, admins)?;
        // Soft removal: the row moves aside (replacing an older removal of the same
        // user), so nothing that decides access can see it, and it can be restored.
        let row = memberships::Entity::find_by_id((org.as_uuid(), target.as_uuid()))
            .one(&txn)
            .await
            .map_err(failure)?
            .ok_or(ChangeMemberError::NotFound)?;
        removed_memberships::Entity::delete_by_id((org.as_uuid(), target.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        removed_memberships::ActiveModel {
            org_id: Set(row.org_id),
            user_id: Set(row.user_id),
            builtin_role: Set(row.builtin_role),
            custom_role_id: Set(row.custom_role_id),
            status: Set(row.status),
            committee: Set(row.committee),
            profile: Set(row.profile),
            role_ends_at: Set(row.role_ends_at),
            version: Set(row.version),
            joined_at: Set(row.joined_at),
            removed_at: Set(now_micros()),
            removed_by: Set(Some(actor.as_uuid())),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        memberships::Entity::delete_by_id((org.as_uuid(), target.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        // Their API keys die with the membership (requests check the creator anyway).
        crate::api_keys::revoke_keys_of_creator(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            org,
            target,
        )
        .await?;
        // Removing oneself is leaving.
        let what = if actor == target {
            EventType::MemberLeave
        } else {
            EventType::MemberRemove
        };
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            what,
            ("member", target.to_string()),
            ChangeType::Delete,
            (json(&target_m), None),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(())
    }

    async fn restore_member(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        actor: UserId,
        target: UserId,
    ) -> Result<Membership, RestoreMemberError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(org_row) = lock_org(&txn, org).await? else {
            return Err(RestoreMemberError::NotFound);
        };
        let actor_m = load_membership(&txn, org, actor)
            .await?
            .ok_or(RestoreMemberError::NotFound)?;
        if load_membership(&txn, org, target).await?.is_some() {
            return Err(RestoreMemberError::AlreadyMember);
        }
        let Some(archived) =
            removed_memberships::Entity::find_by_id((org.as_uuid(), target.as_uuid()))
                .one(&txn)
                .await
                .map_err(failure)?
        else {
            return Err(RestoreMemberError::NotFound);
        };
        let live_user = users::Entity::find_by_id(target.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
            .is_some_and(|u| u.deleted_at.is_none());
        if !live_user {
            return Err(RestoreMemberError::NotFound);
        }
        // The custom role may be gone (→ volunteer) or full (→ refused).
        let custom = match archived.custom_role_id {
            Some(id) => org_roles::Entity::find_by_id((org.as_uuid(), id))
                .one(&txn)
                .await
                .map_err(failure)?,
            None => None,
        };
        let (builtin_role, custom_role_id) = match (&archived.builtin_role, &custom) {
            (_, Some(role)) => {
                let r = convert::role(role.clone())?;
                if let Some(max) = r.max_holders {
                    let holders = memberships::Entity::find()
                        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
                        .filter(memberships::Column::CustomRoleId.eq(role.id))
                        .count(&txn)
                        .await
                        .map_err(failure)?;
                    if holders >= u64::from(max) {
                        return Err(RoleChangeRefused::RoleFull { role: r.name, max }.into());
                    }
                }
                (None, Some(role.id))
            }
            (Some(b), None) => (Some(b.clone()), None),
            (None, None) => (Some(BuiltinRole::Volunteer.as_str().to_owned()), None),
        };
        let now = now_micros();
        // Children come back only while the org keeps children's data.
        let mut archived = archived;
        let children: Vec<tenancy::Child> = archived
            .profile
            .get("children")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        if crate::privacy::load_policy(&txn, org)
            .await?
            .keep_children(children)
            .is_empty()
            && let Some(p) = archived.profile.as_object_mut()
        {
            p.remove("children");
        }
        let inserted = memberships::ActiveModel {
            org_id: Set(archived.org_id),
            user_id: Set(archived.user_id),
            builtin_role: Set(builtin_role),
            custom_role_id: Set(custom_role_id),
            status: Set(archived.status.clone()),
            committee: Set(archived.committee.clone()),
            profile: Set(archived.profile.clone()),
            role_ends_at: Set(archived.role_ends_at),
            version: Set(archived.version + 1),
            joined_at: Set(archived.joined_at),
            updated_at: Set(now),
            ..member_directory_fields(
                &txn,
                archived.user_id,
                archived.committee.as_deref(),
                &archived.profile,
            )
            .await?
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        let restored = convert::membership(inserted, custom.as_ref())?;
        // Restoring gives the role back: nobody restores someone into a role above
        // their own or carrying keys they don't hold.
        rules::check_assignable_role(&actor_m, &restored.role, held_keys(&txn, org, actor).await?)?;
        removed_memberships::Entity::delete_by_id((org.as_uuid(), target.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::MemberRestore,
            ("member", target.to_string()),
            ChangeType::Create,
            (None, json(&restored)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(restored)
    }

    async fn list_removed(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Vec<(User, RemovedMember)>, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let mut q = removed_memberships::Entity::find()
            .filter(removed_memberships::Column::OrgId.eq(org.as_uuid()));
        if let Some(after) = after {
            q = q.filter(removed_memberships::Column::UserId.gt(after.as_uuid()));
        }
        let rows = q
            .order_by_asc(removed_memberships::Column::UserId)
            .limit(limit)
            .all(&txn)
            .await
            .map_err(failure)?;
        let roles = org_roles::Entity::find()
            .filter(org_roles::Column::OrgId.eq(org.as_uuid()))
            .all(&txn)
            .await
            .map_err(failure)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(u) = users::Entity::find_by_id(r.user_id)
                .one(&txn)
                .await
                .map_err(failure)?
            else {
                continue;
            };
            // A deleted custom role reads as volunteer, as a restore would make it.
            let custom = r
                .custom_role_id
                .and_then(|id| roles.iter().find(|x| x.id == id));
            let builtin_role = if r.custom_role_id.is_some() && custom.is_none() {
                Some(BuiltinRole::Volunteer.as_str().to_owned())
            } else {
                r.builtin_role.clone()
            };
            let as_member = memberships::Model {
                org_id: r.org_id,
                user_id: r.user_id,
                builtin_role,
                custom_role_id: custom.map(|c| c.id),
                status: r.status.clone(),
                committee: r.committee.clone(),
                profile: r.profile.clone(),
                role_ends_at: r.role_ends_at,
                version: r.version,
                joined_at: r.joined_at,
                updated_at: r.removed_at,
                search_doc: String::new(),
                sort_name: String::new(),
                email: String::new(),
                active_at: None,
                details_confirmed_at: None,
            };
            out.push((
                convert::user(u)?,
                RemovedMember {
                    membership: convert::membership(as_member, custom)?,
                    removed_at: r.removed_at,
                    removed_by: r.removed_by.map(UserId::from_uuid),
                },
            ));
        }
        txn.commit().await.map_err(failure)?;
        Ok(out)
    }

    async fn create_role(
        &self,
        ctx: &AuditContext,
        req: CreateRoleRequest,
    ) -> Result<CustomRole, CreateRoleError> {
        let name = req.name.trim().to_owned();
        if crate::roles::reserved_name(&name) {
            return Err(CreateRoleError::ReservedName);
        }
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(org_row) = lock_org(&txn, req.org_id).await? else {
            return Err(CreateRoleError::OrgNotFound);
        };
        if crate::roles::name_taken(&txn, req.org_id, &name, None).await? {
            return Err(CreateRoleError::DuplicateName);
        }
        let now = now_micros();
        let row = org_roles::ActiveModel {
            org_id: Set(req.org_id.as_uuid()),
            id: Set(uuid::Uuid::now_v7()),
            name: Set(name),
            counts_as: Set(req.counts_as.as_str().to_owned()),
            extra_keys: Set(serde_json::to_value(req.extra_keys).unwrap_or_default()),
            max_holders: Set(req
                .max_holders
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CreateRoleError::DuplicateName
            } else {
                failure(e).into()
            }
        })?;
        let role = convert::role(row)?;
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::RoleCreate,
            ("role", role.id.0.to_string()),
            ChangeType::Create,
            (None, json(&role)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(role)
    }

    async fn get_role(
        &self,
        org: OrgId,
        id: tenancy::RoleId,
    ) -> Result<Option<CustomRole>, StorageFailure> {
        crate::roles::get_role(&self.db, org, id).await
    }

    async fn update_role(
        &self,
        ctx: &AuditContext,
        req: tenancy::ports::UpdateRoleRequest,
    ) -> Result<CustomRole, tenancy::ports::UpdateRoleError> {
        crate::roles::update_role(&self.db, ctx, req).await
    }

    async fn delete_role(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        actor: UserId,
        id: tenancy::RoleId,
        expected_version: i64,
    ) -> Result<(), tenancy::ports::DeleteRoleError> {
        crate::roles::delete_role(&self.db, ctx, org, actor, id, expected_version).await
    }

    async fn delete_org(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        expected_version: i64,
    ) -> Result<tenancy::ports::DeletedOrg, tenancy::ports::DeleteOrgError> {
        crate::roles::delete_org(&self.db, ctx, org, expected_version).await
    }

    async fn list_roles(&self, org: OrgId) -> Result<Vec<CustomRole>, StorageFailure> {
        org_roles::Entity::find()
            .filter(org_roles::Column::OrgId.eq(org.as_uuid()))
            .order_by_asc(org_roles::Column::Name)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(convert::role)
            .collect()
    }

    async fn end_expired_terms(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(OrgId, UserId)>, StorageFailure> {
        let due = memberships::Entity::find()
            .filter(memberships::Column::RoleEndsAt.lte(now))
            .all(self.db.primary())
            .await
            .map_err(failure)?;
        let system = AuditContext {
            actor: audit::Actor::System,
            request: audit::RequestMeta::default(),
        };
        let mut ended = Vec::new();
        for row in due {
            let (org, user) = (OrgId::from_uuid(row.org_id), UserId::from_uuid(row.user_id));
            let txn = self.db.begin_write().await.map_err(failure)?;
            let Some(org_row) = lock_org(&txn, org).await? else {
                continue;
            };
            let Some(m) = load_membership(&txn, org, user).await? else {
                continue;
            };
            if !m.term_ended(now) {
                continue;
            }
            let admins = count_active_admins(&txn, org).await?;
            if rules::check_last_admin(&m, admins).is_err() {
                tracing::warn!(%org, %user, "officer term ended for the last admin; keeping the role until another admin exists");
                continue;
            }
            let mut active: memberships::ActiveModel = row.into();
            active.builtin_role = Set(Some(BuiltinRole::Volunteer.as_str().to_owned()));
            active.custom_role_id = Set(None);
            active.role_ends_at = Set(None);
            active.version = Set(m.version + 1);
            active.updated_at = Set(now_micros());
            let updated = active.update(&txn).await.map_err(failure)?;
            let after = convert::membership(updated, None)?;
            record(
                &txn,
                &system,
                convert::org_scope(&org_row),
                EventType::MemberTermEnd,
                ("member", user.to_string()),
                ChangeType::Update,
                (json(&m), json(&after)),
            )
            .await?;
            txn.commit().await.map_err(failure)?;
            ended.push((org, user));
        }
        Ok(ended)
    }
}

/// A member change in one transaction (see [`OrgRepository::change_member`]); with
/// `answer`, the member as it left them is read before the commit.
async fn change_member_in(
    db: &Database,
    ctx: &AuditContext,
    req: ChangeMemberRequest,
    answer: bool,
) -> Result<(Membership, Option<ChangedMember>), ChangeMemberError> {
    let txn = db
        .begin_for_org(req.org_id.as_uuid())
        .await
        .map_err(failure)?;
    let Some(org_row) = lock_org(&txn, req.org_id).await? else {
        return Err(ChangeMemberError::NotFound);
    };
    // The actor's and the target's rows with their accounts, in one read (one row when
    // a member changes themselves): the memberships for the rules, the target's model
    // for the update, its account for the search document and the answer.
    let mut rows = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(req.org_id.as_uuid()))
        .filter(memberships::Column::UserId.is_in([req.actor.as_uuid(), req.target.as_uuid()]))
        .find_also_related(users::Entity)
        .all(&txn)
        .await
        .map_err(failure)?;
    let actor_row = rows
        .iter()
        .find(|(m, _)| m.user_id == req.actor.as_uuid())
        .map(|(m, _)| m.clone())
        .ok_or(ChangeMemberError::NotFound)?;
    let (target_row, mut target_user) = rows
        .iter()
        .position(|(m, _)| m.user_id == req.target.as_uuid())
        .map(|i| rows.swap_remove(i))
        .ok_or(ChangeMemberError::NotFound)?;
    let actor = membership_of_row(&txn, req.org_id, actor_row).await?;
    let target = membership_of_row(&txn, req.org_id, target_row.clone()).await?;
    if let Some(v) = req.expected_version
        && v != target.version
    {
        return Err(ChangeMemberError::VersionMismatch {
            current: target.version,
        });
    }
    let mut active: memberships::ActiveModel = target_row.into();
    let mut custom_row = None;
    let mut new_role_checked = None;
    if let Some(choice) = &req.role {
        let (new_role, holders) = match choice {
            RoleChoice::Builtin(r) => (RoleAssignment::builtin(*r), None),
            RoleChoice::Custom(id) => {
                let row = org_roles::Entity::find_by_id((req.org_id.as_uuid(), id.0))
                    .one(&txn)
                    .await
                    .map_err(failure)?
                    .ok_or(ChangeMemberError::UnknownRole)?;
                let role = convert::role(row.clone())?;
                let holders = match role.max_holders {
                    Some(max) => {
                        let n = memberships::Entity::find()
                            .filter(memberships::Column::OrgId.eq(req.org_id.as_uuid()))
                            .filter(memberships::Column::CustomRoleId.eq(id.0))
                            .count(&txn)
                            .await
                            .map_err(failure)?;
                        Some((n, max))
                    }
                    None => None,
                };
                custom_row = Some(row);
                (
                    RoleAssignment::Custom {
                        id: role.id,
                        name: role.name,
                        counts_as: role.counts_as,
                        extra_keys: role.extra_keys,
                    },
                    holders,
                )
            }
        };
        new_role_checked = Some((new_role, holders));
        match choice {
            RoleChoice::Builtin(r) => {
                active.builtin_role = Set(Some(r.as_str().to_owned()));
                active.custom_role_id = Set(None);
            }
            RoleChoice::Custom(id) => {
                active.builtin_role = Set(None);
                active.custom_role_id = Set(Some(id.0));
            }
        }
    }
    // One check for the whole change (role, status, term, profile), against the
    // keys the actor holds now.
    let holds = if new_role_checked.is_some() {
        held_keys(&txn, req.org_id, req.actor).await?
    } else {
        permissions::KeySet::new()
    };
    let change = rules::MemberChange {
        role: new_role_checked
            .as_ref()
            .map(|(role, holders)| rules::NewRole {
                role,
                holders: *holders,
            }),
        status: req.status,
        role_ends_at: req.role_ends_at,
        profile: req.committee.is_some() || req.children.is_some(),
    };
    // Counted only when the rules read it (a profile edit, the common change, does
    // not); under the org's lock either way.
    let admins = if change.may_end_admin_standing() {
        count_active_admins(&txn, req.org_id).await?
    } else {
        0
    };
    rules::check_member_change(&actor, holds, &target, &change, admins)?;
    // Read at most once, for the rules or the answer.
    let mut policy = None;
    if let Some(children) = &req.children {
        let loaded = crate::privacy::load_policy(&txn, req.org_id).await?;
        loaded.admit_children(children)?;
        policy = Some(loaded);
    }
    let account =
        crate::member_account::apply(db, &txn, req.org_id, &actor, &target, &req.account).await?;
    if let Some(status) = req.status {
        active.status = Set(convert::status_str(status).to_owned());
    }
    if let Some(ends) = req.role_ends_at {
        active.role_ends_at = Set(ends);
    }
    if let Some(committee) = &req.committee {
        active.committee = Set(committee.clone());
    }
    if let Some(children) = &req.children {
        let mut profile = match active.profile.take() {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        profile.insert("children".to_owned(), serde_json::json!(children));
        active.profile = Set(serde_json::Value::Object(profile));
    }
    // The account as stored now, when this change read it.
    let mut user_row = account.as_ref().map(|changed| changed.user.clone());
    if req.committee.is_some() || req.children.is_some() || account.is_some() {
        let committee = match &active.committee {
            sea_orm::ActiveValue::Set(c) | sea_orm::ActiveValue::Unchanged(c) => c.clone(),
            sea_orm::ActiveValue::NotSet => None,
        };
        let profile = match &active.profile {
            sea_orm::ActiveValue::Set(p) | sea_orm::ActiveValue::Unchanged(p) => p.clone(),
            sea_orm::ActiveValue::NotSet => serde_json::json!({}),
        };
        if let Some(changed) = &account {
            // Names and address sort and find the member too.
            let fresh = directory_fields(&changed.user, committee.as_deref(), &profile);
            active.search_doc = fresh.search_doc;
            active.sort_name = fresh.sort_name;
            active.email = fresh.email;
        } else {
            let u = match target_user.take() {
                Some(u) => u,
                None => load_user(&txn, req.target.as_uuid()).await?,
            };
            active.search_doc = Set(search_doc_of(&u, committee.as_deref(), &profile));
            user_row = Some(u);
        }
    }
    active.version = Set(target.version + 1);
    active.updated_at = Set(now_micros());
    let updated = active.update(&txn).await.map_err(failure)?;
    let custom = match (custom_row, updated.custom_role_id) {
        (Some(row), _) => Some(row),
        (None, Some(id)) => org_roles::Entity::find_by_id((req.org_id.as_uuid(), id))
            .one(&txn)
            .await
            .map_err(failure)?,
        (None, None) => None,
    };
    let after = convert::membership(updated, custom.as_ref())?;
    if target.role.rank() == BuiltinRole::Admin && after.role.rank() != BuiltinRole::Admin {
        // API keys are an admin's: they die with the creator's admin rights.
        crate::api_keys::revoke_keys_of_creator(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            req.org_id,
            req.target,
        )
        .await?;
    }
    record(
        &txn,
        ctx,
        convert::org_scope(&org_row),
        EventType::MemberUpdate,
        ("member", req.target.to_string()),
        ChangeType::Update,
        (json(&target), json(&after)),
    )
    .await?;
    if let Some(changed) = &account {
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::UserProfileUpdate,
            ("user", req.target.to_string()),
            ChangeType::Update,
            (Some(changed.before.clone()), Some(changed.after.clone())),
        )
        .await?;
    }
    let answered = if answer {
        let user = match user_row.or(target_user) {
            Some(u) => u,
            None => load_user(&txn, req.target.as_uuid()).await?,
        };
        let policy = match policy {
            Some(p) => p,
            None => crate::privacy::load_policy(&txn, req.org_id).await?,
        };
        Some(ChangedMember {
            user: convert::user(user)?,
            membership: after.clone(),
            policy,
            choices: crate::privacy::load_own(&txn, req.org_id, req.target).await?,
        })
    } else {
        None
    };
    txn.commit().await.map_err(failure)?;
    if let Some(changed) = account
        && changed.elsewhere
        && let Err(e) =
            crate::member_account::refresh_elsewhere(db, &changed.user, req.org_id).await
    {
        // The account is right everywhere; only other orgs' sort and search columns
        // lag until the member's next change there.
        tracing::warn!(error = %e, user = %req.target, "could not refresh the member's directory columns in their other orgs");
    }
    Ok((after, answered))
}
