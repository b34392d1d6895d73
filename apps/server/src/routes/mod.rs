//! Route handlers, one module per group, and the single table that registers them.

mod account;
mod account_security;
mod api_keys;
mod audit_logs;
mod auth;
mod common;
pub(crate) mod districts;
mod erasure;
mod events;
mod invitations;
mod jobs;
mod member_io;
mod members;
mod notifications;
mod orgs;
mod permissions;
mod personal_export;
mod privacy;
mod roles;
mod system;
mod webhooks;

pub use account::RESET_ANSWER_AFTER;
pub use audit_logs::csv_stream;
pub use districts::district_authority;
pub use erasure::JobsAndMail;

use crate::http::{Api, ApiRoutes};

/// Every route of the API. The only place routes are registered: the actix app and
/// the OpenAPI document are both built from it.
#[must_use]
pub fn api() -> Api {
    let mut routes = ApiRoutes::new();
    system::register(&mut routes);
    auth::register(&mut routes);
    account::register(&mut routes);
    account_security::register(&mut routes);
    orgs::register(&mut routes);
    permissions::register(&mut routes);
    // Before the member routes: `/users/export` and `/users/import` must match before
    // `/users/{user_id}`.
    invitations::register(&mut routes);
    member_io::register(&mut routes);
    members::register(&mut routes);
    privacy::register(&mut routes);
    notifications::register(&mut routes);
    erasure::register(&mut routes);
    personal_export::register(&mut routes);
    roles::register(&mut routes);
    jobs::register(&mut routes);
    api_keys::register(&mut routes);
    districts::register(&mut routes);
    audit_logs::register(&mut routes);
    events::register(&mut routes);
    webhooks::register(&mut routes);
    routes.finish()
}
