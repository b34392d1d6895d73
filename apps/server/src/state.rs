//! The application state shared by all handlers.

use actix_web::web::Bytes;
use cache::{InvalidationBus, RedisCache};
use credentials::Argon2Hasher;
use persistence::Database;
use tenancy::service::AccountService;
use tenancy_store::{SeaOrmOrgRepository, SeaOrmUserRepository};

use crate::auth::AuthService;

/// The account service as wired in this app.
pub type Accounts = AccountService<SeaOrmUserRepository, Argon2Hasher>;

/// Everything a handler may need; shared by all workers.
pub struct AppState {
    /// The database pools.
    pub db: Database,
    /// The shared cache, when configured.
    pub redis: Option<RedisCache>,
    /// Cross-instance cache invalidations.
    pub bus: InvalidationBus,
    /// Account use cases.
    pub accounts: Accounts,
    /// Sign-in, tokens, sessions.
    pub auth: AuthService,
    /// Organizations, memberships, custom roles.
    pub orgs: SeaOrmOrgRepository,
    /// Signs the confirmation tokens of destructive bulk operations.
    pub confirmations: credentials::ConfirmationKey,
    /// The member directory (lists, search).
    pub directory: tenancy_store::SeaOrmMemberDirectory,
    /// The permission engine.
    pub authz: crate::authz::Authz,
    /// Districts, schools, district staff.
    pub districts: districts_store::SeaOrmDistrictRepository,
    /// The audit log (queries).
    pub audit_log: audit_store::SeaOrmAuditLog,
    /// Signs (and verifies) the audit digests.
    pub audit_signer: audit_store::Ed25519DigestSigner,
    /// Where the signed audit digests are kept.
    pub audit_digests: audit_store::FileDigestStore,
    /// The one-time platform-admin bootstrap token, if configured.
    pub bootstrap_token: Option<crate::config::Secret>,
    /// The serialized OpenAPI document.
    pub openapi_json: Bytes,
    /// The rendered docs page.
    pub docs_html: Bytes,
    /// Rate limits (shared through Redis when configured).
    pub rate_limits: crate::http::rate_limit::RateLimits,
    /// Durable background jobs (member import and export).
    pub jobs: jobs::JobQueue,
    /// Wakes this instance's job worker when a job is created here.
    pub job_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Where uploads and export files are staged (`DATA_DIR/tmp`).
    pub tmp_dir: std::path::PathBuf,
    /// Security headers, HSTS and CORS.
    pub security: crate::http::security::SecurityPolicy,
}
