use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aide::generate::GenContext;
use aide::openapi::{Operation, Response, StatusCode};
use std::sync::Arc;

use permissions::{BuiltinRole, KeySet, MemberContext, MemberStatus};
use tenancy::ports::AuditContext;
use tenancy::{OrgId, UserId};
use uuid::Uuid;

use super::Caller;
use super::caller::Authenticated;
use crate::authz::Authz;
use crate::http::openapi::error_responses;
use crate::http::{ApiError, ErrorCode};

/// Who acts in an org.
#[derive(Debug, Clone)]
pub enum OrgActor {
    /// An active member, signed in.
    Member {
        /// The caller.
        caller: Caller,
        /// Their membership as the permission engine sees it (from the two-level cache,
        /// invalidated by every membership change).
        context: Arc<MemberContext>,
    },
    /// An API key bound to this org.
    ApiKey {
        /// Its id.
        key_id: Uuid,
        /// The keys it grants (each request also needs the creator to hold the key now).
        permissions: KeySet,
        /// The admin who created it.
        creator: UserId,
        /// Client metadata.
        meta: audit::RequestMeta,
    },
}

/// The caller acting in the org named by the path's `{org_id}`: an active member, or
/// an API key bound to that org.
///
/// An org that does not exist and an org the caller is not a member of look the same:
/// 404, so ids cannot be probed.
#[derive(Debug, Clone)]
pub struct OrgMember {
    /// The org.
    pub org_id: OrgId,
    /// Who acts.
    pub actor: OrgActor,
}

impl OrgMember {
    /// The org's id.
    #[must_use]
    pub fn org_id(&self) -> OrgId {
        self.org_id
    }

    /// The context audit events are written with (the user, or the API key).
    #[must_use]
    pub fn audit_context(&self) -> AuditContext {
        match &self.actor {
            OrgActor::Member { caller, .. } => caller.audit_context(),
            OrgActor::ApiKey { key_id, meta, .. } => AuditContext {
                actor: audit::Actor::ApiKey(*key_id),
                request: meta.clone(),
            },
        }
    }

    /// The rank of the acting member's role; 403 for an API key (the action needs a
    /// person).
    pub fn rank(&self) -> Result<BuiltinRole, ApiError> {
        match &self.actor {
            OrgActor::Member { context, .. } => Ok(context.role.counts_as),
            OrgActor::ApiKey { .. } => Err(needs_a_person()),
        }
    }

    /// The acting member's user id; 403 for an API key.
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        match &self.actor {
            OrgActor::Member { caller, .. } => Ok(caller.user_id()),
            OrgActor::ApiKey { .. } => Err(needs_a_person()),
        }
    }

    /// Whether the actor is an active admin of the org (never an API key).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        matches!(&self.actor, OrgActor::Member { context, .. }
            if context.status == MemberStatus::Active && context.role.counts_as == BuiltinRole::Admin)
    }
}

fn needs_a_person() -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        "this action needs a signed-in member, not an API key",
    )
}

async fn resolve(req: &HttpRequest) -> Result<OrgMember, ApiError> {
    let authenticated = Authenticated::of(req).await?;
    let not_found = || ApiError::not_found("no such organization");
    let org_id = req
        .match_info()
        .get("org_id")
        .and_then(|s| Uuid::parse_str(s).ok())
        .map(OrgId::from_uuid)
        .ok_or_else(not_found)?;
    let authz = req
        .app_data::<web::Data<Authz>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing".into()))?;
    let actor = match authenticated {
        Authenticated::User(caller) => {
            // From the permission engine's two-level cache (no database read when
            // warm); an unknown org has no members, so it is 404 like a foreign one.
            let context = authz
                .member(org_id.as_uuid(), caller.user_id().as_uuid())
                .await?
                .ok_or_else(not_found)?;
            match context.status {
                MemberStatus::Active => {}
                MemberStatus::Removed => return Err(not_found()),
                MemberStatus::Invited | MemberStatus::Suspended => {
                    return Err(ApiError::new(
                        ErrorCode::PermissionDenied,
                        "your membership in this organization is not active",
                    ));
                }
            }
            OrgActor::Member { caller, context }
        }
        Authenticated::ApiKey {
            key_id,
            org_id: key_org,
            permissions,
            creator,
            meta,
        } => {
            // The token's own attenuation already refused another org; keep the
            // invariant visible here too.
            if key_org != org_id.as_uuid() {
                return Err(not_found());
            }
            // A key dies with its creator's membership or admin rights: checked on
            // every request through the cached member context (no database read when
            // warm), so a removal or demotion takes effect at once.
            let creator_context = authz.member(org_id.as_uuid(), creator).await?;
            if !permissions::api_key_alive(creator_context.as_deref()) {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "the API key is no longer valid: its creator is no longer an admin of this organization",
                ));
            }
            OrgActor::ApiKey {
                key_id,
                permissions,
                creator: UserId::from_uuid(creator),
                meta,
            }
        }
    };
    crate::http::request_context::record_org(org_id);
    Ok(OrgMember { org_id, actor })
}

impl FromRequest for OrgMember {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Already resolved by the route's guard.
        if let Some(member) = req.extensions().get::<OrgMember>() {
            let member = member.clone();
            return Box::pin(async move { Ok(member) });
        }
        let req = req.clone();
        Box::pin(async move {
            let member = resolve(&req).await?;
            req.extensions_mut().insert(member.clone());
            Ok(member)
        })
    }
}

/// The `{org_id}` path parameter every org route has.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct OrgPath {
    /// Organization id (UUID).
    #[allow(dead_code, reason = "schema only")]
    org_id: Uuid,
}

impl aide::OperationInput for OrgMember {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        let schema = ctx.schema.subschema_for::<OrgPath>();
        let params = aide::operation::parameters_from_schema(
            ctx,
            schema,
            aide::operation::ParamLocation::Path,
        );
        crate::http::extract::add_missing_parameters(ctx, operation, params);
    }
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
