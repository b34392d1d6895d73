//! API keys for integrations: attenuated Biscuit tokens bound to one org, a subset of
//! permission keys and an expiry; shown once, listed with last use, revocable.

use actix_web::http::Method;
use garde::Validate;
use permissions::{KeySet, PermissionKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{ApiKey, ApiKeyRepository, NewApiKey};
use time::OffsetDateTime;
use uuid::Uuid;

use super::common::domain_rule;
use crate::auth::OrgMember;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, Fresh, Json, NoContent, Order, PageQuery, Paged, Path,
    Query, RouteDoc,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "api-keys";
    r.post(
        "/api/v2/orgs/{org_id}/api-keys",
        create_key,
        RouteDoc::new(
            "create_api_key",
            "Create an API key (the token is shown only in this response)",
            TAG,
        )
        .description(
            "The key is bound to this org and may hold only permission keys its creator holds (403 otherwise, naming them in `details.keys_not_held`). On every request it is checked against the org's current settings and its creator's current rights: a key disabled for the org is disabled for keys too, and a key dies with its creator's membership or admin rights (revoked when the creator is removed or demoted).",
        )
        .org_admin()
        .secret_answer()
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/api-keys",
        list_keys,
        RouteDoc::new(
            "list_api_keys",
            "The org's API keys (never their tokens)",
            TAG,
        )
        .description("In id (creation) order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .org_admin()
        .errors(&[ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/api-keys/{key_id}",
        get_key,
        RouteDoc::new("get_api_key", "One API key (never its token)", TAG)
            .description("Revoked keys stay readable, with `revoked: true`.")
            .org_admin()
            .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/orgs/{org_id}/api-keys/{key_id}",
        revoke_key,
        RouteDoc::new(
            "revoke_api_key",
            "Revoke an API key, effective at once everywhere",
            TAG,
        )
        .description("Answers 204; 404 for an unknown or already revoked key.")
        .org_admin()
        .errors(&[ErrorCode::NotFound]),
    );
}

/// A new API key.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = create_example())]
pub struct CreateKeyBody {
    /// A name for people, e.g. "Newsletter sync".
    #[garde(length(chars, min = 1, max = 100))]
    pub name: String,
    /// The permission keys it grants (each must be held by its creator).
    #[garde(
        length(min = 1, max = 28),
        inner(custom(domain_rule(PermissionKey::parse)))
    )]
    pub permissions: Vec<String>,
    /// Lifetime in days (1–365).
    #[garde(range(min = 1, max = 365))]
    pub expires_in_days: u16,
}

fn create_example() -> serde_json::Value {
    serde_json::json!({"name": "Newsletter sync", "permissions": ["users.view"], "expires_in_days": 90})
}

/// An API key as listed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ApiKeyView {
    /// Key id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Granted permission keys.
    pub permissions: Vec<&'static str>,
    /// Created (RFC 3339).
    pub created_at: Option<String>,
    /// Expires (RFC 3339).
    pub expires_at: Option<String>,
    /// Last used (RFC 3339), if ever.
    pub last_used_at: Option<String>,
    /// Whether it has been revoked.
    pub revoked: bool,
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn view(k: ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name,
        permissions: k.permissions.iter().map(PermissionKey::as_str).collect(),
        created_at: rfc3339(k.created_at),
        expires_at: rfc3339(k.expires_at),
        last_used_at: k.last_used_at.and_then(rfc3339),
        revoked: k.revoked_at.is_some(),
    }
}

/// A created key, with its token (shown once).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedKey {
    /// The key.
    pub key: ApiKeyView,
    /// The token: send it as `Authorization: Bearer <token>`. It is not stored and
    /// cannot be shown again.
    pub token: String,
}

async fn create_key(
    state: State,
    member: OrgMember,
    Json(body): Json<CreateKeyBody>,
) -> Result<Created<CreatedKey>, ApiError> {
    let creator = member.user_id()?;
    let keys: KeySet = body
        .permissions
        .iter()
        .filter_map(|k| PermissionKey::parse(k).ok())
        .collect();
    // A key carries at most what its creator holds (and, per request, holds still).
    let held = state
        .authz
        .keys_to_hand_out(member.org_id().as_uuid(), creator.as_uuid())
        .await?;
    permissions::check_holds(held, keys)?;
    let id = Uuid::now_v7();
    let expires_at =
        OffsetDateTime::now_utc() + time::Duration::days(i64::from(body.expires_in_days));
    let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
    let issued = state
        .auth
        .issuer()
        .issue_api_key(member.org_id().as_uuid(), id, &names, expires_at)
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    let key = state
        .auth
        .api_keys()
        .create_api_key(
            &member.audit_context(),
            NewApiKey {
                id,
                org_id: member.org_id(),
                name: body.name,
                revocation_id: issued.revocation_id,
                permissions: keys,
                created_by: creator,
                expires_at: issued.expires_at,
            },
        )
        .await?;
    let location = format!("/api/v2/orgs/{}/api-keys/{}", member.org_id(), key.id);
    Ok(Created::at(
        location,
        CreatedKey {
            key: view(key),
            token: issued.token,
        },
    ))
}

async fn list_keys(
    state: State,
    member: OrgMember,
    Query(q): Query<PageQuery>,
) -> Result<Paged<ApiKeyView>, ApiError> {
    // An org's keys are few: read whole, paged here in id (creation) order.
    let keys = state.auth.api_keys().list_api_keys(member.org_id()).await?;
    Ok(Paged::from_all(
        keys,
        |k| k.id,
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(view))
}

async fn get_key(
    state: State,
    member: OrgMember,
    Path(p): Path<KeyPath>,
) -> Result<Fresh<ApiKeyView>, ApiError> {
    // An org's keys are few: read whole, found here.
    let keys = state.auth.api_keys().list_api_keys(member.org_id()).await?;
    keys.into_iter()
        .find(|k| k.id == p.key_id)
        .map(|k| Fresh(view(k)))
        .ok_or_else(|| ApiError::not_found("no such API key"))
}

/// Path of one key.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct KeyPath {
    /// Org id.
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// Key id.
    pub key_id: Uuid,
}

async fn revoke_key(
    state: State,
    member: OrgMember,
    Path(p): Path<KeyPath>,
) -> Result<NoContent, ApiError> {
    let revoked = state
        .auth
        .api_keys()
        .revoke_api_key(&member.audit_context(), member.org_id(), p.key_id)
        .await?;
    if !revoked {
        return Err(ApiError::not_found("no such live API key"));
    }
    Ok(NoContent)
}
