//! The task-local context of the request being served (its id, span and consistency
//! token), readable anywhere below the edge; set by [`super::request_context::middleware`].

tokio::task_local! {
    pub(super) static REQUEST_ID: String;
    pub(super) static CONSISTENCY_TOKEN: Option<u64>;
    pub(super) static REQUEST_SPAN: tracing::Span;
}

/// Records the signed-in user on the request span (called once auth resolves it), so
/// every later log line of the request and its exported span carry it.
pub fn record_user(user: impl std::fmt::Display) {
    let _ = REQUEST_SPAN.try_with(|s| {
        s.record("user_id", tracing::field::display(user));
    });
}

/// Records the org the request acts in on the request span (once auth resolves it).
pub fn record_org(org: impl std::fmt::Display) {
    let _ = REQUEST_SPAN.try_with(|s| {
        s.record("org_id", tracing::field::display(org));
    });
}

/// The header with which a client asks for state at least as fresh as a write it made
/// (the `version` that write returned).
pub const CONSISTENCY_TOKEN_HEADER: &str = "x-consistency-token";

/// The consistency token the client sent with the request being served, if any.
#[must_use]
pub fn consistency_token() -> Option<u64> {
    CONSISTENCY_TOKEN.try_with(|t| *t).ok().flatten()
}

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header carrying the server-side handling time.
pub const RESPONSE_TIME_HEADER: &str = "x-response-time";

/// The id of the request being served on this task, if any.
#[must_use]
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
