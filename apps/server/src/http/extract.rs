//! Request extractors that also document themselves (actix `FromRequest` + aide
//! `OperationInput`), so a handler's signature is its documentation.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use aide::generate::GenContext;
use aide::openapi::{MediaType, Operation, RequestBody, Response, SchemaObject, StatusCode};
use aide::operation::{ParamLocation, add_parameters, parameters_from_schema, set_body};
use futures_util::StreamExt;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode, FieldError};
use super::openapi::error_responses;

pub use super::body_limit::{
    BodyLimit, DEFAULT_JSON_LIMIT, UPLOAD_BODY_LIMIT, declared_over, too_large, with_body_limit,
};

/// A JSON body: content type checked, size capped, unknown fields rejected (by the
/// DTO's `deny_unknown_fields`), then validated with garde; every problem is reported
/// at once as a field error.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> FromRequest for Json<T>
where
    T: DeserializeOwned + garde::Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let limit = BodyLimit::of(req);
        let declared_too_large = declared_over(req, limit);
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be JSON, sent with Content-Type: application/json",
                ));
            }
            if declared_too_large {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ApiError::new(
                        ErrorCode::ValidationFailed,
                        "the request body could not be read",
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            decode_body(&body).map(Json)
        })
    }
}

/// A JSON body's bytes to a validated value: structural limits
/// ([`JsonLimits::DEFAULT`](super::json_limits::JsonLimits::DEFAULT)), then serde with
/// field paths, then garde. Every failure is a 422 with field errors.
///
/// # Errors
/// `VALIDATION_FAILED` naming what is wrong.
pub fn decode_body<T>(body: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + garde::Validate<Context = ()>,
{
    super::json_limits::check(body, super::json_limits::JsonLimits::DEFAULT).map_err(|e| {
        ApiError::validation(vec![FieldError {
            field: e.field(),
            code: e.code().to_owned(),
            message: e.message(),
        }])
    })?;
    let value: T = parse_json(body)?;
    value
        .validate()
        .map_err(|report| ApiError::validation(garde_fields(&report)))?;
    Ok(value)
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let msg = inner.to_string();
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            // Strip serde's " at line N column M" suffix: positions are noise for clients.
            let what = msg
                .split(" at line ")
                .next()
                .unwrap_or(&msg)
                .replace('`', "\"");
            return ApiError::validation(vec![FieldError {
                field: String::new(),
                code: "invalid_json".to_owned(),
                message: format!("the body is not valid JSON: {what}"),
            }]);
        }
        let plain = super::messages::for_people(&msg);
        let path = if path == "." { String::new() } else { path };
        let field = match msg.strip_prefix("missing field ") {
            Some(name) => {
                let name = name
                    .split(" at line ")
                    .next()
                    .unwrap_or(name)
                    .trim_matches('`');
                if path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            }
            None => path,
        };
        ApiError::validation(vec![FieldError {
            field,
            code: plain.code.to_owned(),
            message: plain.message,
        }])
    })?;
    // Nothing but white space may follow the value (`{"name":"a"} xx` is not JSON).
    de.end().map_err(|_| {
        ApiError::validation(vec![FieldError {
            field: String::new(),
            code: "invalid_json".to_owned(),
            message: "the body holds more than one JSON value (trailing characters)".to_owned(),
        }])
    })?;
    Ok(value)
}

/// Every garde failure as a field error.
pub fn garde_fields(report: &garde::Report) -> Vec<FieldError> {
    report
        .iter()
        .map(|(path, error)| FieldError {
            field: path.to_string(),
            code: "invalid_value".to_owned(),
            message: error.message().to_string(),
        })
        .collect()
}

impl<T: JsonSchema> aide::OperationInput for Json<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        let json_schema = ctx.schema.subschema_for::<T>();
        set_body(
            ctx,
            operation,
            RequestBody {
                description: None,
                content: IndexMap::from_iter([(
                    "application/json".to_owned(),
                    MediaType {
                        schema: Some(SchemaObject {
                            json_schema,
                            example: None,
                            external_docs: None,
                        }),
                        ..Default::default()
                    },
                )]),
                required: true,
                extensions: IndexMap::default(),
            },
        );
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(
            ctx,
            &[
                ErrorCode::ValidationFailed,
                ErrorCode::PayloadTooLarge,
                ErrorCode::UnsupportedMediaType,
            ],
        )
    }
}

/// Path parameters; a value that does not parse (e.g. a malformed id) is a 404: no
/// such resource can exist.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Path<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let result = web::Path::<T>::from_request(req, payload)
            .into_inner()
            .map(|p| Path(p.into_inner()))
            .map_err(|_| ApiError::not_found("no such resource"));
        std::future::ready(result)
    }
}

/// Adds the parameters the operation does not have yet (several extractors may
/// describe the same path parameter, e.g. `{org_id}`).
pub fn add_missing_parameters(
    ctx: &mut GenContext,
    operation: &mut Operation,
    params: Vec<aide::openapi::Parameter>,
) {
    let present: Vec<String> = operation
        .parameters
        .iter()
        .filter_map(|p| match p {
            aide::openapi::ReferenceOr::Item(p) => Some(p.parameter_data_ref().name.clone()),
            aide::openapi::ReferenceOr::Reference { .. } => None,
        })
        .collect();
    let missing: Vec<_> = params
        .into_iter()
        .filter(|p| !present.contains(&p.parameter_data_ref().name))
        .collect();
    add_parameters(ctx, operation, missing);
}

impl<T: JsonSchema> aide::OperationInput for Path<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        let schema = ctx.schema.subschema_for::<T>();
        let params = parameters_from_schema(ctx, schema, ParamLocation::Path);
        add_missing_parameters(ctx, operation, params);
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(ctx, &[ErrorCode::NotFound])
    }
}

/// Query parameters, validated with garde; problems come back as field errors.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> FromRequest for Query<T>
where
    T: DeserializeOwned + garde::Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = serde_urlencoded_from(req.query_string()).and_then(|v: T| {
            v.validate()
                .map_err(|r| ApiError::validation(garde_fields(&r)))?;
            Ok(Query(v))
        });
        std::future::ready(parsed)
    }
}

fn serde_urlencoded_from<T: DeserializeOwned>(qs: &str) -> Result<T, ApiError> {
    check_query_text(qs)?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(qs.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let msg = err.into_inner().to_string();
        let plain = super::messages::for_people(&msg);
        // serde names the parameter in its message when the path can't (a missing or
        // unknown one); the path names it otherwise.
        let named = msg.split('`').nth(1).map(str::to_owned);
        let field = if path == "." || path.is_empty() {
            named.unwrap_or_default()
        } else {
            path
        };
        ApiError::validation(vec![FieldError {
            field,
            code: plain.code.to_owned(),
            message: plain.message,
        }])
    })
}

/// Refuses a query string whose decoded names or values hold a control character
/// ([`tenancy::text::is_forbidden`]), naming the parameter.
fn check_query_text(qs: &str) -> Result<(), ApiError> {
    if !qs.contains('%') && !qs.chars().any(tenancy::text::is_forbidden) {
        return Ok(());
    }
    let pairs = web::Query::<Vec<(String, String)>>::from_query(qs)
        .map(web::Query::into_inner)
        .unwrap_or_default();
    for (name, value) in pairs {
        if let Some(c) =
            tenancy::text::first_forbidden(&name).or_else(|| tenancy::text::first_forbidden(&value))
        {
            return Err(ApiError::validation(vec![FieldError {
                field: tenancy::text::first_forbidden(&name).map_or(name, |_| String::new()),
                code: "control_character".to_owned(),
                message: tenancy::text::forbidden_message(c),
            }]));
        }
    }
    Ok(())
}

impl<T: JsonSchema> aide::OperationInput for Query<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        let schema = ctx.schema.subschema_for::<T>();
        let params = parameters_from_schema(ctx, schema, ParamLocation::Query);
        add_parameters(ctx, operation, params);
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        error_responses(ctx, &[ErrorCode::ValidationFailed])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        email: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialized")]
    struct Nested {
        n: u8,
    }

    fn field_of(body: &str) -> (String, String) {
        let err = parse_json::<Body>(body.as_bytes()).expect_err("must fail");
        let fields = err.details.expect("details")["fields"].clone();
        (
            fields[0]["field"].as_str().unwrap_or_default().to_owned(),
            fields[0]["code"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[derive(Debug, serde::Deserialize, garde::Validate, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Echo {
        #[garde(length(chars, max = 100))]
        text: String,
    }

    async fn echo(Json(body): Json<Echo>) -> super::super::Reply<String> {
        super::super::Reply(body.text)
    }

    #[actix_web::test]
    async fn body_caps_are_declared_per_route() {
        use actix_web::test;
        let mut routes = super::super::ApiRoutes::new();
        routes.post(
            "/small",
            echo,
            super::super::RouteDoc::new("small", "s", "t")
                .public()
                .rate_exempt()
                .body_limit(32),
        );
        routes.post(
            "/default",
            echo,
            super::super::RouteDoc::new("default", "d", "t")
                .public()
                .rate_exempt(),
        );
        let api = routes.finish();
        let app =
            test::init_service(actix_web::App::new().configure(|cfg| api.configure(cfg))).await;
        let body = format!(r#"{{"text":"{}"}}"#, "x".repeat(40));
        let call = |path: &'static str, body: String| {
            test::TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request()
        };
        let res = test::call_service(&app, call("/small", body.clone())).await;
        assert_eq!(res.status().as_u16(), 413);
        let res = test::call_service(&app, call("/default", body)).await;
        assert_eq!(res.status().as_u16(), 200);
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(DEFAULT_JSON_LIMIT));
        let res = test::call_service(&app, call("/default", big)).await;
        assert_eq!(res.status().as_u16(), 413);
        let doc = serde_json::to_value(api.document().as_ref()).expect("document");
        assert_eq!(doc["paths"]["/small"]["post"]["x-body-limit"], 32);
        assert!(
            doc["paths"]["/default"]["post"]
                .get("x-body-limit")
                .is_none()
        );
    }

    #[test]
    fn json_errors_name_the_field_and_kind() {
        assert_eq!(field_of("{"), (String::new(), "invalid_json".into()));
        assert_eq!(field_of("{}"), ("email".into(), "required".into()));
        assert_eq!(
            field_of(r#"{"email":"a","x":1}"#),
            ("x".into(), "unknown_field".into())
        );
        assert_eq!(
            field_of(r#"{"email":"a","nested":{"n":300}}"#),
            ("nested.n".into(), "invalid_value".into())
        );
        // One value and only white space after it.
        assert_eq!(
            field_of(r#"{"email":"a"} xx"#),
            (String::new(), "invalid_json".into())
        );
        assert_eq!(
            field_of(r#"{"email":"a"}{"email":"b"}"#),
            (String::new(), "invalid_json".into())
        );
        assert!(parse_json::<Body>(b"{\"email\":\"a\"} \r\n\t").is_ok());
    }

    #[derive(Debug, serde::Deserialize, garde::Validate)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialized")]
    struct Filter {
        #[garde(skip)]
        q: Option<String>,
    }

    #[test]
    fn query_values_with_control_characters_are_refused_by_name() {
        let err = serde_urlencoded_from::<Filter>("q=ab%00c").expect_err("refused");
        let fields = err.details.expect("details")["fields"].clone();
        assert_eq!(fields[0]["field"], "q");
        assert_eq!(fields[0]["code"], "control_character");
        assert!(serde_urlencoded_from::<Filter>("q=%1B").is_err());
        assert!(serde_urlencoded_from::<Filter>("q=%C2%85").is_err());
        let ok = serde_urlencoded_from::<Filter>("q=Jos%C3%A9%20%E6%9D%8E").expect("plain text");
        assert_eq!(ok.q.as_deref(), Some("José 李"));
    }
}

/// The version from an `If-Match` header (`"3"`, `W/"3"` or `3`), if sent.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(actix_web::http::header::IF_MATCH) {
            None => Ok(Self(None)),
            Some(v) => v
                .to_str()
                .ok()
                .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
                // An `ETag` (`"<version>-<digest>"`) or a bare version.
                .map(|s| s.split_once('-').map_or(s, |(version, _)| version))
                .and_then(|s| s.parse::<i64>().ok())
                .map(|n| Self(Some(n)))
                .ok_or_else(|| {
                    ApiError::validation(vec![FieldError {
                        field: "If-Match".to_owned(),
                        code: "invalid_value".to_owned(),
                        message: "If-Match must be the resource's ETag or version, e.g. \"3\""
                            .to_owned(),
                    }])
                }),
        };
        std::future::ready(parsed)
    }
}

impl aide::OperationInput for IfMatch {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        let schema = ctx.schema.subschema_for::<String>();
        add_parameters(
            ctx,
            operation,
            [aide::openapi::Parameter::Header {
                parameter_data: aide::openapi::ParameterData {
                    name: "If-Match".to_owned(),
                    description: Some(
                        "The `ETag` or version you read, e.g. `\"3\"`; a stale one answers 412."
                            .to_owned(),
                    ),
                    required: false,
                    format: aide::openapi::ParameterSchemaOrContent::Schema(SchemaObject {
                        json_schema: schema,
                        example: None,
                        external_docs: None,
                    }),
                    extensions: IndexMap::default(),
                    deprecated: None,
                    example: None,
                    examples: IndexMap::default(),
                    explode: None,
                },
                style: aide::openapi::HeaderStyle::Simple,
            }],
        );
    }
}
