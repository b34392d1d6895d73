//! Personal data export (issue #17): everything held about a person, as one JSON file,
//! produced by a durable request row (`personal_data_exports`).
//!
//! A request is written `queued` with its audit event; [`run_export`] builds the file
//! and stores it (`succeeded`): the app runs it right after the request commits, and
//! [`run_due`] re-runs requests a crash left queued and removes expired files. Building
//! twice is harmless (the same data; the first stored file wins).
//!
//! Scope: a person's own request covers the account and every org; an org admin's
//! (on the member's request) covers the account as that org sees it and what that org
//! holds.

use std::path::Path;

use audit::{Actor, AuditFilter, AuditLog, ChainId, ChangeType, EventType, PageRequest};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryTrait, Value,
};
use serde_json::{Value as Json, json};
use tenancy::ports::{AuditContext, StorageFailure};
use tenancy::{OrgId, UserId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::convert::{failure, record_all};
use crate::entity::{
    data_access_log, invitations, member_privacy, memberships, organizations, removed_memberships,
    sessions, totp_credentials, users,
};
use persistence::{Database, now_micros, statement};

/// How long a finished export can be downloaded.
pub const EXPORT_TTL: time::Duration = time::Duration::days(7);

/// The format name in every file.
pub const FORMAT: &str = "ptoc.personal-data-export/1";

/// Where an export request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// Its id.
    pub id: Uuid,
    /// Whose data.
    pub user_id: UserId,
    /// The org, for an org admin's request.
    pub org_id: Option<OrgId>,
    /// Who asked.
    pub requested_by: Option<UserId>,
    /// `queued` or `succeeded`.
    pub status: String,
    /// When it was asked for.
    pub created_at: OffsetDateTime,
    /// When the file was stored.
    pub finished_at: Option<OffsetDateTime>,
    /// When the file is removed.
    pub expires_at: OffsetDateTime,
    /// The file's size in bytes, once stored.
    pub size: Option<u64>,
}

fn rfc3339(t: OffsetDateTime) -> Json {
    t.format(&Rfc3339).map_or(Json::Null, Json::String)
}

fn opt_rfc3339(t: Option<OffsetDateTime>) -> Json {
    t.map_or(Json::Null, rfc3339)
}

const COLUMNS: &str =
    "id, user_id, org_id, requested_by, status, created_at, finished_at, expires_at, size";

fn request_of(row: &sea_orm::QueryResult) -> Result<ExportRequest, StorageFailure> {
    let get_err = |e: sea_orm::DbErr| failure(e);
    let size: Option<i64> = row.try_get("", "size").map_err(get_err)?;
    Ok(ExportRequest {
        id: row.try_get("", "id").map_err(get_err)?,
        user_id: UserId::from_uuid(row.try_get("", "user_id").map_err(get_err)?),
        org_id: row
            .try_get::<Option<Uuid>>("", "org_id")
            .map_err(get_err)?
            .map(OrgId::from_uuid),
        requested_by: row
            .try_get::<Option<Uuid>>("", "requested_by")
            .map_err(get_err)?
            .map(UserId::from_uuid),
        status: row.try_get("", "status").map_err(get_err)?,
        created_at: row.try_get("", "created_at").map_err(get_err)?,
        finished_at: row.try_get("", "finished_at").map_err(get_err)?,
        expires_at: row.try_get("", "expires_at").map_err(get_err)?,
        size: size.and_then(|s| u64::try_from(s).ok()),
    })
}

/// Records a request (and its `data.export` event) for `user`'s data, as seen by
/// `org` when given; `None` when `user` is not (and was not) a member of `org`.
///
/// # Errors
/// Storage failures.
pub async fn request_export(
    db: &Database,
    ctx: &AuditContext,
    user: UserId,
    org: Option<OrgId>,
) -> Result<Option<ExportRequest>, StorageFailure> {
    let tx = db.begin_write().await.map_err(failure)?;
    let scope = match org {
        None => audit::TenantScope::PLATFORM,
        Some(o) => {
            let Some(org_row) = organizations::Entity::find_by_id(o.as_uuid())
                .one(&tx)
                .await
                .map_err(failure)?
            else {
                return Ok(None);
            };
            let key = (o.as_uuid(), user.as_uuid());
            let member = memberships::Entity::find_by_id(key)
                .one(&tx)
                .await
                .map_err(failure)?;
            let removed = removed_memberships::Entity::find_by_id(key)
                .one(&tx)
                .await
                .map_err(failure)?;
            if member.is_none() && removed.is_none() {
                return Ok(None);
            }
            crate::convert::org_scope(&org_row)
        }
    };
    let id = Uuid::now_v7();
    let now = now_micros();
    let requested_by = match ctx.actor {
        Actor::User(u) => Some(u),
        Actor::ApiKey(_) | Actor::System => None,
    };
    tx.execute_raw(statement(
        tx.get_database_backend(),
        "INSERT INTO personal_data_exports (id, user_id, org_id, requested_by, status, created_at, expires_at) \
         VALUES (?, ?, ?, ?, 'queued', ?, ?)",
        vec![
            id.into(),
            user.as_uuid().into(),
            Value::Uuid(org.map(|o| o.as_uuid())),
            Value::Uuid(requested_by),
            now.into(),
            (now + EXPORT_TTL).into(),
        ],
    ))
    .await
    .map_err(failure)?;
    record_all(
        &tx,
        vec![ctx.change(
            scope,
            EventType::DataExport,
            ("user", user.to_string()),
            ChangeType::Create,
            (
                None,
                Some(json!({ "kind": "personal_data", "request_id": id })),
            ),
        )],
    )
    .await?;
    tx.commit().await.map_err(failure)?;
    find_request(db, id).await
}

/// One request, if it exists.
///
/// # Errors
/// Storage failures.
pub async fn find_request(
    db: &Database,
    id: Uuid,
) -> Result<Option<ExportRequest>, StorageFailure> {
    let conn = db.primary();
    conn.query_one_raw(statement(
        conn.get_database_backend(),
        &format!("SELECT {COLUMNS} FROM personal_data_exports WHERE id = ?"),
        vec![id.into()],
    ))
    .await
    .map_err(failure)?
    .as_ref()
    .map(request_of)
    .transpose()
}

/// The stored file of a finished request.
///
/// # Errors
/// Storage failures.
pub async fn export_file(db: &Database, id: Uuid) -> Result<Option<Vec<u8>>, StorageFailure> {
    let conn = db.primary();
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            "SELECT file FROM personal_data_exports WHERE id = ? AND status = 'succeeded'",
            vec![id.into()],
        ))
        .await
        .map_err(failure)?;
    row.map(|r| r.try_get::<Option<Vec<u8>>>("", "file"))
        .transpose()
        .map(Option::flatten)
        .map_err(failure)
}

/// Builds and stores the file of request `id` (nothing to do when it is done or gone);
/// whether a file was stored by this call.
///
/// # Errors
/// Storage failures (the request stays queued; [`run_due`] retries it).
pub async fn run_export(db: &Database, archive: &Path, id: Uuid) -> Result<bool, StorageFailure> {
    let Some(request) = find_request(db, id).await? else {
        return Ok(false);
    };
    if request.status == "succeeded" {
        return Ok(false);
    }
    let data = collect(db, archive, request.user_id, request.org_id).await?;
    let file = serde_json::to_vec_pretty(&json!({
        "format": FORMAT,
        "request_id": request.id,
        "generated_at": rfc3339(OffsetDateTime::now_utc()),
        "scope": match request.org_id {
            Some(org) => json!({"kind": "org", "org_id": org.as_uuid()}),
            None => json!({"kind": "account"}),
        },
        "data": data,
    }))
    .map_err(|e| StorageFailure(Box::new(e)))?;
    let conn = db.primary();
    let size = i64::try_from(file.len()).unwrap_or(i64::MAX);
    let done = conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "UPDATE personal_data_exports SET status = 'succeeded', file = ?, size = ?, finished_at = ? \
             WHERE id = ? AND status = 'queued'",
            vec![file.into(), size.into(), now_micros().into(), id.into()],
        ))
        .await
        .map_err(failure)?;
    Ok(done.rows_affected() == 1)
}

/// Runs the requests left queued for longer than `grace` (a crash between the request
/// and its run) and removes expired files; how many were run.
///
/// # Errors
/// Storage failures.
pub async fn run_due(
    db: &Database,
    archive: &Path,
    grace: time::Duration,
) -> Result<usize, StorageFailure> {
    let conn = db.primary();
    let backend = conn.get_database_backend();
    let now = now_micros();
    conn.execute_raw(statement(
        backend,
        "DELETE FROM personal_data_exports WHERE expires_at < ?",
        vec![now.into()],
    ))
    .await
    .map_err(failure)?;
    let due = conn
        .query_all_raw(statement(
            backend,
            "SELECT id FROM personal_data_exports WHERE status = 'queued' AND created_at < ? LIMIT 100",
            vec![(now - grace).into()],
        ))
        .await
        .map_err(failure)?;
    let mut ran = 0;
    for row in due {
        let id: Uuid = row.try_get("", "id").map_err(failure)?;
        if run_export(db, archive, id).await? {
            ran += 1;
        }
    }
    Ok(ran)
}

/// Everything held about `user` (in `org` only, when given).
async fn collect(
    db: &Database,
    archive: &Path,
    user: UserId,
    org: Option<OrgId>,
) -> Result<Json, StorageFailure> {
    let conn = db.primary();
    let u = user.as_uuid();
    let Some(account) = users::Entity::find_by_id(u)
        .one(conn)
        .await
        .map_err(failure)?
    else {
        return Ok(json!({ "account": null }));
    };
    let only_org = org.map(|o| o.as_uuid());
    let mut orgs_seen = std::collections::BTreeSet::new();
    let mut seen = |id: Uuid| -> Json {
        orgs_seen.insert(id);
        json!(id)
    };

    let memberships: Vec<Json> = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(u))
        .apply_if(only_org, |q, o| q.filter(memberships::Column::OrgId.eq(o)))
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|m| {
            json!({
                "org": seen(m.org_id), "role": m.builtin_role, "custom_role_id": m.custom_role_id,
                "status": m.status, "committee": m.committee, "profile": m.profile,
                "role_ends_at": opt_rfc3339(m.role_ends_at), "joined_at": rfc3339(m.joined_at),
                "last_active_at": opt_rfc3339(m.active_at), "email_in_directory": m.email,
                "details_confirmed_at": opt_rfc3339(m.details_confirmed_at),
                // What the member search matches on (derived from the fields above).
                "search_text": m.search_doc,
            })
        })
        .collect();
    let removed: Vec<Json> = removed_memberships::Entity::find()
        .filter(removed_memberships::Column::UserId.eq(u))
        .apply_if(only_org, |q, o| {
            q.filter(removed_memberships::Column::OrgId.eq(o))
        })
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|m| {
            json!({
                "org": seen(m.org_id), "role": m.builtin_role, "custom_role_id": m.custom_role_id,
                "status": m.status, "committee": m.committee, "profile": m.profile,
                "joined_at": rfc3339(m.joined_at), "removed_at": rfc3339(m.removed_at),
            })
        })
        .collect();
    let privacy: Vec<Json> = member_privacy::Entity::find()
        .filter(member_privacy::Column::UserId.eq(u))
        .apply_if(only_org, |q, o| {
            q.filter(member_privacy::Column::OrgId.eq(o))
        })
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|p| {
            json!({
                "org": seen(p.org_id), "listing": p.listing, "phone": p.phone, "email": p.email,
                "committee": p.committee, "children_and_grades": p.children_and_grades,
                "notice_version": p.notice_version, "chosen_at": rfc3339(p.chosen_at),
            })
        })
        .collect();
    let invites: Vec<Json> = invitations::Entity::find()
        .filter(invitations::Column::Email.eq(account.email.to_lowercase()))
        .apply_if(only_org, |q, o| q.filter(invitations::Column::OrgId.eq(o)))
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|i| {
            json!({
                "org": seen(i.org_id), "id": i.id, "email": i.email, "first_name": i.first_name,
                "last_name": i.last_name, "phone": i.phone, "committee": i.committee,
                "profile": i.profile, "role": i.builtin_role, "status": i.status,
                "invited_by": i.invited_by, "created_at": rfc3339(i.created_at),
                "expires_at": rfc3339(i.expires_at),
            })
        })
        .collect();
    let reads: Vec<Json> = data_access_log::Entity::find()
        .filter(data_access_log::Column::SubjectId.eq(u))
        .apply_if(only_org, |q, o| q.filter(data_access_log::Column::OrgId.eq(o)))
        .order_by_desc(data_access_log::Column::At)
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|r| json!({"org": seen(r.org_id), "read_by": r.accessor_id, "what": r.what, "at": rfc3339(r.at)}))
        .collect();
    let grants: Vec<Json> = conn
        .query_all_raw(statement(
            conn.get_database_backend(),
            "SELECT org_id, key, reason, expires_at, created_at FROM permission_grants WHERE user_id = ?",
            vec![u.into()],
        ))
        .await
        .map_err(failure)?
        .iter()
        .filter_map(|r| {
            let org_id: Uuid = r.try_get("", "org_id").ok()?;
            if org.is_some_and(|o| o.as_uuid() != org_id) {
                return None;
            }
            Some(json!({
                "org": seen(org_id),
                "key": r.try_get::<String>("", "key").ok(),
                "reason": r.try_get::<Option<String>>("", "reason").ok().flatten(),
                "expires_at": opt_rfc3339(r.try_get::<Option<OffsetDateTime>>("", "expires_at").ok().flatten()),
                "created_at": opt_rfc3339(r.try_get::<OffsetDateTime>("", "created_at").ok()),
            }))
        })
        .collect();

    let names: Vec<Json> = organizations::Entity::find()
        .filter(organizations::Column::Id.is_in(orgs_seen.iter().copied()))
        .all(conn)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|o| json!({"id": o.id, "name": o.name}))
        .collect();
    let mut data = json!({
        "orgs": names,
        "account": {
            "id": account.id, "email": account.email, "first_name": account.first_name,
            "last_name": account.last_name, "phone": account.phone, "locale": account.locale,
            "status": account.status, "created_at": rfc3339(account.created_at),
            "email_verified_at": opt_rfc3339(account.email_verified_at),
            "last_active_at": opt_rfc3339(account.last_active_at),
            "password": "held only as a one-way hash (not exported)",
        },
        "memberships": memberships,
        "removed_memberships": removed,
        "privacy_choices": privacy,
        "invitations": invites,
        "direct_grants": grants,
        "record_reads": reads,
    });
    if org.is_none() {
        let sessions: Vec<Json> = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(u))
            .order_by_desc(sessions::Column::CreatedAt)
            .all(conn)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|s| {
                json!({
                    "id": s.id, "signed_in_at": rfc3339(s.created_at), "last_seen_at": opt_rfc3339(s.last_seen_at),
                    "expires_at": rfc3339(s.expires_at), "revoked_at": opt_rfc3339(s.revoked_at),
                    "ip": s.ip, "user_agent": s.user_agent, "second_factor": s.second_factor,
                })
            })
            .collect();
        let totp = totp_credentials::Entity::find_by_id(u)
            .one(conn)
            .await
            .map_err(failure)?
            .is_some();
        let staff: Vec<Json> = conn
            .query_all_raw(statement(
                conn.get_database_backend(),
                "SELECT district_id, role FROM district_staff WHERE user_id = ?",
                vec![u.into()],
            ))
            .await
            .map_err(failure)?
            .iter()
            .map(|r| {
                json!({
                    "district_id": r.try_get::<Uuid>("", "district_id").ok(),
                    "role": r.try_get::<String>("", "role").ok(),
                })
            })
            .collect();
        data["sessions"] = json!(sessions);
        data["second_factor"] = json!({ "totp": totp });
        data["district_roles"] = json!(staff);
    }
    // Audit and activity events where they are the actor or the subject, opened (a
    // field erased earlier reads `[erased]`).
    let chains: Vec<ChainId> = match org {
        Some(o) => vec![ChainId::Org(o.as_uuid())],
        None => std::iter::once(ChainId::Platform)
            .chain(orgs_seen.iter().map(|o| ChainId::Org(*o)))
            .collect(),
    };
    let log = audit_store::SeaOrmAuditLog::new(db.clone());
    let mut events = Vec::new();
    for &chain in &chains {
        for by in [true, false] {
            let mut filter = AuditFilter::new(chain);
            if by {
                filter.actor = Some(Actor::User(u));
            } else {
                filter.entity_id = Some(u.to_string());
            }
            let mut cursor = None;
            loop {
                let page = log
                    .find(
                        filter.clone(),
                        PageRequest::new(PageRequest::MAX_LIMIT, cursor),
                    )
                    .await
                    .map_err(|e| StorageFailure(Box::new(e)))?;
                for event in page.items {
                    let actor_is_subject = matches!(event.body.actor, Actor::User(a) if a == u);
                    if !by && actor_is_subject {
                        continue; // listed once, as theirs
                    }
                    let mut value =
                        serde_json::to_value(&event).map_err(|e| StorageFailure(Box::new(e)))?;
                    if let Some(fields) = value.as_object_mut() {
                        fields.remove("sealed"); // the ciphertext: opened above
                    }
                    events.push(value);
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    data["audit_events"] = json!(events);
    // Events moved to archive files by retention (`cargo xtask audit archive`), read from
    // the archive directory and opened the same way.
    let mut archived = audit_store::read_archived(archive, &chains, |event| {
        matches!(event.body.actor, Actor::User(a) if a == u)
            || event.body.entity_id == u.to_string()
    })
    .map_err(|e| StorageFailure(Box::new(e)))?;
    audit_store::open_events(db.primary(), &mut archived)
        .await
        .map_err(StorageFailure)?;
    let mut archived_values = Vec::with_capacity(archived.len());
    for event in archived {
        let mut value = serde_json::to_value(&event).map_err(|e| StorageFailure(Box::new(e)))?;
        if let Some(fields) = value.as_object_mut() {
            fields.remove("sealed");
        }
        archived_values.push(value);
    }
    data["archived_audit_events"] = json!(archived_values);
    Ok(data)
}
