//! One rule for query strings on every route: a parameter the route doesn't declare in
//! its OpenAPI operation is refused with 422 naming it (`details.fields[].field`), so a
//! typo (`?limt=5`, `?sort=email` where nothing sorts) never passes for a no-op. The
//! names come from the same operation the document shows, so they can't drift.

use std::sync::Arc;

use aide::openapi::{Operation, Parameter, ReferenceOr};

use super::error::{ApiError, FieldError};

/// The query parameter names a route declares.
#[derive(Debug, Clone, Default)]
pub struct KnownQuery(Arc<[String]>);

impl KnownQuery {
    /// The query parameters of `operation`.
    #[must_use]
    pub fn declared_by(operation: &Operation) -> Self {
        Self(
            operation
                .parameters
                .iter()
                .filter_map(|p| match p {
                    ReferenceOr::Item(Parameter::Query { parameter_data, .. }) => {
                        Some(parameter_data.name.clone())
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// Every parameter of `query_string` the route does not declare, as field errors
    /// (each name once, in order of appearance).
    #[must_use]
    pub fn unknown_in(&self, query_string: &str) -> Vec<FieldError> {
        let mut seen: Vec<String> = Vec::new();
        for (name, _) in form_urlencoded::parse(query_string.as_bytes()) {
            if !self.0.iter().any(|k| *k == name) && !seen.iter().any(|s| *s == name) {
                seen.push(name.into_owned());
            }
        }
        seen.into_iter()
            .map(|name| FieldError {
                message: if self.0.is_empty() {
                    format!("\"{name}\" is not a parameter of this route, which takes none")
                } else {
                    format!(
                        "\"{name}\" is not a parameter of this route; it takes {}",
                        self.0
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                field: name,
                code: "unknown_parameter".to_owned(),
            })
            .collect()
    }
}

/// Route middleware: 422 for undeclared query parameters, before the handler runs.
pub async fn refuse_unknown(
    known: KnownQuery,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse, actix_web::Error> {
    let unknown = known.unknown_in(req.query_string());
    if !unknown.is_empty() {
        return Ok(req.error_response(ApiError::validation(unknown)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[&str]) -> KnownQuery {
        KnownQuery(names.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn undeclared_names_are_each_named_once() {
        let k = known(&["limit", "cursor"]);
        assert!(k.unknown_in("").is_empty());
        assert!(k.unknown_in("limit=5&cursor=abc").is_empty());
        let errs = k.unknown_in("limt=5&sort=email&limt=6&limit=2");
        let names: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["limt", "sort"]);
        assert!(errs.iter().all(|e| e.code == "unknown_parameter"));
        assert!(errs[0].message.contains("\"limit\", \"cursor\""));
    }

    #[test]
    fn a_route_without_parameters_refuses_any() {
        let errs = known(&[]).unknown_in("verbose");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "verbose");
        assert!(errs[0].message.contains("takes none"));
        // Percent-encoded names are compared decoded.
        assert!(known(&["q"]).unknown_in("%71=x").is_empty());
    }
}
