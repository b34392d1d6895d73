//! The response envelope of the API spec: `{success, data|error, meta}`, and the
//! responders handlers return (`Reply`, `Created`, `Paged`, `NoContent`), each documenting itself.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, Response, SchemaObject};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::context as request_context;

/// Paging information of a list response.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Pagination {
    /// The page size used.
    pub limit: u32,
    /// Opaque cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Total number of items, where cheap to know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Response metadata.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Meta {
    /// The request id (also in the `X-Request-Id` header).
    pub request_id: String,
    /// When the response was produced (RFC 3339, UTC).
    pub timestamp: String,
    /// API version, `v2`.
    pub version: &'static str,
    /// Paging, on list responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl Meta {
    /// Metadata for the request being served.
    #[must_use]
    pub fn current() -> Self {
        Self {
            request_id: request_context::current_request_id().unwrap_or_default(),
            timestamp: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            version: "v2",
            pagination: None,
        }
    }
}

/// A successful response.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Envelope")]
pub struct SuccessEnvelope<T> {
    /// Always `true`.
    pub success: bool,
    /// The payload.
    pub data: T,
    /// Metadata.
    pub meta: Meta,
}

/// Response metadata of a list: as [`Meta`], with `pagination` always present.
#[derive(Debug, JsonSchema)]
#[allow(dead_code, reason = "documents the shape `Paged` serializes")]
pub struct PageMeta {
    /// The request id (also in the `X-Request-Id` header).
    request_id: String,
    /// When the response was produced (RFC 3339, UTC).
    timestamp: String,
    /// API version, `v2`.
    version: String,
    /// Paging: the page size, the next page's cursor, the total where cheap.
    pagination: Pagination,
}

/// A page of a list, as documented: `data` an array, `meta.pagination` required.
#[derive(Debug, JsonSchema)]
#[schemars(rename = "{T}Page")]
#[allow(dead_code, reason = "documents the shape `Paged` serializes")]
pub struct PageEnvelope<T> {
    /// Always `true`.
    success: bool,
    /// The items of this page.
    data: Vec<T>,
    /// Metadata, with paging.
    meta: PageMeta,
}

fn envelope_response<T: Serialize>(
    status: StatusCode,
    data: T,
    pagination: Option<Pagination>,
) -> HttpResponse {
    let mut meta = Meta::current();
    meta.pagination = pagination;
    HttpResponse::build(status).json(SuccessEnvelope {
        success: true,
        data,
        meta,
    })
}

/// Documents a JSON response whose schema is the envelope around `T`.
pub(crate) fn json_response<S: JsonSchema>(ctx: &mut GenContext, description: &str) -> Response {
    Response {
        description: description.to_owned(),
        content: IndexMap::from_iter([(
            "application/json".to_owned(),
            MediaType {
                schema: Some(SchemaObject {
                    json_schema: ctx.schema.subschema_for::<S>(),
                    example: None,
                    external_docs: None,
                }),
                ..Default::default()
            },
        )]),
        ..Default::default()
    }
}

macro_rules! responder {
    ($(#[$doc:meta])* $name:ident, $status:expr, $desc:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<T>(pub T);

        impl<T: Serialize> Responder for $name<T> {
            type Body = BoxBody;
            fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
                envelope_response($status, self.0, None)
            }
        }

        impl<T: JsonSchema> aide::OperationOutput for $name<T> {
            type Inner = T;
            fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
                Some(json_response::<SuccessEnvelope<T>>(ctx, $desc))
            }
            fn inferred_responses(
                ctx: &mut GenContext,
                op: &mut Operation,
            ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
                Self::operation_response(ctx, op)
                    .map(|r| (Some(aide::openapi::StatusCode::Code($status.as_u16())), r))
                    .into_iter()
                    .collect()
            }
        }
    };
}

responder!(
    /// 200 with `data` in the envelope.
    Reply, StatusCode::OK, "Success"
);

/// 201 with the created resource in the envelope and its address in `Location`.
#[derive(Debug)]
pub struct Created<T> {
    /// Path of the created resource (e.g. `/api/v2/orgs/{id}`), sent as `Location`.
    pub location: String,
    /// The created resource.
    pub data: T,
}

impl<T> Created<T> {
    /// The resource `data`, now found at `location`.
    pub fn at(location: impl Into<String>, data: T) -> Self {
        Self {
            location: location.into(),
            data,
        }
    }
}

impl<T: Serialize> Responder for Created<T> {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let mut res = envelope_response(StatusCode::CREATED, self.data, None);
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&self.location) {
            res.headers_mut()
                .insert(actix_web::http::header::LOCATION, v);
        }
        res
    }
}

impl<T: JsonSchema> aide::OperationOutput for Created<T> {
    type Inner = T;
    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        let mut res = json_response::<SuccessEnvelope<T>>(ctx, "Created");
        res.headers.insert(
            "Location".to_owned(),
            header_doc(ctx, "Path of the created resource."),
        );
        Some(res)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        Self::operation_response(ctx, op)
            .map(|r| (Some(aide::openapi::StatusCode::Code(201)), r))
            .into_iter()
            .collect()
    }
}

/// Documents a required response header holding a string.
fn header_doc(
    ctx: &mut GenContext,
    description: &str,
) -> aide::openapi::ReferenceOr<aide::openapi::Header> {
    let schema = ctx.schema.subschema_for::<String>();
    aide::openapi::ReferenceOr::Item(aide::openapi::Header {
        description: Some(description.to_owned()),
        style: aide::openapi::HeaderStyle::Simple,
        required: true,
        deprecated: None,
        format: aide::openapi::ParameterSchemaOrContent::Schema(SchemaObject {
            json_schema: schema,
            example: None,
            external_docs: None,
        }),
        example: None,
        examples: IndexMap::default(),
        extensions: IndexMap::default(),
    })
}
responder!(
    /// 202: accepted for background processing (`data` says where to follow it).
    Accepted, StatusCode::ACCEPTED, "Accepted"
);

/// 204 with no body: a delete with nothing more to tell.
#[derive(Debug, Clone, Copy)]
pub struct NoContent;

impl Responder for NoContent {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::build(StatusCode::NO_CONTENT).finish()
    }
}

impl aide::OperationOutput for NoContent {
    type Inner = ();
    fn operation_response(_ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        Some(Response {
            description: "Done (no body)".to_owned(),
            ..Default::default()
        })
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        Self::operation_response(ctx, op)
            .map(|r| (Some(aide::openapi::StatusCode::Code(204)), r))
            .into_iter()
            .collect()
    }
}

/// 200 with a list in `data` and paging in `meta.pagination`.
#[derive(Debug)]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Paging information.
    pub pagination: Pagination,
}

impl<T: Serialize> Responder for Paged<T> {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        envelope_response(StatusCode::OK, self.items, Some(self.pagination))
    }
}

impl<T: JsonSchema> aide::OperationOutput for Paged<T> {
    type Inner = Vec<T>;
    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        Some(json_response::<PageEnvelope<T>>(ctx, "A page of results"))
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        Self::operation_response(ctx, op)
            .map(|r| (Some(aide::openapi::StatusCode::Code(200)), r))
            .into_iter()
            .collect()
    }
}

/// 200 with a list in `data`, paging in `meta.pagination` and more about the list in
/// `meta.search` (a search's suggestions and facet counts).
#[derive(Debug)]
pub struct SearchPaged<T, M> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Paging information.
    pub pagination: Pagination,
    /// About the whole result.
    pub search: M,
}

#[derive(Serialize)]
struct SearchMetaOut<M> {
    #[serde(flatten)]
    meta: Meta,
    search: M,
}

#[derive(Serialize)]
struct SearchEnvelopeOut<T, M> {
    success: bool,
    data: Vec<T>,
    meta: SearchMetaOut<M>,
}

impl<T: Serialize, M: Serialize> Responder for SearchPaged<T, M> {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let mut meta = Meta::current();
        meta.pagination = Some(self.pagination);
        HttpResponse::Ok().json(SearchEnvelopeOut {
            success: true,
            data: self.items,
            meta: SearchMetaOut {
                meta,
                search: self.search,
            },
        })
    }
}

/// Response metadata of a search: as [`PageMeta`], with `search`.
#[derive(Debug, JsonSchema)]
#[allow(dead_code, reason = "documents the shape `SearchPaged` serializes")]
pub struct SearchPageMeta<M> {
    /// The request id (also in the `X-Request-Id` header).
    request_id: String,
    /// When the response was produced (RFC 3339, UTC).
    timestamp: String,
    /// API version, `v2`.
    version: String,
    /// Paging: the page size, the next page's cursor, the total where cheap.
    pagination: Pagination,
    /// About the whole result.
    search: M,
}

/// A page of search results, as documented.
#[derive(Debug, JsonSchema)]
#[allow(dead_code, reason = "documents the shape `SearchPaged` serializes")]
pub struct SearchPageEnvelope<T, M> {
    /// Always `true`.
    success: bool,
    /// The items of this page.
    data: Vec<T>,
    /// Metadata, with paging and the search's suggestions and facets.
    meta: SearchPageMeta<M>,
}

impl<T: JsonSchema, M: JsonSchema> aide::OperationOutput for SearchPaged<T, M> {
    type Inner = Vec<T>;
    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        Some(json_response::<SearchPageEnvelope<T, M>>(
            ctx,
            "A page of search results",
        ))
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        Self::operation_response(ctx, op)
            .map(|r| (Some(aide::openapi::StatusCode::Code(200)), r))
            .into_iter()
            .collect()
    }
}

/// 200 with one versioned resource in `data` and its `ETag`; a `GET` whose
/// `If-None-Match` names the current tag answers `304 Not Modified` with no body.
///
/// The tag is `"<version>-<digest>"`: the version is what `If-Match` (or the body's
/// `version`) sends back to write, the digest of the representation makes the tag
/// change with anything shown (a member's name lives on their account, not on the
/// versioned membership).
#[derive(Debug)]
pub struct Tagged<T> {
    /// The resource.
    pub data: T,
    /// Its version.
    pub version: i64,
}

impl<T: Serialize> Tagged<T> {
    /// The entity tag of `data` at `version` (quoted).
    fn etag(&self) -> String {
        use sha2::Digest;
        let body = serde_json::to_vec(&self.data).unwrap_or_default();
        let digest = sha2::Sha256::digest(&body);
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("\"{}-{short}\"", self.version)
    }
}

/// Whether an `If-None-Match` header value names `etag` (weakly compared, `*` matches).
fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let wanted = bare(etag);
    header.split(',').map(bare).any(|t| t == "*" || t == wanted)
}

impl<T: Serialize> Responder for Tagged<T> {
    type Body = BoxBody;
    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let etag = self.etag();
        tagged_response(req, etag, self.data)
    }
}

/// 200 with `data` and its `ETag`, or 304 when a `GET`'s `If-None-Match` names it.
fn tagged_response<T: Serialize>(req: &HttpRequest, etag: String, data: T) -> HttpResponse {
    let fresh = matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) && req
        .headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));
    if fresh {
        return HttpResponse::build(StatusCode::NOT_MODIFIED)
            .insert_header((actix_web::http::header::ETAG, etag))
            .finish();
    }
    let mut res = envelope_response(StatusCode::OK, data, None);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&etag) {
        res.headers_mut().insert(actix_web::http::header::ETAG, v);
    }
    res
}

/// The documented responses of a tagged `GET`: 200 with an `ETag` described by
/// `etag_doc`, and 304.
fn tagged_responses<T: JsonSchema>(
    ctx: &mut GenContext,
    etag_doc: &str,
) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
    let mut res = json_response::<SuccessEnvelope<T>>(ctx, "Success");
    res.headers
        .insert("ETag".to_owned(), header_doc(ctx, etag_doc));
    vec![
        (Some(aide::openapi::StatusCode::Code(200)), res),
        (
            Some(aide::openapi::StatusCode::Code(304)),
            Response {
                description: "Not modified: `If-None-Match` named the current `ETag` (no body)"
                    .to_owned(),
                ..Default::default()
            },
        ),
    ]
}

const VERSIONED_ETAG: &str = "The representation's tag, `\"<version>-<digest>\"`: send it back in `If-None-Match` (304 when unchanged) or `If-Match` (writes).";
const DIGEST_ETAG: &str = "The representation's weak tag, `W/\"<digest>\"`: send it back in `If-None-Match` (304 when unchanged).";

impl<T: JsonSchema> aide::OperationOutput for Tagged<T> {
    type Inner = T;
    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        tagged_responses::<T>(ctx, VERSIONED_ETAG)
            .into_iter()
            .next()
            .map(|(_, r)| r)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        _op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        tagged_responses::<T>(ctx, VERSIONED_ETAG)
    }
}

/// 200 with one resource that has no version of its own (a job, an API key, an audit
/// event: they change by themselves or not at all) and a weak `ETag` of its
/// representation; a `GET` whose `If-None-Match` names it answers `304` with no body, so
/// a client polling a job pays nothing while it has not moved.
#[derive(Debug)]
pub struct Fresh<T>(pub T);

impl<T: Serialize> Fresh<T> {
    /// The weak entity tag of the representation.
    fn etag(&self) -> String {
        use sha2::Digest;
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        let digest = sha2::Sha256::digest(&body);
        let short: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("W/\"{short}\"")
    }
}

impl<T: Serialize> Responder for Fresh<T> {
    type Body = BoxBody;
    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let etag = self.etag();
        tagged_response(req, etag, self.0)
    }
}

impl<T: JsonSchema> aide::OperationOutput for Fresh<T> {
    type Inner = T;
    fn operation_response(ctx: &mut GenContext, _op: &mut Operation) -> Option<Response> {
        tagged_responses::<T>(ctx, DIGEST_ETAG)
            .into_iter()
            .next()
            .map(|(_, r)| r)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        _op: &mut Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, Response)> {
        tagged_responses::<T>(ctx, DIGEST_ETAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_the_version_and_changes_with_the_representation() {
        let a = Tagged {
            data: serde_json::json!({"name": "Ann"}),
            version: 3,
        };
        let b = Tagged {
            data: serde_json::json!({"name": "Anne"}),
            version: 3,
        };
        assert!(a.etag().starts_with("\"3-"));
        assert_ne!(a.etag(), b.etag());
        assert!(none_match(&a.etag(), &a.etag()));
        assert!(none_match(&format!("W/{}, \"x\"", a.etag()), &a.etag()));
        assert!(none_match("*", &a.etag()));
        assert!(!none_match(&b.etag(), &a.etag()));
    }

    #[test]
    fn an_unversioned_tag_is_weak_and_follows_the_representation() {
        let running = Fresh(serde_json::json!({"status": "running", "progress": 10}));
        let same = Fresh(serde_json::json!({"status": "running", "progress": 10}));
        let moved = Fresh(serde_json::json!({"status": "running", "progress": 11}));
        assert!(running.etag().starts_with("W/\""));
        assert_eq!(running.etag(), same.etag());
        assert_ne!(running.etag(), moved.etag());
        assert!(none_match(&running.etag(), &same.etag()));
        assert!(!none_match(&moved.etag(), &running.etag()));
    }
}
