use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aide::generate::GenContext;
use aide::openapi::{Operation, Response, StatusCode};
use tenancy::ports::OrgRepository;
use tenancy::{Membership, MembershipStatus, OrgId, Organization};
use uuid::Uuid;

use super::Caller;
use crate::http::openapi::error_responses;
use crate::http::{ApiError, ErrorCode};
use crate::state::AppState;

/// The caller as an active member of the org named by the path's `{org_id}`.
///
/// An org that does not exist and an org the caller is not a member of look the same:
/// 404, so ids cannot be probed.
#[derive(Debug, Clone)]
pub struct OrgMember {
    /// The authenticated caller.
    pub caller: Caller,
    /// The org.
    pub org: Organization,
    /// The caller's membership in it.
    pub membership: Membership,
}

impl OrgMember {
    /// The org's id.
    #[must_use]
    pub fn org_id(&self) -> OrgId {
        self.org.id
    }
}

impl FromRequest for OrgMember {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Already resolved by the route's guard.
        if let Some(member) = req.extensions().get::<OrgMember>() {
            let member = member.clone();
            return Box::pin(async move { Ok(member) });
        }
        let caller = Caller::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let caller = caller.await?;
            let not_found = || ApiError::not_found("no such organization");
            let org_id = req
                .match_info()
                .get("org_id")
                .and_then(|s| Uuid::parse_str(s).ok())
                .map(OrgId::from_uuid)
                .ok_or_else(not_found)?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("application state missing".into()))?;
            let membership = state
                .orgs
                .get_membership(org_id, caller.user_id())
                .await
                .map_err(|e| ApiError::internal(e.0))?
                .ok_or_else(not_found)?;
            let org = state
                .orgs
                .get_org(org_id)
                .await
                .map_err(|e| ApiError::internal(e.0))?
                .ok_or_else(not_found)?;
            if membership.status != MembershipStatus::Active {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "your membership in this organization is not active",
                ));
            }
            tracing::Span::current().record("org_id", tracing::field::display(org_id));
            Ok(Self {
                caller,
                org,
                membership,
            })
        })
    }
}

impl aide::OperationInput for OrgMember {
    fn inferred_early_responses(
        ctx: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(
            ctx,
            &[
                ErrorCode::Unauthenticated,
                ErrorCode::NotFound,
                ErrorCode::PermissionDenied,
            ],
        )
    }
}
