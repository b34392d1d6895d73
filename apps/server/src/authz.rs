//! Authorization at the edge: the permission engine as the app uses it, and the one
//! guard every org-scoped route declares next to its registration
//! ([`crate::http::RouteDoc::permission`] / [`crate::http::RouteDoc::org_admin`]).

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage};
use permissions::{CompiledOrg, KeySet, MemberContext, PermissionKey};
use permissions_cache::PermissionCache;
use permissions_store::SeaOrmPermissionStore;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgActor, OrgMember};
use crate::http::{ApiError, ErrorCode};

/// What a route requires of its caller, beyond being an active member of the path's org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// One of the 28 configurable permission keys.
    Permission(PermissionKey),
    /// Any active member of the org (or an API key bound to it): the default of every
    /// route under `/orgs/{org_id}`, so membership is settled before anything else of
    /// the request is looked at.
    Member,
    /// The `admin` role: administrative capabilities (permission settings, audit log,
    /// API keys, org settings) are not configurable.
    OrgAdmin,
    /// Authority over the org's place in the hierarchy: its district's admins (or
    /// platform admins), with the org's own admin for a standalone end. District staff
    /// need not be members, so the guard only settles that the caller has some standing
    /// towards the org (404 otherwise); the districts service checks both ends.
    DistrictAuthority,
}

/// The permission engine as the app uses it: compiled org tables and member contexts
/// from the two-level cache (moka L1 → Redis L2 → store), checked with the pure
/// domain `check`.
#[derive(Clone)]
pub struct Authz {
    store: SeaOrmPermissionStore,
    cache: PermissionCache,
}

impl Authz {
    /// An engine over the store and its cache.
    #[must_use]
    pub fn new(store: SeaOrmPermissionStore, cache: PermissionCache) -> Self {
        Self { store, cache }
    }

    /// The cache (for invalidation after writes and for metrics).
    #[must_use]
    pub fn cache(&self) -> &PermissionCache {
        &self.cache
    }

    /// The underlying store (for writes and admin reads).
    #[must_use]
    pub fn store(&self) -> &SeaOrmPermissionStore {
        &self.store
    }

    /// The org's compiled table.
    pub async fn compiled(&self, org: Uuid) -> Result<Option<Arc<CompiledOrg>>, ApiError> {
        self.cache
            .compiled_org(org, crate::http::request_context::consistency_token())
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))
    }

    /// A member's context.
    pub async fn member(
        &self,
        org: Uuid,
        user: Uuid,
    ) -> Result<Option<Arc<MemberContext>>, ApiError> {
        self.cache
            .member(org, user, crate::http::request_context::consistency_token())
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))
    }

    /// Whether `user` holds `key` in `org` now (false for non-members and unknown orgs).
    pub async fn check(&self, org: Uuid, user: Uuid, key: PermissionKey) -> Result<bool, ApiError> {
        Ok(self
            .cache
            .check(
                org,
                user,
                key,
                OffsetDateTime::now_utc(),
                crate::http::request_context::consistency_token(),
            )
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))?
            .unwrap_or(false))
    }

    /// The keys `user` may hand out in `org` now ([`permissions::keys_to_hand_out`]: held
    /// through their rank or role; empty for non-members and unknown orgs). From the
    /// cache, like [`check`](Self::check).
    pub async fn keys_to_hand_out(&self, org: Uuid, user: Uuid) -> Result<KeySet, ApiError> {
        let Some(compiled) = self.compiled(org).await? else {
            return Ok(KeySet::new());
        };
        let Some(member) = self.member(org, user).await? else {
            return Ok(KeySet::new());
        };
        Ok(permissions::keys_to_hand_out(
            &compiled,
            &member,
            OffsetDateTime::now_utc(),
        ))
    }

    /// Whether an API key of `org` granting `granted`, created by `creator`, may use
    /// `key` now ([`permissions::api_key_allows`]): the org's current settings and the
    /// creator's current rights decide, from the same cache as members' checks (no
    /// database read when warm).
    pub async fn api_key_allows(
        &self,
        org: Uuid,
        creator: Uuid,
        granted: KeySet,
        key: PermissionKey,
    ) -> Result<bool, ApiError> {
        let Some(compiled) = self.compiled(org).await? else {
            return Ok(false);
        };
        let creator = self.member(org, creator).await?;
        Ok(permissions::api_key_allows(
            &compiled,
            creator.as_deref(),
            granted,
            key,
            OffsetDateTime::now_utc(),
        ))
    }

    /// After a write that changed orgs' settings (or their district/school): every
    /// instance re-resolves them on its next request.
    pub async fn orgs_changed(&self, orgs: &[Uuid]) {
        self.cache.org_changed(orgs).await;
    }

    /// After a change of one member (role, status, membership).
    pub async fn member_changed(&self, org: Uuid, user: Uuid) {
        self.cache.member_changed(org, user).await;
    }
}

/// The guard: resolves the caller's membership in the path's org (404 if none),
/// checks the requirement (403 naming what is missing), and leaves the resolved
/// [`OrgMember`] in the request for the handler.
pub async fn guard(
    requirement: Requirement,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if requirement == Requirement::DistrictAuthority {
        return district_guard(req, next).await;
    }
    let (http_req, mut payload) = req.into_parts();
    let member = OrgMember::from_request(&http_req, &mut payload).await;
    let req = ServiceRequest::from_parts(http_req, payload);
    let member = match member {
        Ok(m) => m,
        Err(e) => return Ok(req.error_response(e)),
    };
    let allowed = match (&member.actor, requirement) {
        (_, Requirement::Member) => Ok(true),
        (_, Requirement::OrgAdmin) => Ok(member.is_admin()),
        // Settled by `district_guard` above.
        (_, Requirement::DistrictAuthority) => Ok(false),
        // An API key: its grants, bounded by what its creator holds now under the
        // org's current settings.
        (
            OrgActor::ApiKey {
                permissions,
                creator,
                ..
            },
            Requirement::Permission(key),
        ) => match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
            Some(state) => {
                state
                    .authz
                    .api_key_allows(
                        member.org_id().as_uuid(),
                        creator.as_uuid(),
                        *permissions,
                        key,
                    )
                    .await
            }
            None => Err(ApiError::internal("application state missing".into())),
        },
        (OrgActor::Member { caller, .. }, Requirement::Permission(key)) => {
            match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
                Some(state) => {
                    state
                        .authz
                        .check(member.org_id().as_uuid(), caller.user_id().as_uuid(), key)
                        .await
                }
                None => Err(ApiError::internal("application state missing".into())),
            }
        }
    };
    match allowed {
        Ok(true) => {
            req.extensions_mut().insert(member);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Ok(false) => Ok(req.error_response(denied(requirement))),
        Err(e) => Ok(req.error_response(e)),
    }
}

/// The guard of [`Requirement::DistrictAuthority`] routes: 404 unless the caller is a
/// member of the path's org, staff of its district, or a platform admin.
async fn district_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (http_req, mut payload) = req.into_parts();
    let caller = crate::auth::Caller::from_request(&http_req, &mut payload).await;
    let req = ServiceRequest::from_parts(http_req, payload);
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return Ok(req.error_response(e)),
    };
    let org = req
        .match_info()
        .get("org_id")
        .and_then(|s| Uuid::parse_str(s).ok());
    let Some(org) = org else {
        return Ok(req.error_response(ApiError::not_found("no such organization")));
    };
    let reach = match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
        Some(state) => {
            crate::routes::districts::org_in_reach(
                &crate::http::State(state.clone()),
                &caller,
                tenancy::OrgId::from_uuid(org),
            )
            .await
        }
        None => Err(ApiError::internal("application state missing".into())),
    };
    match reach {
        Ok(_) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.error_response(e)),
    }
}

fn denied(requirement: Requirement) -> ApiError {
    match requirement {
        Requirement::Permission(key) => ApiError::new(
            ErrorCode::PermissionDenied,
            format!("this needs the permission {}", key.as_str()),
        )
        .with_details(serde_json::json!({ "required_permission": key.as_str() })),
        Requirement::Member => ApiError::new(
            ErrorCode::PermissionDenied,
            "this needs an active membership",
        ),
        Requirement::OrgAdmin => ApiError::new(
            ErrorCode::PermissionDenied,
            "only an admin of this organization may do this",
        )
        .with_details(serde_json::json!({ "required_role": "admin" })),
        Requirement::DistrictAuthority => {
            ApiError::new(ErrorCode::PermissionDenied, "this needs district authority")
        }
    }
}
