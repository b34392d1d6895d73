//! The district tier: platform bootstrap, districts, schools, staff, permission
//! templates with locks, and orgs created by district staff under their schools.

use actix_web::FromRequest;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use districts::ports::{
    CreateDistrictError, CreateDistrictRequest, CreateSchoolError, CreateSchoolRequest,
    DeleteSchoolError, DistrictPageRequest, DistrictRepository, MoveOrgError, MoveSchoolError,
    OrgPlacement, OrgScope, PlacedOrg, ReadError, RemoveStaffError, SchoolChanges, SetStaffError,
    UpdateSchoolError,
};
use districts::rules::OrgStanding;
use districts::service::{Caller as DistrictCaller, DistrictService, ServiceError};
use districts::{
    DisplayName, District, DistrictCode, DistrictId, DistrictStaffRole, GradeLevels, School,
    SchoolId, SubscriptionTier,
};
use districts_store::SeaOrmDistrictRepository;
use garde::Validate;
use permissions::{
    PermissionKey, ScopedSetting, TemplateChange, TemplateSaved, TemplateScope, TemplateUpdate,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::ports::{CreateOrgRequest, OrgRepository, SessionRepository, UserRepository};
use tenancy::{MembershipStatus, OrgId, OrgKind, SignupCode, UserId};
use uuid::Uuid;

use super::common::{domain_rule, required_version};
use super::permissions::{RoleDto, ScopeDto};
use crate::auth::Caller;
use crate::http::guard::GuardOutcome;
use crate::http::{
    ApiError, ApiRoutes, Created, ErrorCode, FieldError, IfMatch, Json, NoContent, Order,
    PageQuery, Paged, Pagination, Path, Query, Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    const TAG: &str = "districts";
    r.post(
        "/api/v2/platform/bootstrap",
        bootstrap,
        RouteDoc::new("bootstrap_platform_admin", "Become the first platform admin with the one-time BOOTSTRAP_TOKEN", "platform")
            .description("Works only while no platform admin exists and the server was started with `BOOTSTRAP_TOKEN`.")
            .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied, ErrorCode::Conflict]),
    );
    r.get(
        "/api/v2/districts",
        list_districts,
        RouteDoc::new("list_districts", "Districts the caller may see", TAG)
            .description("In id order, paginated (`limit`, `cursor`); `meta.pagination.total` for district staff (platform admins page through every district without it).")
            .errors(&[ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/districts",
        create_district,
        RouteDoc::new(
            "create_district",
            "Create a district (platform admins)",
            TAG,
        )
        .errors(&[
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.get(
        "/api/v2/districts/{district_id}",
        get_district,
        RouteDoc::new(
            "get_district",
            "One district (its staff and platform admins)",
            TAG,
        )
        .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::PATCH,
        "/api/v2/districts/{district_id}",
        update_district,
        RouteDoc::new(
            "update_district",
            "Rename a district (its admins) or change its code or tier (platform admins)",
            TAG,
        )
        .description("Send the `version` you read (or `If-Match` with the `ETag`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::VersionMismatch,
            ErrorCode::PreconditionRequired,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/districts/{district_id}",
        delete_district,
        RouteDoc::new("delete_district", "Delete a district (platform admins)", TAG)
            .description("Its schools and orgs are detached (they carry on standalone, their permissions re-resolved at once); its staff and templates are removed. Answers 200 with what was detached (`detached_schools`, `detached_orgs`), not 204: those schools and orgs now need a new place.")
            .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied, ErrorCode::VersionMismatch]),
    );
    r.get(
        "/api/v2/districts/{district_id}/schools",
        list_schools,
        RouteDoc::new("list_schools", "The district's schools", TAG)
            .description("In id order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
            .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/districts/{district_id}/schools",
        create_school,
        RouteDoc::new(
            "create_school",
            "Add a school to the district (district admins)",
            TAG,
        )
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/move",
        move_org,
        RouteDoc::new(
            "move_org",
            "Move an org to another school (and its district), or make it standalone",
            TAG,
        )
        .description("The org takes its new school's and district's permission templates at once (its cached permissions are invalidated everywhere). Recorded as `org.move` in the org's audit chain and in each district's. Send the org `version` you read to guard against concurrent changes.")
        .district_authority()
        .errors(&[ErrorCode::NotFound, ErrorCode::VersionMismatch]),
    );
    r.post(
        "/api/v2/schools/{school_id}/move",
        move_school,
        RouteDoc::new(
            "move_school",
            "Move a school to another district (or none)",
            TAG,
        )
        .description("Every org of the school takes the new district's templates at once; audited.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
        ]),
    );
    r.route(
        Method::PUT,
        "/api/v2/districts/{district_id}/staff/{user_id}",
        set_staff,
        RouteDoc::new(
            "set_district_staff",
            "Make a user district admin or viewer (district admins)",
            TAG,
        )
        .description("Send the `version` of their staff role you read (`GET …/staff`; 0 for someone who is not staff yet), or `If-Match`: without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH` (`details.current_version`).")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::VersionMismatch,
        ]),
    );
    r.get(
        "/api/v2/districts/{district_id}/staff",
        list_staff,
        RouteDoc::new(
            "list_district_staff",
            "The district's staff and their roles (its staff and platform admins)",
            TAG,
        )
        .description("In user id order, paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/districts/{district_id}/staff/{user_id}",
        remove_staff,
        RouteDoc::new(
            "remove_district_staff",
            "Remove a user from the district's staff (district admins)",
            TAG,
        )
        .description("Answers 404 when the user is not staff of the district.")
        .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied]),
    );
    r.get(
        "/api/v2/districts/{district_id}/orgs",
        list_district_orgs,
        RouteDoc::new(
            "list_district_orgs",
            "The organizations placed in the district (its staff and platform admins)",
            TAG,
        )
        .description("In id order, keyset-paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/schools/{school_id}",
        get_school,
        RouteDoc::new(
            "get_school",
            "One school (its district's staff and platform admins)",
            TAG,
        )
        .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::PATCH,
        "/api/v2/schools/{school_id}",
        update_school,
        RouteDoc::new(
            "update_school",
            "Rename a school or change its code or grades (its district's admins)",
            TAG,
        )
        .description("Send the `version` you read (or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Its district changes only by moving it.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::VersionMismatch,
            ErrorCode::PreconditionRequired,
            ErrorCode::ValidationFailed,
        ]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/schools/{school_id}",
        delete_school,
        RouteDoc::new(
            "delete_school",
            "Delete a school no organization is placed at (its district's admins)",
            TAG,
        )
        .description("Send the `version` you read (`?version=` or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412. Refused with 409 `CONFLICT` (`details.org_count`) while organizations are placed at the school: move them first. Its permission templates go with it.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::VersionMismatch,
            ErrorCode::PreconditionRequired,
        ]),
    );
    r.get(
        "/api/v2/schools/{school_id}/orgs",
        list_school_orgs,
        RouteDoc::new(
            "list_school_orgs",
            "The organizations placed at the school (its district's staff and platform admins)",
            TAG,
        )
        .description("In id order, keyset-paginated (`limit`, `cursor`); `meta.pagination.total` counts them all.")
        .errors(&[ErrorCode::NotFound, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/districts/{district_id}/permission-templates",
        list_templates,
        RouteDoc::new(
            "list_permission_templates",
            "The district's permission settings (templates) and locks, with their version",
            TAG,
        )
        .errors(&[ErrorCode::NotFound]),
    );
    r.route(
        Method::PUT,
        "/api/v2/districts/{district_id}/permission-templates",
        write_templates,
        RouteDoc::new(
            "write_permission_templates",
            "Set and remove many of the district's template keys at once: all or nothing",
            TAG,
        )
        .description("Send the template `version` you read (`version` or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Applies to every org below at once (each re-resolves on every instance); every changed key is audited in the district's chain and each org's.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::VersionMismatch,
        ]),
    );
    r.route(
        Method::PUT,
        "/api/v2/districts/{district_id}/permission-templates/{key}",
        set_template,
        RouteDoc::new("set_permission_template", "Set (and optionally lock) a key for every org of the district", TAG)
            .description("Applies to every org below the district at once; a locked key cannot be overridden by schools or orgs. Send the templates' `version` you read (`GET …/permission-templates`, or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`; the answer carries the new `version`.")
            .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied, ErrorCode::ValidationFailed, ErrorCode::PreconditionRequired, ErrorCode::VersionMismatch]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/districts/{district_id}/permission-templates/{key}",
        clear_template,
        RouteDoc::new(
            "clear_permission_template",
            "Remove the district's setting (and lock) of a key",
            TAG,
        )
        .description("Answers 204; every org below re-resolves the key at once (read the templates again for their new `version`).")
        .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied]),
    );
    r.get(
        "/api/v2/schools/{school_id}/permission-templates",
        list_school_templates,
        RouteDoc::new(
            "list_school_permission_templates",
            "The school's permission settings (between district and org), with their version",
            TAG,
        )
        .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied]),
    );
    r.route(
        Method::PUT,
        "/api/v2/schools/{school_id}/permission-templates",
        write_school_templates,
        RouteDoc::new(
            "write_school_permission_templates",
            "Set and remove many of the school's template keys at once: all or nothing",
            TAG,
        )
        .description("Send the template `version` you read (`version` or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`. Keys the district locked answer 409 `PERMISSION_LOCKED` naming every one (`details.locked_keys`). Applies to every org of the school at once; audited.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::PermissionLocked,
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::VersionMismatch,
        ]),
    );
    r.route(
        Method::PUT,
        "/api/v2/schools/{school_id}/permission-templates/{key}",
        set_school_template,
        RouteDoc::new(
            "set_school_permission_template",
            "Set (and optionally lock) a key for every org of the school",
            TAG,
        )
        .description("Refused with 409 `PERMISSION_LOCKED` when the district locked the key. Send the templates' `version` you read (`GET …/permission-templates`, or `If-Match`): without either 428 `PRECONDITION_REQUIRED`, a stale one 412 `VERSION_MISMATCH`; the answer carries the new `version`.")
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::PermissionLocked,
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::VersionMismatch,
        ]),
    );
    r.route(
        Method::DELETE,
        "/api/v2/schools/{school_id}/permission-templates/{key}",
        clear_school_template,
        RouteDoc::new(
            "clear_school_permission_template",
            "Remove the school's setting of a key",
            TAG,
        )
        .description("Answers 204; every org of the school re-resolves the key at once (read the templates again for their new `version`).")
        .errors(&[ErrorCode::NotFound, ErrorCode::PermissionDenied]),
    );
    r.post(
        "/api/v2/districts/{district_id}/orgs",
        create_district_org,
        RouteDoc::new(
            "create_district_org",
            "Create an organization under one of the district's schools (district admins)",
            TAG,
        )
        .errors(&[
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Conflict,
            ErrorCode::ValidationFailed,
        ]),
    );
}

type Service = DistrictService<SeaOrmDistrictRepository>;

fn service(state: &State) -> Service {
    DistrictService::new(state.districts.clone())
}

async fn district_caller(state: &State, caller: &Caller) -> Result<DistrictCaller, ApiError> {
    let creds = state
        .auth
        .sessions()
        .credentials_by_id(caller.user_id())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "unknown user"))?;
    let platform_admin = districts::rules::usable_platform_admin(
        creds.is_platform_admin,
        state.platform_admin_second_factor,
        caller.second_factor(),
    )
    .map_err(second_factor_required)?;
    Ok(DistrictCaller {
        user: caller.user_id(),
        platform_admin,
        second_factor: caller.second_factor(),
    })
}

/// 403 with `details.reason = second_factor_required`.
fn second_factor_required(e: districts::rules::SecondFactorRequired) -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, e.to_string())
        .with_details(serde_json::json!({ "reason": "second_factor_required" }))
}

/// The staff role `who` may act with in `district` (the district's second-factor rule
/// applied).
async fn usable_role(
    state: &State,
    who: &DistrictCaller,
    district: DistrictId,
) -> Result<Option<DistrictStaffRole>, ApiError> {
    service(state)
        .role(who, district)
        .await
        .map_err(|e| match e {
            districts::service::StandingError::SecondFactorRequired(e) => second_factor_required(e),
            districts::service::StandingError::Read(e) => read_error(e),
        })
}

fn service_error<E: std::error::Error + Send + Sync + 'static>(
    e: ServiceError<E>,
    store: impl FnOnce(E) -> ApiError,
) -> ApiError {
    match e {
        ServiceError::Forbidden(_) => ApiError::new(
            ErrorCode::PermissionDenied,
            "you do not have the district role this needs",
        ),
        ServiceError::SecondFactorRequired(e) => second_factor_required(e),
        ServiceError::Store(e) => store(e),
    }
}

fn read_error(e: ReadError) -> ApiError {
    ApiError::internal(Box::new(e))
}

/// The bootstrap token.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BootstrapBody {
    /// The server's `BOOTSTRAP_TOKEN`.
    #[garde(length(chars, max = 512))]
    pub token: String,
}

/// The outcome of the bootstrap.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Bootstrapped {
    /// Always `true`: the caller is now platform admin.
    pub platform_admin: bool,
}

async fn bootstrap(
    state: State,
    caller: Caller,
    Json(body): Json<BootstrapBody>,
) -> Result<Reply<Bootstrapped>, ApiError> {
    let Some(expected) = &state.bootstrap_token else {
        return Err(ApiError::not_found(
            "bootstrap is not enabled on this server",
        ));
    };
    if !crate::http::security::constant_time_eq(expected.expose().as_bytes(), body.token.as_bytes())
    {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "wrong bootstrap token",
        ));
    }
    let promoted = state
        .accounts
        .users()
        .promote_first_platform_admin(&caller.audit_context(), caller.user_id())
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    if !promoted {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a platform admin already exists",
        ));
    }
    Ok(Reply(Bootstrapped {
        platform_admin: true,
    }))
}

/// A district.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DistrictView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Code.
    pub code: String,
    /// `basic`, `professional` or `enterprise`.
    pub tier: &'static str,
    /// Whether the district's staff act on it only from sessions opened with a second
    /// factor (two-factor sign-in).
    pub require_two_factor: bool,
    /// Version.
    pub version: i64,
}

fn district_view(d: District) -> DistrictView {
    DistrictView {
        id: d.id.as_uuid(),
        name: d.name.to_string(),
        code: d.code.to_string(),
        tier: d.tier.as_str(),
        require_two_factor: districts::rules::requires_second_factor(&d.settings),
        version: d.version,
    }
}

async fn list_districts(
    state: State,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Paged<DistrictView>, ApiError> {
    let who = district_caller(&state, &caller).await?;
    let repo = &state.districts;
    let limit = q.limit();
    if who.platform_admin {
        // Every district: paged by the store, in id order (no total: not cheap).
        let page = repo
            .list_districts(DistrictPageRequest::new(
                q.cursor.map(DistrictId::from_uuid),
                limit,
            ))
            .await
            .map_err(read_error)?;
        return Ok(Paged {
            items: page.items.into_iter().map(district_view).collect(),
            pagination: Pagination {
                limit,
                next_cursor: page.next_after.map(|d| d.to_string()),
                total: None,
            },
        });
    }
    // A staff member's few districts: read whole, paged here in id order.
    let mut mine = Vec::new();
    for (id, _) in repo.districts_of(who.user).await.map_err(read_error)? {
        if let Some(d) = repo.get_district(id).await.map_err(read_error)? {
            mine.push(d);
        }
    }
    Ok(Paged::from_all(
        mine,
        |d: &District| d.id.as_uuid(),
        Order::Ascending,
        q.cursor.as_ref(),
        limit,
    )
    .map(district_view))
}

/// A new district.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateDistrictBody {
    /// Name.
    #[garde(custom(domain_rule(DisplayName::parse)))]
    pub name: String,
    /// Unique code, e.g. `SPRINGFIELD-USD`.
    #[garde(custom(domain_rule(DistrictCode::parse)))]
    pub code: String,
    /// `basic`, `professional` or `enterprise` (default `enterprise`).
    #[garde(inner(custom(domain_rule(SubscriptionTier::parse))))]
    #[schemars(with = "Option<TierName>")]
    pub tier: Option<String>,
}

fn invalid(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        code: "invalid".into(),
        message: e.to_string(),
    }])
}

async fn create_district(
    state: State,
    caller: Caller,
    Json(body): Json<CreateDistrictBody>,
) -> Result<Created<DistrictView>, ApiError> {
    let who = district_caller(&state, &caller).await?;
    let req = CreateDistrictRequest {
        name: DisplayName::parse(&body.name).map_err(|e| invalid("name", e))?,
        code: DistrictCode::parse(&body.code).map_err(|e| invalid("code", e))?,
        tier: body
            .tier
            .as_deref()
            .map_or(Ok(SubscriptionTier::Enterprise), SubscriptionTier::parse)
            .map_err(|e| invalid("tier", e))?,
        settings: serde_json::Map::new(),
    };
    let d = service(&state)
        .create_district(&who, &caller.audit_context(), req)
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                CreateDistrictError::DuplicateCode { .. } => {
                    ApiError::new(ErrorCode::Conflict, "a district with this code exists")
                }
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Created::at(
        format!("/api/v2/districts/{}", d.id),
        district_view(d),
    ))
}

/// Path of a district.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DistrictPath {
    /// District id.
    pub district_id: Uuid,
}

/// Loads a district the caller may see, or 404 (existence is not revealed).
pub(super) async fn visible_district(
    state: &State,
    caller: &Caller,
    id: Uuid,
) -> Result<(DistrictCaller, District), ApiError> {
    let who = district_caller(state, caller).await?;
    let d = service(state)
        .get_district(&who, DistrictId::from_uuid(id))
        .await
        .map_err(|e| hidden(e, "no such district"))?
        .ok_or_else(|| ApiError::not_found("no such district"))?;
    Ok((who, d))
}

async fn get_district(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
) -> Result<Tagged<DistrictView>, ApiError> {
    let (_, d) = visible_district(&state, &caller, p.district_id).await?;
    Ok(Tagged {
        version: d.version,
        data: district_view(d),
    })
}

/// Changes to a district.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateDistrictBody {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// New name.
    #[garde(inner(custom(domain_rule(DisplayName::parse))))]
    pub name: Option<String>,
    /// New code (platform admins).
    #[garde(inner(custom(domain_rule(DistrictCode::parse))))]
    pub code: Option<String>,
    /// New tier (platform admins).
    #[garde(inner(custom(domain_rule(SubscriptionTier::parse))))]
    #[schemars(with = "Option<TierName>")]
    pub tier: Option<String>,
    /// Require a second factor of the district's staff: while on, staff signed in
    /// without one are refused on the district's routes (403, `details.reason =
    /// second_factor_required`) until they sign in with two-factor sign-in.
    #[serde(default)]
    #[garde(skip)]
    pub require_two_factor: Option<bool>,
}

async fn update_district(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    if_match: IfMatch,
    Json(body): Json<UpdateDistrictBody>,
) -> Result<Tagged<DistrictView>, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    // Whoever turns the requirement on shows they meet it (no one locks the district's
    // staff out with a session they could not open again).
    if body.require_two_factor == Some(true) && !caller.second_factor() {
        return Err(second_factor_required(
            districts::rules::SecondFactorRequired,
        ));
    }
    let version = required_version(body.version, if_match)?;
    let changes = districts::ports::DistrictChanges {
        name: body
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| invalid("name", e))?,
        code: body
            .code
            .as_deref()
            .map(DistrictCode::parse)
            .transpose()
            .map_err(|e| invalid("code", e))?,
        tier: body
            .tier
            .as_deref()
            .map(SubscriptionTier::parse)
            .transpose()
            .map_err(|e| invalid("tier", e))?,
        settings: body.require_two_factor.map(|on| {
            let mut settings = d.settings.clone();
            settings.insert(
                districts::rules::REQUIRE_TWO_FACTOR.to_owned(),
                serde_json::Value::Bool(on),
            );
            settings
        }),
    };
    let updated = service(&state)
        .update_district(&who, &caller.audit_context(), d.id, Some(version), changes)
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                districts::ports::UpdateDistrictError::NotFound => {
                    ApiError::not_found("no such district")
                }
                districts::ports::UpdateDistrictError::VersionMismatch { current } => {
                    ApiError::new(
                        ErrorCode::VersionMismatch,
                        "the district changed since you read it",
                    )
                    .with_details(serde_json::json!({"current_version": current}))
                }
                districts::ports::UpdateDistrictError::DuplicateCode { .. } => {
                    ApiError::new(ErrorCode::Conflict, "a district with this code exists")
                }
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Tagged {
        version: updated.version,
        data: district_view(updated),
    })
}

/// What deleting a district did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeletedView {
    /// Schools now standalone.
    pub detached_schools: Vec<Uuid>,
    /// Orgs now standalone (their permissions re-resolved).
    pub detached_orgs: Vec<Uuid>,
}

/// The version to delete.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// The version you read (optional).
    #[garde(skip)]
    pub version: Option<i64>,
}

async fn delete_district(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    crate::http::Query(q): crate::http::Query<DeleteQuery>,
) -> Result<Reply<DeletedView>, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    let deleted = service(&state)
        .delete_district(&who, &caller.audit_context(), d.id, q.version)
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                districts::ports::DeleteDistrictError::NotFound => {
                    ApiError::not_found("no such district")
                }
                districts::ports::DeleteDistrictError::VersionMismatch { current } => {
                    ApiError::new(
                        ErrorCode::VersionMismatch,
                        "the district changed since you read it",
                    )
                    .with_details(serde_json::json!({"current_version": current}))
                }
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Reply(DeletedView {
        detached_schools: deleted
            .detached_schools
            .iter()
            .map(|s| s.as_uuid())
            .collect(),
        detached_orgs: deleted.detached_orgs.iter().map(|o| o.as_uuid()).collect(),
    }))
}

/// A school.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SchoolView {
    /// Id.
    pub id: Uuid,
    /// Its district.
    pub district_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Code (unique in the district).
    pub code: String,
    /// Grades taught.
    pub grade_levels: Vec<String>,
    /// Version.
    pub version: i64,
}

fn school_view(s: School) -> SchoolView {
    SchoolView {
        id: s.id.as_uuid(),
        district_id: s.district_id.map(|d| d.as_uuid()),
        name: s.name.to_string(),
        code: s.code.to_string(),
        grade_levels: s.grade_levels.iter().map(ToString::to_string).collect(),
        version: s.version,
    }
}

async fn list_schools(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    Query(q): Query<PageQuery>,
) -> Result<Paged<SchoolView>, ApiError> {
    let (_, d) = visible_district(&state, &caller, p.district_id).await?;
    // A district's schools are read whole and paged here, in id order.
    let schools = state
        .districts
        .list_schools(d.id)
        .await
        .map_err(read_error)?;
    Ok(Paged::from_all(
        schools,
        |s: &School| s.id.as_uuid(),
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(school_view))
}

/// A new school.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateSchoolBody {
    /// Name.
    #[garde(custom(domain_rule(DisplayName::parse)))]
    pub name: String,
    /// Code, unique within the district.
    #[garde(custom(domain_rule(DistrictCode::parse)))]
    pub code: String,
    /// Grades taught, e.g. `["K", "1", "2"]`.
    #[garde(length(max = 16))]
    #[serde(default)]
    pub grade_levels: Vec<String>,
}

async fn create_school(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    Json(body): Json<CreateSchoolBody>,
) -> Result<Created<SchoolView>, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    let req = CreateSchoolRequest {
        district_id: Some(d.id),
        name: DisplayName::parse(&body.name).map_err(|e| invalid("name", e))?,
        code: DistrictCode::parse(&body.code).map_err(|e| invalid("code", e))?,
        grade_levels: GradeLevels::parse(body.grade_levels.iter())
            .map_err(|e| invalid("grade_levels", e))?,
    };
    let s = service(&state)
        .create_school(&who, &caller.audit_context(), req)
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                CreateSchoolError::DuplicateCode { .. } => ApiError::new(
                    ErrorCode::Conflict,
                    "a school with this code exists in the district",
                ),
                CreateSchoolError::DistrictNotFound => ApiError::not_found("no such district"),
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Created::at(
        format!("/api/v2/schools/{}", s.id),
        school_view(s),
    ))
}

/// Path of a school.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SchoolPath {
    /// School id.
    pub school_id: Uuid,
}

/// Where to move a school.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct MoveSchoolBody {
    /// The new district; `null` to make the school standalone.
    #[garde(skip)]
    pub district_id: Option<Uuid>,
    /// The school version you read.
    #[garde(skip)]
    pub version: Option<i64>,
}

/// The outcome of a move.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MovedSchool {
    /// The school after the move.
    pub school: SchoolView,
    /// The orgs whose permissions were re-resolved.
    pub affected_orgs: Vec<Uuid>,
}

async fn move_school(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
    Json(body): Json<MoveSchoolBody>,
) -> Result<Reply<MovedSchool>, ApiError> {
    let who = district_caller(&state, &caller).await?;
    let moved = service(&state)
        .move_school(
            &who,
            &caller.audit_context(),
            SchoolId::from_uuid(p.school_id),
            body.district_id.map(DistrictId::from_uuid),
            body.version,
        )
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                MoveSchoolError::NotFound => ApiError::not_found("no such school"),
                MoveSchoolError::DistrictNotFound => ApiError::not_found("no such district"),
                MoveSchoolError::VersionMismatch { current } => {
                    ApiError::new(ErrorCode::VersionMismatch, "the school changed")
                        .with_details(serde_json::json!({"current_version": current}))
                }
                MoveSchoolError::DuplicateCode { .. } => ApiError::new(
                    ErrorCode::Conflict,
                    "the target district has a school with this code",
                ),
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    let affected: Vec<Uuid> = moved.affected_orgs.iter().map(|o| o.as_uuid()).collect();
    Ok(Reply(MovedSchool {
        school: school_view(moved.school),
        affected_orgs: affected,
    }))
}

/// Path of an org.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrgPath {
    /// Org id.
    pub org_id: Uuid,
}

/// Where to move an org.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct MoveOrgBody {
    /// The new school (the org takes its district); `null` to make the org standalone.
    #[garde(skip)]
    pub school_id: Option<Uuid>,
    /// The org version you read.
    #[garde(skip)]
    pub version: Option<i64>,
}

/// An org's place in the hierarchy.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrgPlacementView {
    /// Org id.
    pub org_id: Uuid,
    /// Its school, if any.
    pub school_id: Option<Uuid>,
    /// Its district, if any.
    pub district_id: Option<Uuid>,
    /// The org's version.
    pub version: i64,
}

impl From<OrgPlacement> for OrgPlacementView {
    fn from(p: OrgPlacement) -> Self {
        Self {
            org_id: p.org_id.as_uuid(),
            school_id: p.school_id.map(|s| s.as_uuid()),
            district_id: p.district_id.map(|d| d.as_uuid()),
            version: p.version,
        }
    }
}

/// The outcome of an org move.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MovedOrg {
    /// Where it was.
    pub before: OrgPlacementView,
    /// Where it is now.
    pub after: OrgPlacementView,
    /// Whether its effective permissions were re-resolved.
    pub permissions_changed: bool,
}

fn move_org_error(e: ServiceError<MoveOrgError>) -> ApiError {
    service_error(e, |e| match e {
        MoveOrgError::NotFound => ApiError::not_found("no such organization"),
        MoveOrgError::SchoolNotFound => ApiError::not_found("no such school"),
        MoveOrgError::VersionMismatch { current } => {
            ApiError::new(ErrorCode::VersionMismatch, "the organization changed")
                .with_details(serde_json::json!({"current_version": current}))
        }
        other => ApiError::internal(Box::new(other)),
    })
}

/// The caller's district standing and membership in `org`, if they have any standing
/// towards it (member, staff of its district, platform admin); else 404.
pub(crate) async fn org_in_reach(
    state: &State,
    caller: &Caller,
    org: OrgId,
) -> Result<(DistrictCaller, OrgStanding), ApiError> {
    let who = district_caller(state, caller).await?;
    let standing = match state.orgs.get_member(org, caller.user_id()).await? {
        Some((_, m)) if m.is_active_admin() => OrgStanding::Admin,
        Some((_, m)) if m.status == MembershipStatus::Active => OrgStanding::Member,
        _ => OrgStanding::Outsider,
    };
    service(state)
        .org_in_reach(&who, standing, org)
        .await
        .map_err(move_org_error)?;
    Ok((who, standing))
}

/// The guard of [`crate::http::Requirement::DistrictAuthority`] routes (the app
/// registers it with the edge's [`crate::http::guard::RouteGuard`]): 404 unless the
/// caller is a member of the path's org, staff of its district, or a platform admin.
pub async fn district_authority(req: ServiceRequest) -> GuardOutcome {
    let (http_req, mut payload) = req.into_parts();
    let caller = Caller::from_request(&http_req, &mut payload).await;
    let req = ServiceRequest::from_parts(http_req, payload);
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return (req, Err(e)),
    };
    let org = req
        .match_info()
        .get("org_id")
        .and_then(|s| Uuid::parse_str(s).ok());
    let Some(org) = org else {
        return (req, Err(ApiError::not_found("no such organization")));
    };
    let reach = match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
        Some(state) => org_in_reach(&State(state.clone()), &caller, OrgId::from_uuid(org)).await,
        None => Err(ApiError::internal("application state missing".into())),
    };
    (req, reach.map(|_| ()))
}

async fn move_org(
    state: State,
    caller: Caller,
    Path(p): Path<OrgPath>,
    Json(body): Json<MoveOrgBody>,
) -> Result<Reply<MovedOrg>, ApiError> {
    let org = OrgId::from_uuid(p.org_id);
    let (who, standing) = org_in_reach(&state, &caller, org).await?;
    let moved = service(&state)
        .move_org(
            &who,
            standing,
            &caller.audit_context(),
            org,
            body.school_id.map(SchoolId::from_uuid),
            body.version,
        )
        .await
        .map_err(move_org_error)?;
    Ok(Reply(MovedOrg {
        before: moved.before.into(),
        after: moved.after.into(),
        permissions_changed: moved.permissions_changed(),
    }))
}

/// Path of a staff member.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StaffPath {
    /// District id.
    pub district_id: Uuid,
    /// User id.
    pub user_id: Uuid,
}

/// A staff role.
/// The subscription tiers, as the `tier` fields' schema (the field is parsed by the domain).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "schema only")]
enum TierName {
    Basic,
    Professional,
    Enterprise,
}

/// The district staff roles, as the `role` field's schema.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "schema only")]
enum StaffRoleName {
    DistrictAdmin,
    DistrictViewer,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct StaffBody {
    /// `district_admin` or `district_viewer`.
    #[garde(custom(domain_rule(DistrictStaffRole::parse)))]
    #[schemars(with = "StaffRoleName")]
    pub role: String,
    /// The version of their staff role you read (0: not staff yet), or send it as
    /// `If-Match`; required.
    #[garde(skip)]
    pub version: Option<i64>,
}

/// A staff member.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StaffView {
    /// User id.
    pub user_id: Uuid,
    /// Role.
    pub role: &'static str,
    /// Version of their role, for `PUT`.
    pub version: i64,
}

async fn set_staff(
    state: State,
    caller: Caller,
    Path(p): Path<StaffPath>,
    if_match: IfMatch,
    Json(body): Json<StaffBody>,
) -> Result<Reply<StaffView>, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    let role = DistrictStaffRole::parse(&body.role).map_err(|e| invalid("role", e))?;
    let version = required_version(body.version, if_match)?;
    let staff = service(&state)
        .set_staff(
            &who,
            &caller.audit_context(),
            d.id,
            UserId::from_uuid(p.user_id),
            role,
            Some(version),
        )
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                SetStaffError::UserNotFound => ApiError::not_found("no such user"),
                SetStaffError::DistrictNotFound => ApiError::not_found("no such district"),
                SetStaffError::VersionMismatch { current } => stale("staff role", current),
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Reply(StaffView {
        user_id: staff.user_id.as_uuid(),
        role: staff.role.as_str(),
        version: staff.version,
    }))
}

/// One template setting of the district.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateRow {
    /// The key.
    pub key: &'static str,
    /// Minimum role for every org below.
    pub min_role: RoleDto,
    /// Enabled flag.
    pub enabled: bool,
    /// Whether schools and orgs may not override it.
    pub locked: bool,
}

/// A district's or school's template: its settings and their version.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplatesView {
    /// The template version: send it back with a many-key write (or as `If-Match`).
    pub version: u64,
    /// The settings held, in catalog order.
    pub templates: Vec<TemplateRow>,
}

/// The template of `scope`, as the caller may see it.
async fn read_templates(
    state: &State,
    caller: &Caller,
    scope: TemplateScope,
) -> Result<Tagged<TemplatesView>, ApiError> {
    let template = super::permissions::service_as(state, caller.audit_context())
        .template(scope)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))?
        .ok_or_else(|| ApiError::not_found("no such district or school"))?;
    Ok(Tagged {
        version: i64::try_from(template.version).unwrap_or(i64::MAX),
        data: TemplatesView {
            version: template.version,
            templates: template_rows(&template.settings),
        },
    })
}

async fn list_templates(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
) -> Result<Tagged<TemplatesView>, ApiError> {
    let (_, d) = visible_district(&state, &caller, p.district_id).await?;
    read_templates(&state, &caller, TemplateScope::District(d.id.as_uuid())).await
}

/// Path of one template key.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TemplatePath {
    /// District id.
    pub district_id: Uuid,
    /// Permission key, e.g. `budget.approve`.
    pub key: String,
}

/// A template setting.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// The template version you read (`GET …/permission-templates`), or send it as
    /// `If-Match`; required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// Minimum role.
    #[garde(skip)]
    pub min_role: RoleDto,
    /// Enabled flag.
    #[garde(skip)]
    pub enabled: bool,
    /// Lock it: schools and orgs may not override it.
    #[garde(skip)]
    #[serde(default)]
    pub locked: bool,
}

/// The outcome of a template change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateChanged {
    /// The templates' version after the change.
    pub version: u64,
    /// The orgs whose effective settings changed version (re-resolved at once).
    pub affected_orgs: Vec<Uuid>,
    /// The scope written.
    pub scope: ScopeDto,
}

async fn template_admin(
    state: &State,
    caller: &Caller,
    district: Uuid,
) -> Result<District, ApiError> {
    let (who, d) = visible_district(state, caller, district).await?;
    let role = usable_role(state, &who, d.id).await?;
    if who.platform_admin || role == Some(DistrictStaffRole::DistrictAdmin) {
        Ok(d)
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only a district admin may change templates",
        )
        .with_details(serde_json::json!({"required_role": "district_admin"})))
    }
}

async fn set_template(
    state: State,
    caller: Caller,
    Path(p): Path<TemplatePath>,
    if_match: IfMatch,
    Json(body): Json<TemplateBody>,
) -> Result<Reply<TemplateChanged>, ApiError> {
    let d = template_admin(&state, &caller, p.district_id).await?;
    let version = required_version(body.version, if_match)?;
    let scope = TemplateScope::District(d.id.as_uuid());
    write_template(&state, &caller, scope, &p.key, Some((version, body.into()))).await
}

async fn clear_template(
    state: State,
    caller: Caller,
    Path(p): Path<TemplatePath>,
) -> Result<NoContent, ApiError> {
    let d = template_admin(&state, &caller, p.district_id).await?;
    let scope = TemplateScope::District(d.id.as_uuid());
    write_template(&state, &caller, scope, &p.key, None).await?;
    Ok(NoContent)
}

impl From<TemplateBody> for ScopedSetting {
    fn from(b: TemplateBody) -> Self {
        Self {
            min_role: b.min_role.into(),
            enabled: b.enabled,
            locked: b.locked,
        }
    }
}

/// The rows of a district's or school's settings.
fn template_rows(settings: &permissions::ScopeSettings) -> Vec<TemplateRow> {
    settings
        .held()
        .map(|(key, s)| TemplateRow {
            key: key.as_str(),
            min_role: s.min_role.into(),
            enabled: s.enabled,
            locked: s.locked,
        })
        .collect()
}

/// Sets (`Some`, if the templates are still at the version read) or clears (`None`,
/// unconditionally) a district's or school's setting of `raw_key`, then has every org
/// below re-resolve it on every instance.
async fn write_template(
    state: &State,
    caller: &Caller,
    scope: TemplateScope,
    raw_key: &str,
    setting: Option<(i64, ScopedSetting)>,
) -> Result<Reply<TemplateChanged>, ApiError> {
    let key =
        PermissionKey::parse(raw_key).map_err(|_| ApiError::not_found("no such permission key"))?;
    let update = TemplateUpdate {
        // A negative version matches nothing: refused as stale by the store.
        expected_version: setting.map(|(v, _)| u64::try_from(v).unwrap_or(u64::MAX)),
        ..TemplateUpdate::one(key, setting.map(|(_, s)| s))
    };
    let saved = super::permissions::service_as(state, caller.audit_context())
        .change_template(scope, &update)
        .await?;
    Ok(Reply(TemplateChanged {
        version: saved.version,
        affected_orgs: saved.affected_orgs,
        scope: ScopeDto::from(scope.scope()),
    }))
}

/// One key a many-key template write sets.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TemplateSetting {
    /// The key, e.g. `budget.approve`.
    #[garde(custom(domain_rule(PermissionKey::parse)))]
    pub key: String,
    /// Minimum role.
    #[garde(skip)]
    pub min_role: RoleDto,
    /// Enabled flag.
    #[garde(skip)]
    pub enabled: bool,
    /// Lock it: schools and orgs below may not override it, and their exceptions (custom
    /// roles' extra keys, direct grants) stop counting for it.
    #[garde(skip)]
    #[serde(default)]
    pub locked: bool,
}

/// A many-key template write: all or nothing.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = templates_example())]
pub struct TemplatesBody {
    /// The template version you read (or send it as `If-Match`).
    #[garde(skip)]
    pub version: Option<i64>,
    /// Keys to set (at most 28).
    #[garde(length(max = 28), dive)]
    #[serde(default)]
    pub set: Vec<TemplateSetting>,
    /// Keys whose setting (and lock) to remove (at most 28).
    #[garde(length(max = 28), inner(custom(domain_rule(PermissionKey::parse))))]
    #[serde(default)]
    pub remove: Vec<String>,
}

fn templates_example() -> serde_json::Value {
    serde_json::json!({"version": 4, "set": [{"key": "budget.approve", "min_role": "board_member", "enabled": true, "locked": true}, {"key": "events.create", "min_role": "volunteer", "enabled": true}], "remove": ["documents.delete"]})
}

/// The outcome of a many-key template write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplatesWritten {
    /// The template's new version (unchanged when nothing changed).
    pub version: u64,
    /// The orgs below, whose effective settings were re-resolved (empty when nothing
    /// changed).
    pub affected_orgs: Vec<Uuid>,
    /// The scope written.
    pub scope: ScopeDto,
}

/// The changes of a many-key write, each key named once (422 otherwise, all fields at
/// once).
fn template_changes(body: &TemplatesBody) -> Result<Vec<TemplateChange>, ApiError> {
    let mut errors = Vec::new();
    let mut seen = permissions::KeySet::new();
    let mut changes = Vec::with_capacity(body.set.len() + body.remove.len());
    let entries = body
        .set
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("set[{i}].key"), s.key.as_str(), Some(s)))
        .chain(
            body.remove
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("remove[{i}]"), k.as_str(), None)),
        );
    for (field, raw, set) in entries {
        match PermissionKey::parse(raw) {
            Err(e) => errors.push(FieldError {
                field,
                code: "invalid".into(),
                message: e.to_string(),
            }),
            Ok(key) if !seen.insert(key) => errors.push(FieldError {
                field,
                code: "duplicate".into(),
                message: format!("{key} is named more than once"),
            }),
            Ok(key) => changes.push(TemplateChange {
                key,
                setting: set.map(|s| ScopedSetting {
                    min_role: s.min_role.into(),
                    enabled: s.enabled,
                    locked: s.locked,
                }),
            }),
        }
    }
    if changes.is_empty() && errors.is_empty() {
        errors.push(FieldError {
            field: "set".into(),
            code: "required".into(),
            message: "name at least one key to set or remove".into(),
        });
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Applies a many-key write to `scope`'s template, conditional on the version sent.
async fn write_many(
    state: &State,
    caller: &Caller,
    scope: TemplateScope,
    body: &TemplatesBody,
    if_match: IfMatch,
) -> Result<Reply<TemplatesWritten>, ApiError> {
    let version = required_version(body.version, if_match)?;
    let changes = template_changes(body)?;
    // A negative version matches nothing: refused as stale by the store.
    let expected_version = u64::try_from(version).unwrap_or(u64::MAX);
    let update = TemplateUpdate {
        expected_version: Some(expected_version),
        changes,
    };
    let TemplateSaved {
        version,
        affected_orgs,
    } = super::permissions::service_as(state, caller.audit_context())
        .change_template(scope, &update)
        .await?;
    Ok(Reply(TemplatesWritten {
        version,
        affected_orgs,
        scope: ScopeDto::from(scope.scope()),
    }))
}

async fn write_templates(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    if_match: IfMatch,
    Json(body): Json<TemplatesBody>,
) -> Result<Reply<TemplatesWritten>, ApiError> {
    let d = template_admin(&state, &caller, p.district_id).await?;
    write_many(
        &state,
        &caller,
        TemplateScope::District(d.id.as_uuid()),
        &body,
        if_match,
    )
    .await
}

async fn write_school_templates(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
    if_match: IfMatch,
    Json(body): Json<TemplatesBody>,
) -> Result<Reply<TemplatesWritten>, ApiError> {
    let s = school_admin(&state, &caller, p.school_id).await?;
    write_many(
        &state,
        &caller,
        TemplateScope::School(s.id.as_uuid()),
        &body,
        if_match,
    )
    .await
}

/// Path of one school template key.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SchoolTemplatePath {
    /// School id.
    pub school_id: Uuid,
    /// Permission key.
    pub key: String,
}

/// The school, if the caller administers it: its district's admins, or platform admins
/// (for a standalone school too). Others get 404 (existence is not revealed).
async fn school_admin(state: &State, caller: &Caller, school: Uuid) -> Result<School, ApiError> {
    let who = district_caller(state, caller).await?;
    let not_found = || ApiError::not_found("no such school");
    let s = state
        .districts
        .get_school(SchoolId::from_uuid(school))
        .await
        .map_err(read_error)?
        .ok_or_else(not_found)?;
    let allowed = who.platform_admin
        || match s.district_id {
            Some(d) => usable_role(state, &who, d).await? == Some(DistrictStaffRole::DistrictAdmin),
            None => false,
        };
    if allowed { Ok(s) } else { Err(not_found()) }
}

async fn list_school_templates(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
) -> Result<Tagged<TemplatesView>, ApiError> {
    let s = school_admin(&state, &caller, p.school_id).await?;
    read_templates(&state, &caller, TemplateScope::School(s.id.as_uuid())).await
}

async fn set_school_template(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolTemplatePath>,
    if_match: IfMatch,
    Json(body): Json<TemplateBody>,
) -> Result<Reply<TemplateChanged>, ApiError> {
    let s = school_admin(&state, &caller, p.school_id).await?;
    let version = required_version(body.version, if_match)?;
    let scope = TemplateScope::School(s.id.as_uuid());
    write_template(&state, &caller, scope, &p.key, Some((version, body.into()))).await
}

async fn clear_school_template(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolTemplatePath>,
) -> Result<NoContent, ApiError> {
    let s = school_admin(&state, &caller, p.school_id).await?;
    let scope = TemplateScope::School(s.id.as_uuid());
    write_template(&state, &caller, scope, &p.key, None).await?;
    Ok(NoContent)
}

/// A new org under a school of the district.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateDistrictOrgBody {
    /// Name.
    #[garde(length(chars, min = 2, max = 200))]
    pub name: String,
    /// The school (must belong to this district).
    #[garde(skip)]
    pub school_id: Uuid,
    /// Signup code; generated when absent.
    #[garde(inner(custom(domain_rule(SignupCode::parse))))]
    pub signup_code: Option<String>,
}

/// The created org.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DistrictOrgCreated {
    /// Org id.
    pub id: Uuid,
    /// Its signup code.
    pub signup_code: String,
}

async fn create_district_org(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    Json(body): Json<CreateDistrictOrgBody>,
) -> Result<Created<DistrictOrgCreated>, ApiError> {
    let d = template_admin(&state, &caller, p.district_id).await?;
    let school = state
        .districts
        .get_school(SchoolId::from_uuid(body.school_id))
        .await
        .map_err(read_error)?;
    if school.as_ref().and_then(|s| s.district_id) != Some(d.id) {
        return Err(ApiError::not_found("no such school in this district"));
    }
    let signup_code = match &body.signup_code {
        Some(c) => SignupCode::parse(c).map_err(|e| invalid("signup_code", e))?,
        None => super::common::generate_code(),
    };
    let (org, _) = state
        .orgs
        .create_org(
            &caller.audit_context(),
            CreateOrgRequest {
                name: body.name,
                kind: OrgKind::Pto,
                school_id: Some(body.school_id),
                signup_code,
                creator: caller.user_id(),
            },
        )
        .await?;
    Ok(Created::at(
        format!("/api/v2/orgs/{}", org.id),
        DistrictOrgCreated {
            id: org.id.as_uuid(),
            signup_code: org.signup_code.to_string(),
        },
    ))
}

/// 412 with the current version.
fn stale(what: &str, current: i64) -> ApiError {
    ApiError::new(
        ErrorCode::VersionMismatch,
        format!("the {what} changed since you read it"),
    )
    .with_details(serde_json::json!({ "current_version": current }))
}

/// A service refusal where the caller may not even see the thing: 404.
fn hidden<E: std::error::Error + Send + Sync + 'static>(
    e: ServiceError<E>,
    what: &'static str,
) -> ApiError {
    match e {
        ServiceError::Forbidden(_) => ApiError::not_found(what),
        ServiceError::SecondFactorRequired(e) => second_factor_required(e),
        ServiceError::Store(e) => ApiError::internal(Box::new(e)),
    }
}

async fn list_staff(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    Query(q): Query<PageQuery>,
) -> Result<Paged<StaffView>, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    let staff = service(&state)
        .list_staff(&who, d.id)
        .await
        .map_err(|e| hidden(e, "no such district"))?;
    // A district's staff are a handful of rows: paged here, in user id order.
    Ok(Paged::from_all(
        staff,
        |s| s.user_id.as_uuid(),
        Order::Ascending,
        q.cursor.as_ref(),
        q.limit(),
    )
    .map(|s| StaffView {
        user_id: s.user_id.as_uuid(),
        role: s.role.as_str(),
        version: s.version,
    }))
}

async fn remove_staff(
    state: State,
    caller: Caller,
    Path(p): Path<StaffPath>,
) -> Result<NoContent, ApiError> {
    let (who, d) = visible_district(&state, &caller, p.district_id).await?;
    service(&state)
        .remove_staff(
            &who,
            &caller.audit_context(),
            d.id,
            UserId::from_uuid(p.user_id),
        )
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                RemoveStaffError::NotFound => {
                    ApiError::not_found("that user is not staff of this district")
                }
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(NoContent)
}

/// An organization placed in a district or school.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlacedOrgView {
    /// Org id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status (`active`, …).
    pub status: String,
    /// Its school, if any.
    pub school_id: Option<Uuid>,
    /// Its district, if any.
    pub district_id: Option<Uuid>,
    /// The org's version.
    pub version: i64,
}

async fn placed_orgs(
    state: &State,
    caller: &Caller,
    scope: OrgScope,
    q: PageQuery,
) -> Result<Paged<PlacedOrgView>, ApiError> {
    let who = district_caller(state, caller).await?;
    let not_found = match scope {
        OrgScope::District(_) => "no such district",
        OrgScope::School(_) => "no such school",
    };
    let limit = q.limit();
    let (rows, total) = service(state)
        .list_orgs(
            &who,
            scope,
            q.cursor.map(OrgId::from_uuid),
            u64::from(limit) + 1,
        )
        .await
        .map_err(|e| hidden(e, not_found))?
        .ok_or_else(|| ApiError::not_found(not_found))?;
    Ok(
        Paged::from_overfetch(rows, limit, |o| o.placement.org_id, Some(total)).map(
            |o: PlacedOrg| PlacedOrgView {
                id: o.placement.org_id.as_uuid(),
                name: o.name,
                status: o.status,
                school_id: o.placement.school_id.map(|s| s.as_uuid()),
                district_id: o.placement.district_id.map(|d| d.as_uuid()),
                version: o.placement.version,
            },
        ),
    )
}

async fn list_district_orgs(
    state: State,
    caller: Caller,
    Path(p): Path<DistrictPath>,
    Query(q): Query<PageQuery>,
) -> Result<Paged<PlacedOrgView>, ApiError> {
    placed_orgs(
        &state,
        &caller,
        OrgScope::District(DistrictId::from_uuid(p.district_id)),
        q,
    )
    .await
}

async fn list_school_orgs(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
    Query(q): Query<PageQuery>,
) -> Result<Paged<PlacedOrgView>, ApiError> {
    placed_orgs(
        &state,
        &caller,
        OrgScope::School(SchoolId::from_uuid(p.school_id)),
        q,
    )
    .await
}

/// Loads a school the caller may see, or 404 (existence is not revealed).
async fn visible_school(
    state: &State,
    caller: &Caller,
    id: Uuid,
) -> Result<(DistrictCaller, School), ApiError> {
    let who = district_caller(state, caller).await?;
    let school = service(state)
        .get_school(&who, SchoolId::from_uuid(id))
        .await
        .map_err(|e| hidden(e, "no such school"))?
        .ok_or_else(|| ApiError::not_found("no such school"))?;
    Ok((who, school))
}

async fn get_school(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
) -> Result<Tagged<SchoolView>, ApiError> {
    let (_, school) = visible_school(&state, &caller, p.school_id).await?;
    Ok(Tagged {
        version: school.version,
        data: school_view(school),
    })
}

/// Changes to a school (absent fields stay as they are).
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateSchoolBody {
    /// The version you read (or send `If-Match`); required.
    #[garde(skip)]
    pub version: Option<i64>,
    /// New name.
    #[garde(inner(custom(domain_rule(DisplayName::parse))))]
    pub name: Option<String>,
    /// New code, unique within the district.
    #[garde(inner(custom(domain_rule(DistrictCode::parse))))]
    pub code: Option<String>,
    /// New grades taught, e.g. `["K", "1", "2"]`.
    #[garde(inner(length(max = 16)))]
    pub grade_levels: Option<Vec<String>>,
}

async fn update_school(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
    if_match: IfMatch,
    Json(body): Json<UpdateSchoolBody>,
) -> Result<Reply<SchoolView>, ApiError> {
    let (who, school) = visible_school(&state, &caller, p.school_id).await?;
    let version = required_version(body.version, if_match)?;
    let changes = SchoolChanges {
        name: body
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| invalid("name", e))?,
        code: body
            .code
            .as_deref()
            .map(DistrictCode::parse)
            .transpose()
            .map_err(|e| invalid("code", e))?,
        grade_levels: body
            .grade_levels
            .as_ref()
            .map(|g| GradeLevels::parse(g.iter()))
            .transpose()
            .map_err(|e| invalid("grade_levels", e))?,
    };
    let updated = service(&state)
        .update_school(
            &who,
            &caller.audit_context(),
            school.id,
            Some(version),
            changes,
        )
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                UpdateSchoolError::NotFound => ApiError::not_found("no such school"),
                UpdateSchoolError::VersionMismatch { current } => stale("school", current),
                UpdateSchoolError::DuplicateCode { .. } => ApiError::new(
                    ErrorCode::Conflict,
                    "a school with this code exists in the district",
                ),
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(Reply(school_view(updated)))
}

async fn delete_school(
    state: State,
    caller: Caller,
    Path(p): Path<SchoolPath>,
    if_match: IfMatch,
    Query(q): Query<DeleteQuery>,
) -> Result<NoContent, ApiError> {
    let (who, school) = visible_school(&state, &caller, p.school_id).await?;
    let version = required_version(q.version, if_match)?;
    service(&state)
        .delete_school(&who, &caller.audit_context(), school.id, Some(version))
        .await
        .map_err(|e| {
            service_error(e, |e| match e {
                DeleteSchoolError::NotFound => ApiError::not_found("no such school"),
                DeleteSchoolError::VersionMismatch { current } => stale("school", current),
                DeleteSchoolError::HasOrgs { count } => ApiError::new(
                    ErrorCode::Conflict,
                    "organizations are still placed at this school: move them first",
                )
                .with_details(serde_json::json!({ "org_count": count })),
                other => ApiError::internal(Box::new(other)),
            })
        })?;
    Ok(NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::permissions::tests::documented;

    #[test]
    fn the_documented_tiers_and_staff_roles_parse() {
        let tiers = documented::<TierName>();
        assert_eq!(tiers, ["basic", "professional", "enterprise"]);
        for t in &tiers {
            assert!(SubscriptionTier::parse(t).is_ok(), "{t}");
        }
        let roles = documented::<StaffRoleName>();
        assert_eq!(roles, ["district_admin", "district_viewer"]);
        for r in &roles {
            assert!(DistrictStaffRole::parse(r).is_ok(), "{r}");
        }
    }
}
