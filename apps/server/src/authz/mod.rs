//! Authorization at the edge: the permission engine as the app uses it, and the one
//! guard every org-scoped route declares next to its registration
//! ([`crate::http::RouteDoc::permission`] / [`crate::http::RouteDoc::org_admin`]).

use actix_web::dev::ServiceRequest;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use permissions::MemberStatus;
use rate_limit::{Subject, Tier};

mod engine;

pub use engine::Authz;

use crate::auth::{Authenticated, OrgActor, OrgMember};
use crate::http::guard::GuardOutcome;
use crate::http::{ApiError, ErrorCode, Requirement};

/// The guard of the org routes (the app registers it as the edge's
/// [`crate::http::guard::RouteGuard`]; `DistrictAuthority` routes are settled by the
/// districts routes' own check): resolves the caller's membership in the path's org
/// (404 if none), checks the requirement (403 naming what is missing), and leaves the
/// resolved [`OrgMember`] in the request for the handler.
pub async fn check(requirement: Requirement, req: ServiceRequest) -> GuardOutcome {
    let (http_req, mut payload) = req.into_parts();
    let member = OrgMember::from_request(&http_req, &mut payload).await;
    let req = ServiceRequest::from_parts(http_req, payload);
    let member = match member {
        Ok(m) => m,
        Err(e) => return (req, Err(e)),
    };
    let allowed = match (&member.actor, requirement) {
        (_, Requirement::Member) => Ok(true),
        (_, Requirement::OrgAdmin) => Ok(member.is_admin()),
        // Settled by the districts routes' own check (`routes::district_authority`).
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
        ) => match req.app_data::<actix_web::web::Data<Authz>>() {
            Some(authz) => {
                authz
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
            match req.app_data::<actix_web::web::Data<Authz>>() {
                Some(authz) => {
                    authz
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
            (req, Ok(()))
        }
        Ok(false) => (req, Err(denied(requirement))),
        Err(e) => (req, Err(e)),
    }
}

/// Who a request with credentials counts against for rate limiting, and in which tier
/// (for a route under `/orgs/{org_id}`, the caller's role there): the app registers it
/// as the edge's [`crate::http::rate_limit::CallerIdentity`]. `None` for an invalid
/// credential.
pub async fn rate_identity(req: HttpRequest) -> Option<(Subject, Tier)> {
    match Authenticated::of(&req).await {
        Ok(Authenticated::ApiKey { key_id, .. }) => Some((Subject::ApiKey(key_id), Tier::ApiKey)),
        Ok(Authenticated::User(caller)) => {
            let user = caller.user_id().as_uuid();
            let authz = req.app_data::<actix_web::web::Data<Authz>>();
            let tier = match (crate::http::rate_limit::org_of(&req), authz) {
                (Some(org), Some(authz)) => match authz.member(org, user).await {
                    Ok(Some(m)) if m.status == MemberStatus::Active => {
                        Tier::of_role(m.role.counts_as.as_str()).unwrap_or(Tier::Authenticated)
                    }
                    _ => Tier::Authenticated,
                },
                _ => Tier::Authenticated,
            };
            Some((Subject::User(user), tier))
        }
        Err(_) => None,
    }
}

/// Who follows an org's change events.
#[derive(Debug, Clone, Copy)]
pub enum Follower {
    /// A signed-in user.
    User(uuid::Uuid),
    /// An API key bound to the org: its grants, its creator.
    ApiKey {
        /// The keys it grants.
        permissions: permissions::KeySet,
        /// The admin who created it.
        creator: uuid::Uuid,
    },
}

impl Follower {
    /// The caller of an org route.
    #[must_use]
    pub fn of(member: &OrgMember) -> Self {
        match &member.actor {
            OrgActor::Member { caller, .. } => Self::User(caller.user_id().as_uuid()),
            OrgActor::ApiKey {
                permissions,
                creator,
                ..
            } => Self::ApiKey {
                permissions: *permissions,
                creator: creator.as_uuid(),
            },
        }
    }
}

/// `who` as a receiver of `org`'s change events now ([`audit::Receiver`]), `None` when
/// they are no longer an active member: the keys the event catalog's audiences name,
/// checked with the permission engine exactly as the guard checks a route's key (an API
/// key: its grants bounded by its creator's rights now), and whether they are an active
/// admin. [`audit::Receiver::may_see`] then decides each event. From the engine's cache
/// (the org's table and the member's context looked up once, every key checked
/// against them): streams call it again every second.
pub async fn receiver(
    authz: &Authz,
    org: uuid::Uuid,
    who: Follower,
) -> Result<Option<audit::Receiver>, ApiError> {
    static AUDIENCE: std::sync::LazyLock<permissions::KeySet> =
        std::sync::LazyLock::new(audit::audience_keys);
    let now = time::OffsetDateTime::now_utc();
    match who {
        Follower::User(user) => {
            let Some(member) = authz.member(org, user).await? else {
                return Ok(None);
            };
            if member.status != MemberStatus::Active {
                return Ok(None);
            }
            let Some(compiled) = authz.compiled(org).await? else {
                return Ok(None);
            };
            let holds = AUDIENCE
                .iter()
                .filter(|&key| permissions::check(&compiled, &member, key, now))
                .collect();
            Ok(Some(audit::Receiver {
                user: Some(user),
                admin: member.role.counts_as == permissions::BuiltinRole::Admin,
                holds,
            }))
        }
        Follower::ApiKey {
            permissions,
            creator,
        } => {
            let holds = match authz.compiled(org).await? {
                Some(compiled) => {
                    let creator = authz.member(org, creator).await?;
                    AUDIENCE
                        .iter()
                        .filter(|&key| {
                            permissions::api_key_allows(
                                &compiled,
                                creator.as_deref(),
                                permissions,
                                key,
                                now,
                            )
                        })
                        .collect()
                }
                None => permissions::KeySet::new(),
            };
            Ok(Some(audit::Receiver {
                user: None,
                admin: false,
                holds,
            }))
        }
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
