//! [`PrivacyRepository`] on SeaORM: directory policies, members' privacy choices (both
//! audited in their transaction) and data-access activity (one insert per read).

use audit::{ChangeType, EventType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::privacy::{
    AccessLogQuery, Choice, DirectoryPolicy, Listing, NewChoices, PolicyChange, PrivacyChoices,
    PrivacyRepository, RecordAccess, SetChoicesError, SetPolicyError,
};
use tenancy::{OrgId, UserId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::convert::{self, corrupt, failure, record};
use crate::entity::{data_access_log, directory_policies, member_privacy, memberships};
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
    Ok(DirectoryPolicy {
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

async fn load_own<C: ConnectionTrait>(
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
        record(
            &txn,
            ctx,
            convert::org_scope(&org_row),
            EventType::OrgUpdate,
            ("directory_policy", org.to_string()),
            ChangeType::Update,
            (Some(policy_json(&before)), Some(policy_json(&after))),
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
