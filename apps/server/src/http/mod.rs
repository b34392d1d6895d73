//! The HTTP edge: envelope, error model, extractors, request context and the
//! route-registration layer that keeps routes and their OpenAPI document in one place.

pub mod body_limit;
pub mod context;
pub mod domain_errors;
pub mod envelope;
pub mod error;
pub mod examples;
pub mod extract;
#[cfg(test)]
mod garde_bounds;
pub mod guard;
pub mod idempotency;
pub mod json_limits;
pub mod messages;
pub mod metrics;
pub mod multipart;
pub mod openapi;
pub mod paging;
#[cfg(test)]
mod parser_props;
pub mod query_names;
pub mod rate_limit;
pub mod raw;
pub mod request_context;
pub mod schema_rules;
pub mod security;

pub use envelope::{
    Accepted, Created, Fresh, NoContent, Paged, Pagination, Reply, SearchPaged, Tagged,
};
pub use error::{ApiError, ErrorCode, FieldError};
pub use extract::{IfMatch, Json, Path, Query};
pub use guard::Requirement;
pub use openapi::{Api, ApiRoutes, RouteDoc};
pub use paging::{Order, PageQuery};
