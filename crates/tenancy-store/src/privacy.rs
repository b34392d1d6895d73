//! [`PrivacyRepository`] on SeaORM: directory policies, members' privacy choices (both
//! audited in their transaction) and data-access activity (one insert per read).

use audit::{ChangeType, EventType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::privacy::{
    AccessLogQuery, ChildrenErased, Choice, ConfirmDetailsError, ConfirmationCycle,
    DirectoryPolicy, Listing, NewChoices, PolicyChange, PrivacyChoices, PrivacyRepository,
    RecordAccess, SetChoicesError, SetPolicyError,
};
use tenancy::{OrgId, UserId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::convert::{self, corrupt, failure, record};
use crate::entity::{
    data_access_log, directory_policies, invitations, member_privacy, memberships,
    removed_memberships, users,
};
use crate::orgs::lock_org;
use persistence::{Database, now_micros};

/// [`PrivacyRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmPrivacy {
    db: Database,
}

impl SeaOrmPrivacy {
    /// A repository over the given database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn rfc3339(t: Option<OffsetDateTime>) -> serde_json::Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

fn policy_json(p: &DirectoryPolicy) -> serde_json::Value {
    serde_json::json!({
        "phone": p.phone,
        "email": p.email,
        "committee": p.committee,
        "children_and_grades": p.children_and_grades,
        "listing": p.listing.as_str(),
        "children_data": p.children_data,
        "confirm_cycle": p.confirm_cycle.map(|c| serde_json::json!({
            "starts_on": c.starts_on.to_string(),
            "confirm_by": c.confirm_by.to_string(),
        })),
        "version": p.version,
        "updated_at": rfc3339(p.updated_at),
    })
}

fn choices_json(c: &PrivacyChoices) -> serde_json::Value {
    let name = |c: Option<Choice>| c.map(Choice::as_str);
    serde_json::json!({
        "listing": name(c.listing),
        "phone": name(c.phone),
        "email": name(c.email),
        "committee": name(c.committee),
        "children_and_grades": name(c.children_and_grades),
        "notice_version": c.notice_version,
        "chosen_at": rfc3339(c.chosen_at),
        "version": c.version,
    })
}

fn policy_of(row: directory_policies::Model) -> Result<DirectoryPolicy, StorageFailure> {
    let confirm_cycle = match (row.confirm_starts_on, row.confirm_by) {
        (Some(starts_on), Some(confirm_by)) => Some(
            ConfirmationCycle::new(starts_on, confirm_by)
                .map_err(|e| corrupt(format!("directory_policies row {}: {e}", row.org_id)))?,
        ),
        (None, None) => None,
        _ => {
            return Err(corrupt(format!(
                "directory_policies row {}: half a confirmation cycle",
                row.org_id
            )));
        }
    };
    Ok(DirectoryPolicy {
        children_data: row.children_data,
        confirm_cycle,
        phone: row.phone,
        email: row.email,
        committee: row.committee,
        children_and_grades: row.children_and_grades,
        listing: Listing::parse(&row.listing).ok_or_else(|| {
            corrupt(format!(
                "directory_policies row {}: bad listing",
                row.org_id
            ))
        })?,
        version: row.version,
        updated_at: Some(row.updated_at),
    })
}

pub(crate) fn choices_of(row: member_privacy::Model) -> Result<PrivacyChoices, StorageFailure> {
    let parse = |v: &Option<String>| -> Result<Option<Choice>, StorageFailure> {
        v.as_deref()
            .map(|s| {
                Choice::parse(s).ok_or_else(|| {
                    corrupt(format!(
                        "member_privacy row ({}, {}): bad choice {s:?}",
                        row.org_id, row.user_id
                    ))
                })
            })
            .transpose()
    };
    Ok(PrivacyChoices {
        listing: parse(&row.listing)?,
        phone: parse(&row.phone)?,
        email: parse(&row.email)?,
        committee: parse(&row.committee)?,
        children_and_grades: parse(&row.children_and_grades)?,
        notice_version: row.notice_version,
        chosen_at: Some(row.chosen_at),
        version: row.version,
    })
}

/// The org's directory policy (the defaults when it never set one).
pub(crate) async fn load_policy<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
) -> Result<DirectoryPolicy, StorageFailure> {
    directory_policies::Entity::find_by_id(org.as_uuid())
        .one(conn)
        .await
        .map_err(failure)?
        .map_or_else(|| Ok(DirectoryPolicy::default()), policy_of)
}

/// The choices of those of `users` who made any, in `org`.
pub(crate) async fn load_choices<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
    users: Option<Vec<Uuid>>,
) -> Result<Vec<(UserId, PrivacyChoices)>, StorageFailure> {
    let mut q =
        member_privacy::Entity::find().filter(member_privacy::Column::OrgId.eq(org.as_uuid()));
    if let Some(users) = users {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        q = q.filter(member_privacy::Column::UserId.is_in(users));
    }
    q.all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|row| Ok((UserId::from_uuid(row.user_id), choices_of(row)?)))
        .collect()
}

/// `user`'s choices in `org` (the defaults if they made none).
pub(crate) async fn load_own<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
    user: UserId,
) -> Result<PrivacyChoices, StorageFailure> {
    member_privacy::Entity::find_by_id((org.as_uuid(), user.as_uuid()))
        .one(conn)
        .await
        .map_err(failure)?
        .map_or_else(|| Ok(PrivacyChoices::default()), choices_of)
}

/// The number of children in a stored profile (`{"children": [...]}`).
fn children_in(profile: &serde_json::Value) -> u64 {
    profile
        .get("children")
        .and_then(serde_json::Value::as_array)
        .map_or(0, |c| c.len() as u64)
}

/// `profile` without its children.
fn without_children(profile: &serde_json::Value) -> serde_json::Value {
    let mut p = profile.clone();
    if let Some(map) = p.as_object_mut() {
        map.remove("children");
    }
    p
}

/// Deletes the children stored for `org`: its members' (their search documents
/// recomputed without them), its removed members' and its invitations'. Inside the
/// caller's transaction (which holds the org's row lock, so no write of the org adds
/// any meanwhile).
async fn erase_children<C: ConnectionTrait>(
    txn: &C,
    org: OrgId,
) -> Result<ChildrenErased, StorageFailure> {
    let mut erased = ChildrenErased::default();
    let members = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org.as_uuid()))
        .find_also_related(users::Entity)
        .all(txn)
        .await
        .map_err(failure)?;
    for (m, u) in members {
        let n = children_in(&m.profile);
        if n == 0 && m.profile.get("children").is_none() {
            continue;
        }
        let profile = without_children(&m.profile);
        // A changed record: its version moves (ETags, a concurrent edit gets 412).
        let mut active = memberships::ActiveModel {
            org_id: Set(m.org_id),
            user_id: Set(m.user_id),
            profile: Set(profile.clone()),
            version: Set(m.version + 1),
            updated_at: Set(now_micros()),
            ..Default::default()
        };
        if let Some(u) = &u {
            active.search_doc =
                crate::orgs::directory_fields(u, m.committee.as_deref(), &profile).search_doc;
        }
        active.update(txn).await.map_err(failure)?;
        if n > 0 {
            erased.members += 1;
            erased.children += n;
        }
    }
    let removed = removed_memberships::Entity::find()
        .filter(removed_memberships::Column::OrgId.eq(org.as_uuid()))
        .all(txn)
        .await
        .map_err(failure)?;
    for m in removed {
        let n = children_in(&m.profile);
        if n == 0 && m.profile.get("children").is_none() {
            continue;
        }
        removed_memberships::ActiveModel {
            org_id: Set(m.org_id),
            user_id: Set(m.user_id),
            profile: Set(without_children(&m.profile)),
            version: Set(m.version + 1),
            ..Default::default()
        }
        .update(txn)
        .await
        .map_err(failure)?;
        if n > 0 {
            erased.removed_members += 1;
            erased.children += n;
        }
    }
    let invited = invitations::Entity::find()
        .filter(invitations::Column::OrgId.eq(org.as_uuid()))
        .all(txn)
        .await
        .map_err(failure)?;
    for i in invited {
        let n = children_in(&i.profile);
        if n == 0 && i.profile.get("children").is_none() {
            continue;
        }
        invitations::ActiveModel {
            org_id: Set(i.org_id),
            id: Set(i.id),
            profile: Set(without_children(&i.profile)),
            version: Set(i.version + 1),
            updated_at: Set(now_micros()),
            ..Default::default()
        }
        .update(txn)
        .await
        .map_err(failure)?;
        if n > 0 {
            erased.invitations += 1;
            erased.children += n;
        }
    }
    Ok(erased)
}

fn access_of(row: data_access_log::Model) -> RecordAccess {
    RecordAccess {
        id: row.id,
        org_id: OrgId::from_uuid(row.org_id),
        accessor: UserId::from_uuid(row.accessor_id),
        subject: UserId::from_uuid(row.subject_id),
        what: row.what,
        at: row.at,
    }
}

impl PrivacyRepository for SeaOrmPrivacy {
    async fn policy(&self, org: OrgId) -> Result<DirectoryPolicy, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let policy = load_policy(&txn, org).await?;
        txn.commit().await.map_err(failure)?;
        Ok(policy)
    }

    async fn set_policy(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        expected_version: i64,
        change: PolicyChange,
    ) -> Result<DirectoryPolicy, SetPolicyError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(org_row) = lock_org(&txn, org).await? else {
            return Err(SetPolicyError::NotFound);
        };
        let before = load_policy(&txn, org).await?;
        if before.version != expected_version {
            return Err(SetPolicyError::VersionMismatch {
                current: before.version,
            });
        }
        let after = change.apply(&before, now_micros());
        let row = directory_policies::ActiveModel {
            org_id: Set(org.as_uuid()),
            phone: Set(after.phone),
            email: Set(after.email),
            committee: Set(after.committee),
            children_and_grades: Set(after.children_and_grades),
            listing: Set(after.listing.as_str().to_owned()),
            children_data: Set(after.children_data),
            confirm_starts_on: Set(after.confirm_cycle.map(|c| c.starts_on)),
            confirm_by: Set(after.confirm_cycle.map(|c| c.confirm_by)),
            version: Set(after.version),
            updated_at: Set(after.updated_at.unwrap_or_else(now_micros)),
            updated_by: Set(match ctx.actor {
                audit::Actor::User(u) => Some(u),
                _ => None,
            }),
        };
        if before.version == 0 {
            row.insert(&txn).await.map_err(failure)?;
        } else {
            row.update(&txn).await.map_err(failure)?;
        }
        let mut new_value = policy_json(&after);
        if change.switches_children_off(&before) {
            // Deleted with the switch, in its transaction; the event counts them and
            // names no child.
            let erased = erase_children(&txn, org).await?;
            new_value["children_erased"] =
                serde_json::to_value(erased).map_err(|e| StorageFailure(Box::new(e)))?;
        }
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::OrgUpdate,
            ("directory_policy", org.to_string()),
            ChangeType::Update,
            (Some(policy_json(&before)), Some(new_value)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(after)
    }

    async fn choices(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<(DirectoryPolicy, PrivacyChoices)>, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let member = memberships::Entity::find_by_id((org.as_uuid(), user.as_uuid()))
            .select_only()
            .column(memberships::Column::UserId)
            .into_tuple::<Uuid>()
            .one(&txn)
            .await
            .map_err(failure)?;
        if member.is_none() {
            return Ok(None);
        }
        let policy = load_policy(&txn, org).await?;
        let choices = load_own(&txn, org, user).await?;
        txn.commit().await.map_err(failure)?;
        Ok(Some((policy, choices)))
    }

    async fn set_choices(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        user: UserId,
        expected_version: Option<i64>,
        new: NewChoices,
    ) -> Result<(DirectoryPolicy, PrivacyChoices), SetChoicesError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(org_row) = crate::entity::organizations::Entity::find_by_id(org.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(SetChoicesError::NotFound);
        };
        let member = memberships::Entity::find_by_id((org.as_uuid(), user.as_uuid()))
            .one(&txn)
            .await
            .map_err(failure)?;
        if member.is_none() {
            return Err(SetChoicesError::NotFound);
        }
        let policy = load_policy(&txn, org).await?;
        let before = load_own(&txn, org, user).await?;
        if let Some(v) = expected_version
            && v != before.version
        {
            return Err(SetChoicesError::VersionMismatch {
                current: before.version,
            });
        }
        let now = now_micros();
        let after = new.record(&policy, &before, now)?;
        let name = |c: Option<Choice>| c.map(|c| c.as_str().to_owned());
        let row = member_privacy::ActiveModel {
            org_id: Set(org.as_uuid()),
            user_id: Set(user.as_uuid()),
            listing: Set(name(after.listing)),
            phone: Set(name(after.phone)),
            email: Set(name(after.email)),
            committee: Set(name(after.committee)),
            children_and_grades: Set(name(after.children_and_grades)),
            notice_version: Set(after.notice_version),
            chosen_at: Set(now),
            version: Set(after.version),
        };
        if before.version == 0 {
            row.insert(&txn).await.map_err(failure)?;
        } else {
            row.update(&txn).await.map_err(failure)?;
        }
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::MemberUpdate,
            ("member_privacy", user.to_string()),
            ChangeType::Update,
            (Some(choices_json(&before)), Some(choices_json(&after))),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok((policy, after))
    }

    async fn confirm_details(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        user: UserId,
    ) -> Result<(DirectoryPolicy, tenancy::Membership), ConfirmDetailsError> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        let Some(org_row) = crate::entity::organizations::Entity::find_by_id(org.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(ConfirmDetailsError::NotFound);
        };
        let Some(before) = crate::orgs::load_membership(&txn, org, user).await? else {
            return Err(ConfirmDetailsError::NotFound);
        };
        let now = now_micros();
        memberships::ActiveModel {
            org_id: Set(org.as_uuid()),
            user_id: Set(user.as_uuid()),
            details_confirmed_at: Set(Some(now)),
            version: Set(before.version + 1),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await
        .map_err(failure)?;
        let policy = load_policy(&txn, org).await?;
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::MemberUpdate,
            ("member", user.to_string()),
            ChangeType::Update,
            (
                Some(serde_json::json!({ "details_confirmed_at": rfc3339(before.details_confirmed_at) })),
                Some(serde_json::json!({ "details_confirmed_at": rfc3339(Some(now)) })),
            ),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok((
            policy,
            tenancy::Membership {
                details_confirmed_at: Some(now),
                version: before.version + 1,
                ..before
            },
        ))
    }

    async fn record_access(
        &self,
        org: OrgId,
        accessor: UserId,
        subject: UserId,
        what: &str,
    ) -> Result<(), StorageFailure> {
        let txn = self
            .db
            .begin_for_org(org.as_uuid())
            .await
            .map_err(failure)?;
        data_access_log::ActiveModel {
            org_id: Set(org.as_uuid()),
            id: Set(Uuid::now_v7()),
            accessor_id: Set(accessor.as_uuid()),
            subject_id: Set(subject.as_uuid()),
            what: Set(what.to_owned()),
            at: Set(now_micros()),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        txn.commit().await.map_err(failure)
    }

    async fn org_access_log(
        &self,
        org: OrgId,
        query: &AccessLogQuery,
    ) -> Result<Vec<RecordAccess>, StorageFailure> {
        let txn = self.db.read_for_org(org.as_uuid()).await.map_err(failure)?;
        let mut q = data_access_log::Entity::find()
            .filter(data_access_log::Column::OrgId.eq(org.as_uuid()));
        if let Some(subject) = query.subject {
            q = q.filter(data_access_log::Column::SubjectId.eq(subject.as_uuid()));
        }
        if let Some(before) = query.before {
            q = q.filter(data_access_log::Column::Id.lt(before));
        }
        let rows = q
            .order_by_desc(data_access_log::Column::Id)
            .limit(query.limit)
            .all(&txn)
            .await
            .map_err(failure)?;
        txn.commit().await.map_err(failure)?;
        Ok(rows.into_iter().map(access_of).collect())
    }

    async fn own_access_log(
        &self,
        subject: UserId,
        query: &AccessLogQuery,
    ) -> Result<Vec<RecordAccess>, StorageFailure> {
        // Across orgs: the system scope (the member reads reads of their own records).
        let mut q = data_access_log::Entity::find()
            .filter(data_access_log::Column::SubjectId.eq(subject.as_uuid()));
        if let Some(before) = query.before {
            q = q.filter(data_access_log::Column::Id.lt(before));
        }
        let rows = q
            .order_by_desc(data_access_log::Column::Id)
            .limit(query.limit)
            .all(self.db.reader())
            .await
            .map_err(failure)?;
        Ok(rows.into_iter().map(access_of).collect())
    }
}
