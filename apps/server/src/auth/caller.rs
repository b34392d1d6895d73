use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aide::generate::GenContext;
use aide::openapi::{Operation, Response, StatusCode};
use tenancy::UserId;
use tenancy::ports::AuditContext;
use uuid::Uuid;

use crate::http::openapi::error_responses;
use crate::http::request_context::current_request_id;
use crate::http::{ApiError, ErrorCode};
use crate::state::AppState;

/// Who a verified request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user.
    User {
        /// The user.
        user_id: UserId,
        /// The session.
        session_id: Uuid,
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(caller) = req.extensions().get::<Caller>() {
            let caller = caller.clone();
            return Box::pin(async move { Ok(caller) });
        }
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("application state missing".into()))?;
            let token = bearer(&req).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "missing bearer token (Authorization: Bearer <token>)",
                )
            })?;
            let org = req
                .match_info()
                .get("org_id")
                .and_then(|s| Uuid::parse_str(s).ok());
            let verified: Arc<credentials::VerifiedToken> =
                state.auth.authenticate(&token, org).await?;
            let principal = match &verified.principal {
                credentials::Principal::Session {
                    user_id,
                    session_id,
                } => Principal::User {
                    user_id: UserId::from_uuid(*user_id),
                    session_id: *session_id,
                },
                credentials::Principal::ApiKey { .. } => {
                    return Err(ApiError::new(ErrorCode::Unauthenticated, "unknown API key"));
                }
            };
            let caller = Caller {
                principal,
                meta: request_meta(&req),
            };
            tracing::Span::current().record("user_id", tracing::field::display(caller.user_id()));
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
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
