//! The route-registration layer: one declaration per route registers the actix
//! handler *and* its OpenAPI operation (inputs and outputs from the handler's types,
//! error responses, auth and required permission), so no route can exist undocumented
//! and the document cannot drift from the code.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, Handler, Responder, web};
use aide::generate::GenContext;
use aide::openapi::{
    Components, Info, OpenApi, Operation, PathItem, Paths, ReferenceOr, Response,
    SecurityRequirement, SecurityScheme, StatusCode, Tag,
};
use aide::{OperationInput, OperationOutput};
use indexmap::IndexMap;
use tracing::Instrument;

use permissions::PermissionKey;

use super::envelope::json_response;
use super::error::ErrorEnvelope;
use super::error::{ApiError, ErrorCode};
use super::guard::{self, Requirement};
use super::rate_limit::RouteRate;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, unauthenticated.
    Public,
    /// A caller with a valid session token or API key.
    Authenticated,
}

/// The documentation of one route, declared next to its registration.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    operation_id: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    access: Access,
    requirement: Option<Requirement>,
    rate: RouteRate,
    body_limit: usize,
    secret_answer: bool,
    errors: Vec<ErrorCode>,
}

impl RouteDoc {
    /// A route with a unique operation id, a one-line summary and a tag (group).
    #[must_use]
    pub fn new(operation_id: &'static str, summary: &'static str, tag: &'static str) -> Self {
        Self {
            operation_id,
            summary,
            description: None,
            tag,
            access: Access::Authenticated,
            requirement: None,
            rate: RouteRate::Tier,
            body_limit: super::body_limit::DEFAULT_JSON_LIMIT,
            secret_answer: false,
            errors: Vec::new(),
        }
    }

    /// A longer description (Markdown).
    #[must_use]
    pub fn description(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    /// Callable without credentials.
    #[must_use]
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    /// Requires the caller to hold `key` in the path's org: enforced by the route's
    /// guard and documented as `x-required-permission`.
    #[must_use]
    pub fn permission(mut self, key: PermissionKey) -> Self {
        self.requirement = Some(Requirement::Permission(key));
        self
    }

    /// Requires the caller to be an admin of the path's org: enforced by the route's
    /// guard and documented as `x-required-role: admin`.
    #[must_use]
    pub fn org_admin(mut self) -> Self {
        self.requirement = Some(Requirement::OrgAdmin);
        self
    }

    /// Requires authority over the org's place in the hierarchy (district admins,
    /// platform admins, the org's admin for a standalone end). The guard settles that the
    /// caller has some standing towards the org (404 otherwise); the districts service
    /// checks both ends. Documented as `x-required-role: district_admin`.
    #[must_use]
    pub fn district_authority(mut self) -> Self {
        self.requirement = Some(Requirement::DistrictAuthority);
        self
    }

    /// Counts the route in `class` too (its own, stricter budget per caller), besides the
    /// caller's tier: enforced by the route's rate-limit middleware and documented as
    /// `x-rate-limit-class`.
    #[must_use]
    pub fn rate_class(mut self, class: rate_limit::RateClass) -> Self {
        self.rate = RouteRate::Class(class);
        self
    }

    /// Not rate-limited (liveness and readiness probes only).
    #[must_use]
    pub fn rate_exempt(mut self) -> Self {
        self.rate = RouteRate::Exempt;
        self
    }

    /// Caps the request body at `bytes` (default 64 KiB): larger bodies answer 413.
    /// Documented as `x-body-limit` when not the default.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// An upload route: the body cap is [`UPLOAD_BODY_LIMIT`](super::body_limit::UPLOAD_BODY_LIMIT)
    /// (20 MiB); the handler reads the body as a stream within it.
    #[must_use]
    pub fn upload(self) -> Self {
        self.body_limit(super::body_limit::UPLOAD_BODY_LIMIT)
    }

    /// A create whose answer holds a secret shown only once (an API key's token): an
    /// `Idempotency-Key` retry of it is 409 `CONFLICT` naming the `Location` instead of
    /// a replay, so the secret is never kept.
    #[must_use]
    pub fn secret_answer(mut self) -> Self {
        self.secret_answer = true;
        self
    }

    /// Error codes the handler itself may answer with (extractors add their own).
    #[must_use]
    pub fn errors(mut self, codes: &[ErrorCode]) -> Self {
        self.errors.extend_from_slice(codes);
        self
    }
}

type RouteFactory = Arc<dyn Fn() -> actix_web::Route + Send + Sync>;

/// One registered route.
#[derive(Clone)]
pub struct RegisteredRoute {
    /// HTTP method.
    pub method: Method,
    /// Path template, e.g. `/api/v2/orgs/{org_id}`.
    pub path: &'static str,
    factory: RouteFactory,
}

/// Collects routes; [`ApiRoutes::finish`] yields the actix configuration and the
/// OpenAPI document built from the same list.
pub struct ApiRoutes {
    routes: Vec<RegisteredRoute>,
    paths: IndexMap<String, PathItem>,
}

impl Default for ApiRoutes {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiRoutes {
    /// An empty route table (resets aide's schema collection for this thread).
    #[must_use]
    pub fn new() -> Self {
        aide::generate::reset_context();
        aide::generate::infer_responses(true);
        aide::generate::extract_schemas(true);
        Self {
            routes: Vec::new(),
            paths: IndexMap::new(),
        }
    }

    /// Registers `handler` for `method path`, documented by `doc` and the handler's
    /// extractor and output types.
    pub fn route<H, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        handler: H,
        doc: RouteDoc,
    ) -> &mut Self
    where
        H: Handler<Args> + Send + Sync,
        Args: FromRequest + OperationInput + 'static,
        H::Output: Responder + OperationOutput + 'static,
    {
        // Every route under an org is guarded: by its declared requirement, else by
        // membership. Nothing can be registered there unguarded.
        let mut doc = doc;
        if doc.requirement.is_none() && path.contains("{org_id}") {
            doc.requirement = Some(Requirement::Member);
        }
        let operation =
            aide::generate::in_context(|ctx| operation_for::<Args, H::Output>(ctx, &method, &doc));
        // Every create (a `POST` answering 201) takes an `Idempotency-Key`.
        let idempotent = is_create(&method, &operation).then_some(super::idempotency::Policy {
            body_limit: doc.body_limit,
            keep_answer: !doc.secret_answer,
            authenticated: doc.access == Access::Authenticated,
        });
        let item = self.paths.entry(path.to_owned()).or_default();
        let slot = match method.as_str() {
            "GET" => &mut item.get,
            "POST" => &mut item.post,
            "PUT" => &mut item.put,
            "PATCH" => &mut item.patch,
            "DELETE" => &mut item.delete,
            other => panic!("unsupported method {other} for {path}"),
        };
        assert!(slot.is_none(), "route {method} {path} registered twice");
        let known_query = super::query_names::KnownQuery::declared_by(&operation);
        *slot = Some(operation);
        let m = method.clone();
        let requirement = doc.requirement;
        let rate = doc.rate;
        let limit = super::body_limit::BodyLimit(doc.body_limit);
        self.routes.push(RegisteredRoute {
            method,
            path,
            factory: Arc::new(move || {
                // Debug-level spans name the stages for the slow-request report.
                let route = web::method(m.clone())
                    .to(handler.clone())
                    .wrap(actix_web::middleware::from_fn(|r, n: Next<_>| {
                        n.call(r).instrument(tracing::debug_span!("handler"))
                    }))
                    .wrap(actix_web::middleware::from_fn(move |r, n| {
                        super::body_limit::with_body_limit(limit, r, n)
                    }))
                    .wrap(actix_web::middleware::from_fn({
                        let known = known_query.clone();
                        move |r, n| super::query_names::refuse_unknown(known.clone(), r, n)
                    }));
                // Inside the guard (a refused caller never claims a key), outside the
                // rest: a replay runs nothing of the route.
                let route = match idempotent {
                    Some(policy) => route.wrap(actix_web::middleware::from_fn(move |r, n| {
                        super::idempotency::middleware(policy, r, n)
                            .instrument(tracing::debug_span!("idempotency"))
                    })),
                    None => route,
                };
                // The guard's and the rate limiter's spans (`authz`, `rate_limit`) cover
                // their own work only, not the route they wrap: nested spans would be
                // entered and left on every poll of everything inside them.
                let route = match requirement {
                    Some(req) => route.wrap(actix_web::middleware::from_fn(move |r, n| {
                        guard::middleware(req, r, n)
                    })),
                    None => route,
                };
                // Outermost: a refused request costs no membership lookup or body read.
                route.wrap(actix_web::middleware::from_fn(move |r, n| {
                    super::rate_limit::middleware(rate, r, n)
                }))
            }),
        });
        self
    }

    /// `GET` shorthand.
    pub fn get<H, Args>(&mut self, path: &'static str, handler: H, doc: RouteDoc) -> &mut Self
    where
        H: Handler<Args> + Send + Sync,
        Args: FromRequest + OperationInput + 'static,
        H::Output: Responder + OperationOutput + 'static,
    {
        self.route(Method::GET, path, handler, doc)
    }

    /// `POST` shorthand.
    pub fn post<H, Args>(&mut self, path: &'static str, handler: H, doc: RouteDoc) -> &mut Self
    where
        H: Handler<Args> + Send + Sync,
        Args: FromRequest + OperationInput + 'static,
        H::Output: Responder + OperationOutput + 'static,
    {
        self.route(Method::POST, path, handler, doc)
    }

    /// Builds the document and freezes the table.
    #[must_use]
    pub fn finish(self) -> Api {
        let mut api = OpenApi {
            info: Info {
                title: "PTO Connect API".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                description: Some(API_DESCRIPTION.to_owned()),
                ..Info::default()
            },
            ..OpenApi::default()
        };
        let mut tags = BTreeSet::new();
        let mut paths = Paths::default();
        for (path, item) in self.paths {
            for (_, op) in item.iter() {
                tags.extend(op.tags.iter().cloned());
            }
            paths.paths.insert(path, ReferenceOr::Item(item));
        }
        api.paths = Some(paths);
        api.tags = tags
            .into_iter()
            .map(|name| Tag {
                name,
                ..Tag::default()
            })
            .collect();
        let mut components = Components::default();
        components.security_schemes.insert(
            "bearer".to_owned(),
            ReferenceOr::Item(SecurityScheme::Http {
                scheme: "bearer".to_owned(),
                bearer_format: Some("Biscuit".to_owned()),
                description: Some(
                    "A session token from `POST /api/v2/auth/login`, or an API key.".to_owned(),
                ),
                extensions: IndexMap::default(),
            }),
        );
        aide::generate::in_context(|ctx| {
            for (name, schema) in ctx.schema.take_definitions(true) {
                if let Ok(json_schema) = schema.try_into() {
                    components.schemas.insert(
                        name,
                        aide::openapi::SchemaObject {
                            json_schema,
                            example: None,
                            external_docs: None,
                        },
                    );
                }
            }
        });
        api.components = Some(components);
        super::examples::fill(&mut api);
        super::schema_rules::apply(&mut api);
        aide::generate::reset_context();
        Api {
            routes: self.routes,
            document: Arc::new(api),
        }
    }
}

const API_DESCRIPTION: &str = "REST API for parent-teacher organizations and their districts. \
Every response uses one envelope (`success`, `data` or `error`, `meta`); errors carry a closed \
`code` (see `ErrorCode`). Tenant-scoped resources live under their tenant's path. \
Requests are rate-limited per API key, else user, else client address, by the caller's role in \
the path's org and by endpoint class (`x-rate-limit-class`): limited responses carry \
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; a refusal is 429 `RATE_LIMITED` \
with `Retry-After`.";

/// The path template of the resource a request was routed to (in the resource's app
/// data): what metrics and logs name the route by.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// The frozen route table and its OpenAPI document.
#[derive(Clone)]
pub struct Api {
    routes: Vec<RegisteredRoute>,
    document: Arc<OpenApi>,
}

impl Api {
    /// Registers every route on an actix app (one resource per path, so an unmatched
    /// method on a known path answers 405 in the envelope).
    ///
    /// The org's routes (`/api/v2/orgs/{org_id}…`) sit in one scope: its prefix is matched
    /// once, and the paths inside are then mostly plain text (`/permissions/check`)
    /// compared without a regex, instead of each of the table's patterns being tried in
    /// turn. A matched scope does not fall through to later services, so the paths that
    /// its prefix could also match (`/api/v2/orgs/join`) are registered before it; the
    /// others cannot match the same requests, and their order among themselves is kept.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let mut by_path: IndexMap<&'static str, Vec<&RegisteredRoute>> = IndexMap::new();
        for r in &self.routes {
            by_path.entry(r.path).or_default().push(r);
        }
        let (in_scope, outside): (Vec<_>, Vec<_>) = by_path
            .into_iter()
            .partition(|(path, _)| org_relative(path).is_some());
        let (before, after): (Vec<_>, Vec<_>) = outside
            .into_iter()
            .partition(|(path, _)| path.starts_with(ORG_SCOPE_LITERAL));
        for (path, routes) in before {
            cfg.service(resource(path, path, &routes));
        }
        let mut scope = web::scope(ORG_SCOPE);
        for (path, routes) in in_scope {
            let relative = org_relative(path).unwrap_or(path);
            scope = scope.service(resource(relative, path, &routes));
        }
        cfg.service(scope);
        for (path, routes) in after {
            cfg.service(resource(path, path, &routes));
        }
    }

    /// The registered routes.
    #[must_use]
    pub fn routes(&self) -> &[RegisteredRoute] {
        &self.routes
    }

    /// The OpenAPI document.
    #[must_use]
    pub fn document(&self) -> &Arc<OpenApi> {
        &self.document
    }
}

/// The prefix of every org route, registered as one actix scope.
const ORG_SCOPE: &str = "/api/v2/orgs/{org_id}";

/// The literal start of [`ORG_SCOPE`]: a path outside the scope that starts with it
/// could be matched by the scope's prefix.
const ORG_SCOPE_LITERAL: &str = "/api/v2/orgs/";

/// `path` relative to [`ORG_SCOPE`] (`""` for the org itself), if it is an org route.
fn org_relative(path: &str) -> Option<&str> {
    path.strip_prefix(ORG_SCOPE)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One actix resource at `pattern` for the routes of `template` (the full path, which
/// metrics and logs name it by), answering 405 for any other method.
fn resource(
    pattern: &'static str,
    template: &'static str,
    routes: &[&RegisteredRoute],
) -> actix_web::Resource {
    let allow = routes
        .iter()
        .map(|r| r.method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(pattern).app_data(RouteTemplate(template));
    for r in routes {
        resource = resource.route((r.factory)());
    }
    resource.default_service(web::to(move || {
        let allow = allow.clone();
        async move { method_not_allowed(allow) }
    }))
}

/// 405 in the envelope, with the `Allow` header RFC 9110 requires.
fn method_not_allowed(allow: String) -> actix_web::HttpResponse {
    let mut res = actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    ));
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}

/// Whether `op` is a create: a `POST` documenting 201.
fn is_create(method: &Method, op: &Operation) -> bool {
    *method == Method::POST
        && op
            .responses
            .as_ref()
            .is_some_and(|r| r.responses.contains_key(&StatusCode::Code(201)))
}

fn operation_for<Args: OperationInput, Out: OperationOutput>(
    ctx: &mut GenContext,
    method: &Method,
    doc: &RouteDoc,
) -> Operation {
    let mut op = Operation {
        operation_id: Some(doc.operation_id.to_owned()),
        summary: Some(doc.summary.to_owned()),
        tags: vec![doc.tag.to_owned()],
        ..Operation::default()
    };
    let mut description = doc.description.map(str::to_owned).unwrap_or_default();
    Args::operation_input(ctx, &mut op);
    let mut responses: Vec<(Option<StatusCode>, Response)> = Out::inferred_responses(ctx, &mut op);
    responses.extend(Args::inferred_early_responses(ctx, &mut op));
    let mut codes = doc.errors.clone();
    let creates = *method == Method::POST
        && responses
            .iter()
            .any(|(status, _)| *status == Some(StatusCode::Code(201)));
    if creates {
        super::idempotency::document(ctx, &mut op, !doc.secret_answer);
        codes.extend([
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::IdempotencyKeyInUse,
            ErrorCode::ValidationFailed,
            ErrorCode::PayloadTooLarge,
        ]);
        if doc.secret_answer {
            codes.push(ErrorCode::Conflict);
        }
    }
    if doc.access == Access::Authenticated {
        codes.push(ErrorCode::Unauthenticated);
        op.security = vec![SecurityRequirement::from_iter([(
            "bearer".to_owned(),
            Vec::new(),
        )])];
    }
    if let Some(requirement) = doc.requirement {
        codes.extend([ErrorCode::PermissionDenied, ErrorCode::NotFound]);
        let sentence = match requirement {
            Requirement::Permission(key) => {
                op.extensions.insert(
                    "x-required-permission".to_owned(),
                    serde_json::json!(key.as_str()),
                );
                format!(
                    "Requires permission `{}` in the organization.",
                    key.as_str()
                )
            }
            Requirement::Member => {
                op.extensions
                    .insert("x-required-role".to_owned(), serde_json::json!("member"));
                "Requires an active membership of the organization (or an API key bound to it)."
                    .to_owned()
            }
            Requirement::OrgAdmin => {
                op.extensions
                    .insert("x-required-role".to_owned(), serde_json::json!("admin"));
                "Requires the `admin` role in the organization.".to_owned()
            }
            Requirement::DistrictAuthority => {
                op.extensions.insert(
                    "x-required-role".to_owned(),
                    serde_json::json!("district_admin"),
                );
                "Requires authority over both ends: an admin of each district involved (or a platform admin); where an end has no district, the organization's own admin. Callers without any standing in the organization get 404."
                    .to_owned()
            }
        };
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&sentence);
    }
    match doc.rate {
        RouteRate::Exempt => {}
        RouteRate::Tier => codes.push(ErrorCode::RateLimited),
        RouteRate::Class(class) => {
            codes.push(ErrorCode::RateLimited);
            op.extensions.insert(
                "x-rate-limit-class".to_owned(),
                serde_json::json!(class.as_str()),
            );
        }
    }
    if doc.body_limit != super::body_limit::DEFAULT_JSON_LIMIT {
        op.extensions
            .insert("x-body-limit".to_owned(), serde_json::json!(doc.body_limit));
    }
    codes.extend([ErrorCode::Internal, ErrorCode::ServiceUnavailable]);
    responses.extend(error_responses(ctx, &codes));
    if !description.is_empty() {
        op.description = Some(description);
    }
    let out = op.responses.get_or_insert_with(Default::default);
    for (status, response) in responses {
        match status {
            Some(status) => {
                // Several codes may share a status: merge their descriptions.
                match out.responses.get_mut(&status) {
                    Some(ReferenceOr::Item(existing))
                        if existing.description != response.description =>
                    {
                        existing.description =
                            merge_descriptions(&existing.description, &response.description);
                    }
                    Some(_) => {}
                    None => {
                        out.responses.insert(status, ReferenceOr::Item(response));
                    }
                }
            }
            None => out.default = Some(ReferenceOr::Item(response)),
        }
    }
    out.responses.sort_keys();
    op
}

/// Two descriptions of one status as one: error lists (`Error: A, B`) are united, other
/// texts joined with `; ` (unless one holds the other).
fn merge_descriptions(a: &str, b: &str) -> String {
    if let (Some(left), Some(right)) = (a.strip_prefix("Error: "), b.strip_prefix("Error: ")) {
        let mut codes: Vec<&str> = left.split(", ").collect();
        for code in right.split(", ") {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        return format!("Error: {}", codes.join(", "));
    }
    if a.contains(b) {
        a.to_owned()
    } else {
        format!("{a}; {b}")
    }
}

/// Documented error responses for the given codes, one per HTTP status, each naming
/// its codes and referencing the error envelope schema.
pub fn error_responses(
    ctx: &mut GenContext,
    codes: &[ErrorCode],
) -> Vec<(Option<StatusCode>, Response)> {
    let mut by_status: IndexMap<u16, Vec<ErrorCode>> = IndexMap::new();
    for code in codes {
        let list = by_status.entry(code.status().as_u16()).or_default();
        if !list.contains(code) {
            list.push(*code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            let response =
                json_response::<ErrorEnvelope>(ctx, &format!("Error: {}", names.join(", ")));
            (Some(StatusCode::Code(status)), response)
        })
        .collect()
}
