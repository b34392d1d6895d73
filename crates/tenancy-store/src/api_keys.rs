use audit::ChangeType;
use audit::EventType;
use persistence::WriteTx;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use tenancy::ports::{ApiKey, ApiKeyRepository, AuditContext, NewApiKey, StorageFailure};
use tenancy::{OrgId, UserId};
use time::OffsetDateTime;

use crate::convert::{self, corrupt, failure, record};
use crate::entity::{api_keys, organizations};
use persistence::{Database, now_micros};

/// [`ApiKeyRepository`] on SeaORM (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SeaOrmApiKeyRepository {
    db: Database,
}

impl SeaOrmApiKeyRepository {
    /// A repository over the given database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn api_key(m: api_keys::Model) -> Result<ApiKey, StorageFailure> {
    Ok(ApiKey {
        id: m.id,
        org_id: OrgId::from_uuid(m.org_id),
        name: m.name,
        permissions: serde_json::from_value(m.permissions)
            .map_err(|_| corrupt(format!("api_keys row {}: bad permissions", m.id)))?,
        created_by: m.created_by.map(UserId::from_uuid),
        created_at: m.created_at,
        expires_at: m.expires_at,
        last_used_at: m.last_used_at,
        revoked_at: m.revoked_at,
    })
}

/// The audit view of a key (never its token or revocation id).
fn json(k: &ApiKey) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "id": k.id,
        "name": k.name,
        "permissions": k.permissions,
        "expires_at": k.expires_at.unix_timestamp(),
        "revoked": k.revoked_at.is_some(),
    }))
}

async fn scope_of(txn: &WriteTx, org: OrgId) -> Result<audit::TenantScope, StorageFailure> {
    let row = organizations::Entity::find_by_id(org.as_uuid())
        .one(txn)
        .await
        .map_err(failure)?
        .ok_or_else(|| corrupt(format!("no organization {org}")))?;
    Ok(convert::org_scope(&row))
}

/// Revokes, audited, every live API key `creator` made in `org`, inside the caller's
/// transaction: a key dies with its creator's membership or admin rights. (Requests
/// check the creator anyway, so this only makes the death visible and permanent.)
/// Returns the revoked keys' ids.
pub(crate) async fn revoke_keys_of_creator(
    txn: &WriteTx,
    ctx: &AuditContext,
    scope: audit::TenantScope,
    org: OrgId,
    creator: UserId,
) -> Result<Vec<uuid::Uuid>, StorageFailure> {
    revoke_keys(txn, ctx, scope, org, Some(creator)).await
}

/// Revokes the org's live API keys (only `creator`'s, if given) inside `txn`, each
/// audited `api_key.revoke`; returns their ids.
pub(crate) async fn revoke_keys(
    txn: &WriteTx,
    ctx: &AuditContext,
    scope: audit::TenantScope,
    org: OrgId,
    creator: Option<UserId>,
) -> Result<Vec<uuid::Uuid>, StorageFailure> {
    let mut q = api_keys::Entity::find()
        .filter(api_keys::Column::OrgId.eq(org.as_uuid()))
        .filter(api_keys::Column::RevokedAt.is_null());
    if let Some(creator) = creator {
        q = q.filter(api_keys::Column::CreatedBy.eq(creator.as_uuid()));
    }
    let rows = q.all(txn).await.map_err(failure)?;
    let mut revoked = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let before = api_key(row.clone())?;
        let mut active: api_keys::ActiveModel = row.into();
        active.revoked_at = Set(Some(now_micros()));
        let after = api_key(active.update(txn).await.map_err(failure)?)?;
        events.push(ctx.change(
            scope,
            EventType::ApiKeyRevoke,
            ("api_key", after.id.to_string()),
            ChangeType::Update,
            (json(&before), json(&after)),
        ));
        revoked.push(after.id);
    }
    if !events.is_empty() {
        convert::record_all(txn, events).await?;
    }
    Ok(revoked)
}

impl ApiKeyRepository for SeaOrmApiKeyRepository {
    async fn create_api_key(
        &self,
        ctx: &AuditContext,
        new: NewApiKey,
    ) -> Result<ApiKey, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let scope = scope_of(&txn, new.org_id).await?;
        let row = api_keys::ActiveModel {
            org_id: Set(new.org_id.as_uuid()),
            id: Set(new.id),
            name: Set(new.name),
            revocation_id: Set(new.revocation_id),
            permissions: Set(serde_json::to_value(new.permissions).unwrap_or_default()),
            created_by: Set(Some(new.created_by.as_uuid())),
            created_at: Set(now_micros()),
            expires_at: Set(new.expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(failure)?;
        let key = api_key(row)?;
        record(
            &txn,
            ctx,
            scope,
            EventType::ApiKeyCreate,
            ("api_key", key.id.to_string()),
            ChangeType::Create,
            (None, json(&key)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(key)
    }

    async fn list_api_keys(&self, org: OrgId) -> Result<Vec<ApiKey>, StorageFailure> {
        api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org.as_uuid()))
            .order_by_desc(api_keys::Column::Id)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(api_key)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        id: uuid::Uuid,
    ) -> Result<bool, StorageFailure> {
        let txn = self.db.begin_write().await.map_err(failure)?;
        let Some(row) = api_keys::Entity::find_by_id((org.as_uuid(), id))
            .filter(api_keys::Column::RevokedAt.is_null())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Ok(false);
        };
        let before = api_key(row.clone())?;
        let mut active: api_keys::ActiveModel = row.into();
        active.revoked_at = Set(Some(now_micros()));
        let after = api_key(active.update(&txn).await.map_err(failure)?)?;
        let scope = scope_of(&txn, org).await?;
        record(
            &txn,
            ctx,
            scope,
            EventType::ApiKeyRevoke,
            ("api_key", id.to_string()),
            ChangeType::Update,
            (json(&before), json(&after)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(true)
    }

    async fn live_api_key_creator(
        &self,
        org: OrgId,
        id: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StorageFailure> {
        Ok(api_keys::Entity::find_by_id((org.as_uuid(), id))
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .filter(|k| k.revoked_at.is_none() && now < k.expires_at)
            .and_then(|k| k.created_by)
            .map(UserId::from_uuid))
    }

    async fn touch_api_key(
        &self,
        org: OrgId,
        id: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StorageFailure> {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(Some(now)))
            .filter(api_keys::Column::OrgId.eq(org.as_uuid()))
            .filter(api_keys::Column::Id.eq(id))
            .exec(self.db.primary())
            .await
            .map_err(failure)?;
        Ok(())
    }
}
