//! Non-envelope responses: the OpenAPI document itself and the docs page.

use actix_web::body::BoxBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, Responder};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, Response, StatusCode};
use indexmap::IndexMap;

fn plain_response(content_type: &str, description: &str) -> Response {
    Response {
        description: description.to_owned(),
        content: IndexMap::from_iter([(content_type.to_owned(), MediaType::default())]),
        ..Default::default()
    }
}

/// A pre-serialized JSON document, served as is (`application/json`).
#[derive(Debug, Clone)]
pub struct RawJson(pub Bytes);

impl Responder for RawJson {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(self.0)
    }
}

impl aide::OperationOutput for RawJson {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(
            Some(StatusCode::Code(200)),
            plain_response("application/json", "The OpenAPI 3.1 document"),
        )]
    }
}

/// An HTML page.
#[derive(Debug, Clone)]
pub struct Html(pub Bytes);

impl Responder for Html {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(self.0)
    }
}

impl aide::OperationOutput for Html {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(
            Some(StatusCode::Code(200)),
            plain_response("text/html", "An HTML page"),
        )]
    }
}

/// Plain text (Prometheus exposition format).
#[derive(Debug, Clone)]
pub struct PlainText(pub String);

impl Responder for PlainText {
    type Body = BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(self.0)
    }
}

impl aide::OperationOutput for PlainText {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        vec![(
            Some(StatusCode::Code(200)),
            plain_response("text/plain", "Prometheus text format"),
        )]
    }
}
