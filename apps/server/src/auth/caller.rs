use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aide::generate::GenContext;
use aide::openapi::{Operation, Response, StatusCode};
use permissions::KeySet;
use tenancy::UserId;
use tenancy::ports::AuditContext;
use uuid::Uuid;

use super::AuthService;
use crate::http::openapi::error_responses;
use crate::http::request_context::current_request_id;
use crate::http::{ApiError, ErrorCode};

/// Who a verified request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user.
    User {
        /// The user.
        user_id: UserId,
        /// The session.
        session_id: Uuid,
        /// Whether the session's sign-in passed a second factor.
        second_factor: bool,
    },
}

/// An authenticated caller, plus the client metadata audit events need.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Client IP, user agent, request id.
    pub meta: audit::RequestMeta,
}

impl Caller {
    /// The signed-in user.
    #[must_use]
    pub fn user_id(&self) -> UserId {
        match &self.principal {
            Principal::User { user_id, .. } => *user_id,
        }
    }

    /// Whether the caller's session was opened with a second factor.
    #[must_use]
    pub fn second_factor(&self) -> bool {
        match &self.principal {
            Principal::User { second_factor, .. } => *second_factor,
        }
    }

    /// The context audit events are written with.
    #[must_use]
    pub fn audit_context(&self) -> AuditContext {
        AuditContext {
            actor: match &self.principal {
                Principal::User { user_id, .. } => audit::Actor::User(user_id.as_uuid()),
            },
            request: self.meta.clone(),
        }
    }
}

/// Client metadata (IP, user agent, request id) for audit events of public routes.
#[derive(Debug, Clone)]
pub struct ClientMeta(pub audit::RequestMeta);

impl ClientMeta {
    /// The context for events whose actor is not known yet (e.g. registration).
    #[must_use]
    pub fn audit_context(&self, actor: audit::Actor) -> AuditContext {
        AuditContext {
            actor,
            request: self.0.clone(),
        }
    }
}

fn request_meta(req: &HttpRequest) -> audit::RequestMeta {
    audit::RequestMeta {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        request_id: current_request_id(),
    }
}

impl FromRequest for ClientMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self(request_meta(req))))
    }
}

impl aide::OperationInput for ClientMeta {}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Who a verified credential speaks for, before deciding whether the route accepts it.
#[derive(Debug, Clone)]
pub(crate) enum Authenticated {
    /// A signed-in user.
    User(Caller),
    /// An API key (bound to one org, holding some keys).
    ApiKey {
        /// Its id.
        key_id: Uuid,
        /// The org it is bound to (verified against the path's org by the token itself).
        org_id: Uuid,
        /// The keys it grants.
        permissions: KeySet,
        /// The user who created it: the key never carries more than they hold now.
        creator: Uuid,
        /// Client metadata.
        meta: audit::RequestMeta,
    },
}

impl Authenticated {
    /// Verifies the request's bearer token (once per request; cached in its extensions).
    pub(crate) async fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        if let Some(done) = req.extensions().get::<Authenticated>() {
            return Ok(done.clone());
        }
        let auth = req
            .app_data::<web::Data<AuthService>>()
            .cloned()
            .ok_or_else(|| ApiError::internal("application state missing".into()))?;
        let token = bearer(req).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "missing bearer token (Authorization: Bearer <token>)",
            )
        })?;
        let org = req
            .match_info()
            .get("org_id")
            .and_then(|s| Uuid::parse_str(s).ok());
        let authentication = auth.authenticate(&token, org).await?;
        let verified: Arc<credentials::VerifiedToken> = authentication.verified;
        let meta = request_meta(req);
        let done = match &verified.principal {
            credentials::Principal::Session {
                user_id,
                session_id,
                second_factor,
            } => {
                crate::http::request_context::record_user(user_id);
                Self::User(Caller {
                    principal: Principal::User {
                        user_id: UserId::from_uuid(*user_id),
                        session_id: *session_id,
                        second_factor: *second_factor,
                    },
                    meta,
                })
            }
            credentials::Principal::ApiKey {
                org_id,
                key_id,
                permissions,
            } => Self::ApiKey {
                key_id: *key_id,
                org_id: *org_id,
                permissions: permissions
                    .iter()
                    .filter_map(|k| permissions::PermissionKey::parse(k).ok())
                    .collect(),
                creator: authentication.api_key_creator.ok_or_else(|| {
                    ApiError::new(ErrorCode::Unauthenticated, "the API key has been revoked")
                })?,
                meta,
            },
        };
        req.extensions_mut().insert(done.clone());
        Ok(done)
    }
}

impl Caller {
    /// The signed-in user of `req` (as the extractor), for routes where signing in is
    /// optional and decided by the presence of `Authorization`.
    ///
    /// # Errors
    /// 401 for missing or invalid credentials, 403 for an API key.
    pub async fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        match Authenticated::of(req).await? {
            Authenticated::User(caller) => Ok(caller),
            Authenticated::ApiKey { .. } => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "API keys can only be used on the organization routes they are granted",
            )),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    /// A signed-in user; an API key is refused here (403): keys only work on the
    /// organization routes whose permission they carry.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Self::of(&req).await })
    }
}

/// The signed-in user when the request carries `Authorization`, else nobody (for routes
/// open to both); credentials that are sent must be valid (401 otherwise).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if req
                .headers()
                .contains_key(actix_web::http::header::AUTHORIZATION)
            {
                Caller::of(&req).await.map(|c| Self(Some(c)))
            } else {
                Ok(Self(None))
            }
        })
    }
}

impl aide::OperationInput for MaybeCaller {
    fn inferred_early_responses(
        ctx: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(ctx, &[ErrorCode::Unauthenticated])
    }
}

impl aide::OperationInput for Caller {
    fn inferred_early_responses(
        ctx: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(ctx, &[ErrorCode::Unauthenticated])
    }
}
