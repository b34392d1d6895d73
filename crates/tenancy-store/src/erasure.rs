//! Erasure of a person's data from the tenancy tables and the audit trail, inside the
//! caller's write transaction (the app's erasure service also clears jobs and mail in
//! the same transaction, then commits).
//!
//! What goes: memberships (and their search documents), removed memberships, privacy
//! choices, data-access entries about them, invitations to their address, their direct
//! grants, their API keys (revoked); for the account, also sessions, refresh tokens,
//! second factors, recovery codes, sign-in challenges, e-mailed links, district roles and
//! the `users` row itself. In the audit trail, the per-person keys of their sealed
//! fields (and of the invitations to them) are destroyed. Rows that name them only as
//! the actor of someone else's change (who granted, who invited, who read a record)
//! keep the bare id, which no longer leads to anyone.

use audit::{ChainId, ChangeType, DataSubject, ErasureScope as AuditScope, EventType};
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Value};
use tenancy::erasure::{
    EraseError, ErasedCounts, ErasureFacts, ErasureReason, ErasureReceipt, ErasureScope,
    RetentionDays, decide,
};
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::{OrgId, UserId, rules};
use uuid::Uuid;

use crate::convert::{self, failure, record_all};
use crate::entity::{
    account_tokens, data_access_log, invitations, member_privacy, memberships, recovery_codes,
    refresh_tokens, removed_memberships, sessions, sign_in_challenges, totp_credentials, users,
};
use crate::orgs::{count_active_admins, load_membership, lock_org};
use persistence::{Database, WriteTx};

/// An erasure to carry out.
#[derive(Debug, Clone, Copy)]
pub struct ErasureRequest<'a> {
    /// Who asks (recorded as the actor of the erasure's events).
    pub ctx: &'a AuditContext,
    /// Whose data, how far.
    pub scope: ErasureScope,
    /// Who asks (`None`: the system, a scheduled erasure).
    pub actor: Option<UserId>,
    /// Whose data.
    pub subject: UserId,
    /// Why (an admin's erasure).
    pub reason: Option<&'a ErasureReason>,
}

/// The person being erased, as other stores need them.
#[derive(Debug, Clone)]
pub struct ErasedPerson {
    /// Their id.
    pub user: UserId,
    /// Their address.
    pub email: Option<String>,
    /// The orgs whose records of them are erased.
    pub orgs: Vec<OrgId>,
    /// Whether the account goes too.
    pub account: bool,
}

/// Another store's part of an erasure (jobs, mail), run in the erasure's transaction
/// after the tenancy tables and before the account row goes.
pub trait ErasureParticipant: Send + Sync {
    /// Erases what this store holds about `person`, adding to `counts`.
    fn erase_in(
        &self,
        tx: &WriteTx,
        person: &ErasedPerson,
        counts: &mut ErasedCounts,
    ) -> impl std::future::Future<Output = Result<(), StorageFailure>> + Send;
}

/// What an erasure did, and what is left to do outside the database.
#[derive(Debug, Clone)]
pub struct ErasureOutcome {
    /// The receipt.
    pub receipt: ErasureReceipt,
    /// The erased person.
    pub person: ErasedPerson,
    /// Their sessions, ended by the erasure (forget them on every instance).
    pub sessions: Vec<Uuid>,
}

/// Carries out an erasure as one unit of work: the rule on what is stored, then every
/// org's record, `others`' part, the account (when it goes) and the audit keys, with
/// `member.erase` / `user.erase` recorded; then commits and empties SQLite's WAL.
///
/// # Errors
/// [`EraseError::Refused`] by the rule (nothing erased), or storage failures (rolled
/// back, nothing erased).
pub async fn erase_person<P: ErasureParticipant>(
    db: &Database,
    req: ErasureRequest<'_>,
    others: &P,
) -> Result<ErasureOutcome, EraseError> {
    let tx = db.begin_write().await.map_err(failure)?;
    let on_record = person_on_record(&tx, req.subject).await?;
    let account = decide(req.scope, req.actor, req.subject, &on_record.facts)?;
    let person = ErasedPerson {
        user: req.subject,
        email: on_record.email.clone(),
        orgs: match req.scope {
            // Every org holding a record of them, current or kept for a restore.
            ErasureScope::Account => {
                let mut orgs = on_record.facts.member_of.clone();
                orgs.extend(
                    on_record
                        .facts
                        .removed_from
                        .iter()
                        .filter(|o| !on_record.facts.member_of.contains(o)),
                );
                orgs
            }
            ErasureScope::Org(org) | ErasureScope::Retention(org) => vec![org],
        },
        account,
    };
    let mut removed = ErasedCounts::default();
    let reason = req.reason.map(ErasureReason::as_str);
    for &org in &person.orgs {
        erase_member_in(
            &tx,
            req.ctx,
            org,
            req.subject,
            person.email.as_deref(),
            reason,
            &mut removed,
        )
        .await?;
    }
    others.erase_in(&tx, &person, &mut removed).await?;
    if account {
        erase_account_in(
            &tx,
            req.ctx,
            req.subject,
            person.email.as_deref(),
            &mut removed,
        )
        .await?;
    }
    tx.commit().await.map_err(failure)?;
    let erased_at = time::OffsetDateTime::now_utc();
    if let Err(e) = audit_store::reclaim_erased_space(db).await {
        tracing::warn!(error = %e, "erasure: emptying the SQLite WAL failed; deleted pages stay in it until the next checkpoint");
    }
    Ok(ErasureOutcome {
        receipt: ErasureReceipt {
            user_id: req.subject,
            scope: req.scope,
            erased_at,
            account_erased: account,
            removed,
        },
        person,
        sessions: if account {
            on_record.sessions
        } else {
            Vec::new()
        },
    })
}

/// The person as the store holds them, before an erasure.
#[derive(Debug, Clone, Default)]
struct PersonOnRecord {
    /// What the domain's rule needs.
    facts: ErasureFacts,
    /// Their address (to find invitations and e-mails to them).
    email: Option<String>,
    /// Their sessions (to end them on every instance after commit).
    sessions: Vec<Uuid>,
}

/// Runs `sql` (`?` placeholders); rows affected.
async fn exec<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, StorageFailure> {
    conn.execute_raw(persistence::statement(
        conn.get_database_backend(),
        sql,
        values,
    ))
    .await
    .map(|r| r.rows_affected())
    .map_err(failure)
}

/// Deletes the rows of `E` matching `condition`; how many.
async fn delete_where<E: EntityTrait>(
    tx: &WriteTx,
    condition: impl sea_orm::sea_query::IntoCondition,
) -> Result<u64, StorageFailure> {
    E::delete_many()
        .filter(condition)
        .exec(tx)
        .await
        .map(|r| r.rows_affected)
        .map_err(failure)
}

/// Reads what an erasure decides on (in the erasure's transaction).
///
/// # Errors
/// Storage failures.
async fn person_on_record(tx: &WriteTx, user: UserId) -> Result<PersonOnRecord, StorageFailure> {
    let Some(row) = users::Entity::find_by_id(user.as_uuid())
        .one(tx)
        .await
        .map_err(failure)?
    else {
        return Ok(PersonOnRecord::default());
    };
    let orgs: Vec<Uuid> = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .all(tx)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|m| m.org_id)
        .collect();
    let removed_from = removed_memberships::Entity::find()
        .filter(removed_memberships::Column::UserId.eq(user.as_uuid()))
        .all(tx)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|m| OrgId::from_uuid(m.org_id))
        .collect();
    let mut last_admin_of = Vec::new();
    for &org in &orgs {
        let org = OrgId::from_uuid(org);
        if let Some(m) = load_membership(tx, org, user).await? {
            let admins = count_active_admins(tx, org).await?;
            if rules::check_last_admin(&m, admins).is_err() {
                last_admin_of.push(org);
            }
        }
    }
    let district_staff = tx
        .query_one_raw(persistence::statement(
            tx.get_database_backend(),
            "SELECT count(*) AS n FROM district_staff WHERE user_id = ?",
            vec![user.as_uuid().into()],
        ))
        .await
        .map_err(failure)?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()
        .map_err(failure)?
        .unwrap_or(0)
        > 0;
    let sessions = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user.as_uuid()))
        .all(tx)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    Ok(PersonOnRecord {
        facts: ErasureFacts {
            exists: true,
            member_of: orgs.into_iter().map(OrgId::from_uuid).collect(),
            removed_from,
            last_admin_of,
            district_staff,
            platform_admin: row.is_platform_admin,
        },
        email: Some(row.email),
        sessions,
    })
}

/// Erases what `org` holds about `user` and records `member.erase` in its chain
/// (with `reason`, sealed like any value about the member). `email` is the person's
/// address (their invitations in the org go too).
///
/// # Errors
/// Storage failures; roll back then.
async fn erase_member_in(
    tx: &WriteTx,
    ctx: &AuditContext,
    org: OrgId,
    user: UserId,
    email: Option<&str>,
    reason: Option<&str>,
    counts: &mut ErasedCounts,
) -> Result<(), StorageFailure> {
    let Some(org_row) = lock_org(tx, org).await? else {
        return Ok(());
    };
    let (o, u) = (org.as_uuid(), user.as_uuid());
    counts.memberships += delete_where::<memberships::Entity>(
        tx,
        Condition::all()
            .add(memberships::Column::OrgId.eq(o))
            .add(memberships::Column::UserId.eq(u)),
    )
    .await?;
    counts.removed_memberships += delete_where::<removed_memberships::Entity>(
        tx,
        Condition::all()
            .add(removed_memberships::Column::OrgId.eq(o))
            .add(removed_memberships::Column::UserId.eq(u)),
    )
    .await?;
    counts.privacy_choices += delete_where::<member_privacy::Entity>(
        tx,
        Condition::all()
            .add(member_privacy::Column::OrgId.eq(o))
            .add(member_privacy::Column::UserId.eq(u)),
    )
    .await?;
    counts.access_log_entries += delete_where::<data_access_log::Entity>(
        tx,
        Condition::all()
            .add(data_access_log::Column::OrgId.eq(o))
            .add(data_access_log::Column::SubjectId.eq(u)),
    )
    .await?;
    // The org's notifications to them (their inbox items and digest entries).
    exec(
        tx,
        "DELETE FROM notifications WHERE org_id = ? AND user_id = ?",
        vec![o.into(), u.into()],
    )
    .await?;
    counts.permission_grants += exec(
        tx,
        "DELETE FROM permission_grants WHERE org_id = ? AND user_id = ?",
        vec![o.into(), u.into()],
    )
    .await?;
    counts.export_files += exec(
        tx,
        "DELETE FROM personal_data_exports WHERE org_id = ? AND user_id = ?",
        vec![o.into(), u.into()],
    )
    .await?;
    let scope = convert::org_scope(&org_row);
    crate::api_keys::revoke_keys_of_creator(tx, ctx, scope, org, user).await?;
    let chain = AuditScope::Chain(ChainId::Org(o));
    if let Some(email) = email {
        let invites = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(o))
            .filter(invitations::Column::Email.eq(email.to_lowercase()))
            .all(tx)
            .await
            .map_err(failure)?;
        for inv in &invites {
            shred(tx, DataSubject::Invitation(inv.id), chain, counts).await?;
        }
        counts.invitations += delete_where::<invitations::Entity>(
            tx,
            Condition::all()
                .add(invitations::Column::OrgId.eq(o))
                .add(invitations::Column::Email.eq(email.to_lowercase())),
        )
        .await?;
    }
    shred(tx, DataSubject::User(u), chain, counts).await?;
    let values = reason.map(|r| serde_json::json!({ "reason": r }));
    record_all(
        tx,
        vec![ctx.change(
            scope,
            EventType::MemberErase,
            ("member", user.to_string()),
            ChangeType::Delete,
            (None, values),
        )],
    )
    .await
}

/// Erases the account of `user` (after [`erase_member_in`] for each of their orgs):
/// sign-in data, district roles, invitations to their address anywhere, the
/// `users` row; destroys their audit keys in every chain; records `user.erase`.
///
/// # Errors
/// Storage failures; roll back then.
async fn erase_account_in(
    tx: &WriteTx,
    ctx: &AuditContext,
    user: UserId,
    email: Option<&str>,
    counts: &mut ErasedCounts,
) -> Result<(), StorageFailure> {
    let u = user.as_uuid();
    counts.sessions +=
        delete_where::<refresh_tokens::Entity>(tx, refresh_tokens::Column::UserId.eq(u)).await?;
    counts.sessions += delete_where::<sessions::Entity>(tx, sessions::Column::UserId.eq(u)).await?;
    counts.sign_in_secrets +=
        delete_where::<totp_credentials::Entity>(tx, totp_credentials::Column::UserId.eq(u))
            .await?;
    counts.sign_in_secrets +=
        delete_where::<recovery_codes::Entity>(tx, recovery_codes::Column::UserId.eq(u)).await?;
    counts.sign_in_secrets +=
        delete_where::<sign_in_challenges::Entity>(tx, sign_in_challenges::Column::UserId.eq(u))
            .await?;
    let mut tokens = account_tokens::Column::UserId.eq(u);
    if let Some(email) = email {
        tokens = tokens.or(account_tokens::Column::Email.eq(email.to_lowercase()));
    }
    counts.sign_in_secrets += delete_where::<account_tokens::Entity>(tx, tokens).await?;
    counts.district_roles += exec(
        tx,
        "DELETE FROM district_staff WHERE user_id = ?",
        vec![u.into()],
    )
    .await?;
    counts.export_files += exec(
        tx,
        "DELETE FROM personal_data_exports WHERE user_id = ?",
        vec![u.into()],
    )
    .await?;
    // Their notifications (every org's and the platform's), preferences and digests.
    for sql in [
        "DELETE FROM notifications WHERE user_id = ?",
        "DELETE FROM notification_preferences WHERE user_id = ?",
        "DELETE FROM notification_digests WHERE user_id = ?",
    ] {
        exec(tx, sql, vec![u.into()]).await?;
    }
    counts.access_log_entries +=
        delete_where::<data_access_log::Entity>(tx, data_access_log::Column::SubjectId.eq(u))
            .await?;
    // Removed memberships and privacy choices in orgs they are no longer a member of.
    counts.removed_memberships +=
        delete_where::<removed_memberships::Entity>(tx, removed_memberships::Column::UserId.eq(u))
            .await?;
    counts.privacy_choices +=
        delete_where::<member_privacy::Entity>(tx, member_privacy::Column::UserId.eq(u)).await?;
    if let Some(email) = email {
        let invites = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email.to_lowercase()))
            .all(tx)
            .await
            .map_err(failure)?;
        for inv in &invites {
            shred(
                tx,
                DataSubject::Invitation(inv.id),
                AuditScope::Everywhere,
                counts,
            )
            .await?;
        }
        counts.invitations += delete_where::<invitations::Entity>(
            tx,
            invitations::Column::Email.eq(email.to_lowercase()),
        )
        .await?;
    }
    shred(tx, DataSubject::User(u), AuditScope::Everywhere, counts).await?;
    // Foreign keys: what is theirs cascades (memberships, sessions, …: already gone),
    // what names them as an actor (grants given, invitations sent, API keys created)
    // keeps its row with the reference cleared.
    counts.accounts += users::Entity::delete_by_id(u)
        .exec(tx)
        .await
        .map_err(failure)?
        .rows_affected;
    record_all(
        tx,
        vec![ctx.change(
            audit::TenantScope::PLATFORM,
            EventType::UserErase,
            ("user", user.to_string()),
            ChangeType::Delete,
            (None, None),
        )],
    )
    .await
}

/// Destroys `subject`'s audit keys in `scope`.
async fn shred(
    tx: &WriteTx,
    subject: DataSubject,
    scope: AuditScope,
    counts: &mut ErasedCounts,
) -> Result<(), StorageFailure> {
    let done = audit_store::erase_subject_in(tx, subject, scope)
        .await
        .map_err(|e| StorageFailure(Box::new(e)))?;
    let keys = u64::try_from(done.chains.len()).unwrap_or(u64::MAX);
    counts.audit_keys += keys;
    if matches!(subject, DataSubject::User(_)) {
        counts.audit_chains += keys;
    }
    Ok(())
}

/// An org's retention period for removed members, with its version (0 and the default
/// until the org sets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRetention {
    /// The period.
    pub days: RetentionDays,
    /// 0 until set, then 1, 2, …
    pub version: i64,
    /// When it was last set.
    pub updated_at: Option<time::OffsetDateTime>,
}

/// Why a retention period was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetRetentionError {
    /// The org does not exist.
    #[error("no such organization")]
    NotFound,
    /// `version` is not the current one.
    #[error("the retention period changed meanwhile (now version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

async fn load_retention<C: ConnectionTrait>(
    conn: &C,
    org: OrgId,
) -> Result<MemberRetention, StorageFailure> {
    let row = conn
        .query_one_raw(persistence::statement(
            conn.get_database_backend(),
            "SELECT removed_member_days, version, updated_at FROM member_retention WHERE org_id = ?",
            vec![org.as_uuid().into()],
        ))
        .await
        .map_err(failure)?;
    let Some(row) = row else {
        return Ok(MemberRetention {
            days: RetentionDays::DEFAULT,
            version: 0,
            updated_at: None,
        });
    };
    let days: i32 = row.try_get("", "removed_member_days").map_err(failure)?;
    Ok(MemberRetention {
        days: RetentionDays::new(i64::from(days)).unwrap_or(RetentionDays::DEFAULT),
        version: row.try_get("", "version").map_err(failure)?,
        updated_at: row.try_get("", "updated_at").map_err(failure)?,
    })
}

/// The org's retention period for removed members.
///
/// # Errors
/// Storage failures.
pub async fn member_retention(
    db: &Database,
    org: OrgId,
) -> Result<MemberRetention, StorageFailure> {
    load_retention(db.primary(), org).await
}

/// Sets the org's retention period if `version` is the current one; audited as
/// `org.update` on `member_retention`.
///
/// # Errors
/// [`SetRetentionError`].
pub async fn set_member_retention(
    db: &Database,
    ctx: &AuditContext,
    org: OrgId,
    days: RetentionDays,
    version: i64,
) -> Result<MemberRetention, SetRetentionError> {
    let tx = db.begin_for_org(org.as_uuid()).await.map_err(failure)?;
    let Some(org_row) = lock_org(&tx, org).await? else {
        return Err(SetRetentionError::NotFound);
    };
    let current = load_retention(&tx, org).await?;
    if current.version != version {
        return Err(SetRetentionError::VersionMismatch {
            current: current.version,
        });
    }
    let now = persistence::now_micros();
    let actor = match ctx.actor {
        audit::Actor::User(u) => Some(u),
        audit::Actor::ApiKey(_) | audit::Actor::System => None,
    };
    exec(
        &tx,
        "DELETE FROM member_retention WHERE org_id = ?",
        vec![org.as_uuid().into()],
    )
    .await?;
    exec(
        &tx,
        "INSERT INTO member_retention (org_id, removed_member_days, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)",
        vec![
            org.as_uuid().into(),
            i32::from(days.days()).into(),
            (version + 1).into(),
            now.into(),
            Value::Uuid(actor),
        ],
    )
    .await?;
    record_all(
        &tx,
        vec![ctx.change(
            convert::org_scope(&org_row),
            EventType::OrgUpdate,
            ("member_retention", org.to_string()),
            ChangeType::Update,
            (
                Some(serde_json::json!({"removed_member_days": current.days.days(), "version": current.version})),
                Some(serde_json::json!({"removed_member_days": days.days(), "version": version + 1})),
            ),
        )],
    )
    .await?;
    tx.commit().await.map_err(failure)?;
    Ok(MemberRetention {
        days,
        version: version + 1,
        updated_at: Some(now),
    })
}

/// The scheduled erasure: every former member whose org's retention period has passed
/// at `now` (at most `limit` per call) loses what the org still held about them
/// (`member.erase` by the system, with the period as the reason); the receipts.
///
/// # Errors
/// Storage failures (what was erased before stays erased; the next run goes on).
pub async fn apply_retention<P: ErasureParticipant>(
    db: &Database,
    now: time::OffsetDateTime,
    others: &P,
    limit: u64,
) -> Result<Vec<ErasureReceipt>, EraseError> {
    use sea_orm::{QueryOrder, QuerySelect};
    let oldest_due = now - time::Duration::days(i64::from(RetentionDays::MIN));
    let candidates = removed_memberships::Entity::find()
        .filter(removed_memberships::Column::RemovedAt.lte(oldest_due))
        .order_by_asc(removed_memberships::Column::RemovedAt)
        .limit(limit)
        .all(db.primary())
        .await
        .map_err(failure)?;
    let mut periods = std::collections::BTreeMap::new();
    let ctx = AuditContext {
        actor: audit::Actor::System,
        request: audit::RequestMeta::default(),
    };
    let mut receipts = Vec::new();
    for row in candidates {
        let org = OrgId::from_uuid(row.org_id);
        let days = match periods.get(&org) {
            Some(days) => *days,
            None => {
                let days = load_retention(db.primary(), org).await?.days;
                periods.insert(org, days);
                days
            }
        };
        if !days.is_due(row.removed_at, now) {
            continue;
        }
        let reason = ErasureReason::parse(&format!(
            "retention: removed more than {} days ago",
            days.days()
        ))
        .map_err(|e| StorageFailure(Box::new(e)))?;
        let request = ErasureRequest {
            ctx: &ctx,
            scope: ErasureScope::Retention(org),
            actor: None,
            subject: UserId::from_uuid(row.user_id),
            reason: Some(&reason),
        };
        match erase_person(db, request, others).await {
            Ok(done) => receipts.push(done.receipt),
            // Rejoined (or erased) meanwhile: nothing to do.
            Err(EraseError::Refused(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(receipts)
}
