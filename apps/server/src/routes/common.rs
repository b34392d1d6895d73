//! Helpers shared by several route groups (so no route module borrows from another).

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use aide::openapi::{MediaType, Response};
use futures_util::stream::BoxStream;
use jobs::table::SheetFormat;
use tenancy::SignupCode;

/// A garde rule from a domain parser, so the domain's rules are reported with all
/// other field errors at once.
pub(crate) fn domain_rule<T, E: std::fmt::Display>(
    parse: impl Fn(&str) -> Result<T, E>,
) -> impl FnOnce(&String, &()) -> garde::Result {
    move |value, ()| {
        parse(value)
            .map(|_| ())
            .map_err(|e| garde::Error::new(e.to_string()))
    }
}

/// A streamed file body.
pub(crate) type FileStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A fresh random signup code.
pub(crate) fn generate_code() -> SignupCode {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    SignupCode::from_random(bytes)
}

/// A streamed attachment response.
pub(crate) fn attachment(content_type: &str, filename: &str, body: FileStream) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type.to_owned())
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body)
}

/// The OpenAPI description of a file download (CSV or XLSX).
pub(crate) fn file_response(description: &str) -> Response {
    Response {
        description: description.to_owned(),
        content: indexmap::IndexMap::from_iter([
            ("text/csv".to_owned(), MediaType::default()),
            (
                SheetFormat::Xlsx.content_type().to_owned(),
                MediaType::default(),
            ),
        ]),
        ..Default::default()
    }
}

/// The version a mutation is conditional on: the body's (or query's) `version`, else
/// `If-Match`; 428 `PRECONDITION_REQUIRED` when neither was sent.
pub(crate) fn required_version(
    sent: Option<i64>,
    if_match: crate::http::IfMatch,
) -> Result<i64, crate::http::ApiError> {
    sent.or(if_match.0).ok_or_else(|| {
        crate::http::ApiError::new(
            crate::http::ErrorCode::PreconditionRequired,
            "send the version you read, as `version` or in an `If-Match` header",
        )
    })
}
