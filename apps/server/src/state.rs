//! The application state shared by all handlers.

use std::sync::Arc;

use actix_web::web::Bytes;
use cache::RedisCache;
use credentials::{Argon2Hasher, SigningKey};
use persistence::{Database, SeaOrmUserRepository};
use tenancy::service::AccountService;

/// The account service as wired in this app.
pub type Accounts = AccountService<SeaOrmUserRepository, Argon2Hasher>;

/// Everything a handler may need; cheap to clone (all shared).
pub struct AppState {
    /// The database pools.
    pub db: Database,
    /// The shared cache, when configured.
    pub redis: Option<RedisCache>,
    /// Account use cases.
    pub accounts: Accounts,
    /// The token-signing key.
    pub signing_key: Arc<SigningKey>,
    /// The serialized OpenAPI document.
    pub openapi_json: Bytes,
    /// The rendered docs page.
    pub docs_html: Bytes,
}
