//! The route guard as the edge sees it: what a route requires ([`Requirement`], declared
//! next to its registration) and the middleware that asks the app's guard
//! ([`RouteGuard`], registered as app data by the composition root) before the handler
//! runs. The edge knows no permission engine: the check is injected.

use std::sync::Arc;
use tracing::Instrument;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use futures_util::future::LocalBoxFuture;
use permissions::PermissionKey;

use super::error::ApiError;

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

/// The outcome of a guard check: the request back (with whatever the guard left in its
/// extensions for the handler) and whether it may go on.
pub type GuardOutcome = (ServiceRequest, Result<(), ApiError>);

type CheckFn =
    dyn Fn(Requirement, ServiceRequest) -> LocalBoxFuture<'static, GuardOutcome> + Send + Sync;

/// The app's guard: decides a request against a route's [`Requirement`]. Registered as
/// `web::Data<RouteGuard>` by the app; a guarded route without one answers 500.
#[derive(Clone)]
pub struct RouteGuard(Arc<CheckFn>);

impl RouteGuard {
    /// A guard from its check.
    pub fn new(
        check: impl Fn(Requirement, ServiceRequest) -> LocalBoxFuture<'static, GuardOutcome>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }
}

/// The middleware of a guarded route: the app's guard decides; a refusal is answered in
/// the envelope, an allowed request goes on to the handler.
pub async fn middleware(
    requirement: Requirement,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(guard) = req.app_data::<web::Data<RouteGuard>>().cloned() else {
        return Ok(req.error_response(ApiError::internal(
            "route guard missing from the app".into(),
        )));
    };
    let (req, outcome) = (guard.0)(requirement, req)
        .instrument(tracing::debug_span!("authz"))
        .await;
    match outcome {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.error_response(e)),
    }
}
