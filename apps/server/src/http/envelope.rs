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
responder!(
    /// 201 with the created resource in the envelope.
    Created, StatusCode::CREATED, "Created"
);
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
        Some(json_response::<SuccessEnvelope<Vec<T>>>(
            ctx,
            "A page of results",
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
