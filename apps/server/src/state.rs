//! The application state shared by all handlers.

use actix_web::dev::Payload;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use cache::{InvalidationBus, RedisCache};
use credentials::Argon2Hasher;
use persistence::Database;
use tenancy::service::AccountService;
use tenancy_store::{SeaOrmOrgRepository, SeaOrmUserRepository};

use crate::auth::AuthService;
use crate::http::ApiError;

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
    pub auth: std::sync::Arc<AuthService>,
    /// Organizations, memberships, custom roles.
    pub orgs: SeaOrmOrgRepository,
    /// Directory policies, members' privacy choices, data-access activity.
    pub privacy: tenancy_store::SeaOrmPrivacy,
    /// Notifications: the inbox, preferences, sending and the daily digest.
    pub notifications: notifications_store::SeaOrmNotifications,
    /// Address verification and password-reset links.
    pub account_tokens: tenancy_store::SeaOrmAccountTokens,
    /// Signs the confirmation tokens of destructive bulk operations.
    pub confirmations: credentials::ConfirmationKey,
    /// The member directory (lists, search), uncached: exports and jobs page through it.
    pub directory: tenancy_store::SeaOrmMemberDirectory,
    /// The member directory behind the two-level cache (profiles, list and search pages).
    pub directory_cache: directory_cache::CachedDirectory<tenancy_store::SeaOrmMemberDirectory>,
    /// The caller's own account with their memberships (`GET /me`), cached.
    pub account_views: crate::account_views::AccountViews,
    /// The member search's per-org in-process indexes.
    pub search_indexes: crate::search_index::SearchIndexes,
    /// The permission engine.
    pub authz: std::sync::Arc<crate::authz::Authz>,
    /// Districts, schools, district staff.
    pub districts: districts_store::SeaOrmDistrictRepository,
    /// `Idempotency-Key`s of creates and their first answers (the edge's
    /// `web::Data<dyn IdempotencyStore>`).
    pub idempotency: std::sync::Arc<dyn idempotency_store::IdempotencyStore>,
    /// Live change events for the streams (fed by the dispatcher and the bus).
    pub events: crate::event_hub::EventHub,
    /// How long an idle stream waits before a heartbeat (`STREAM_HEARTBEAT_MS`).
    pub stream_heartbeat: std::time::Duration,
    /// The audit log (queries).
    pub audit_log: audit_store::SeaOrmAuditLog,
    /// Signs (and verifies) the audit digests.
    pub audit_signer: audit_store::Ed25519DigestSigner,
    /// Where the signed audit digests are kept.
    pub audit_digests: audit_store::FileDigestStore,
    /// The one-time platform-admin bootstrap token, if configured.
    pub bootstrap_token: Option<crate::config::Secret>,
    /// How warm the permission cache is (warming at start, [`crate::cache_warming`]).
    pub warming: std::sync::Arc<crate::cache_warming::Warming>,
    /// The event streams open on this instance (`ptoc_streams_open`).
    pub open_streams: crate::http::metrics::OpenStreams,
    /// The serialized OpenAPI document.
    pub openapi_json: Bytes,
    /// The rendered docs page.
    pub docs_html: Bytes,
    /// Rate limits (shared through Redis when configured).
    pub rate_limits: std::sync::Arc<crate::http::rate_limit::RateLimits>,
    /// Durable background jobs (member import and export).
    pub jobs: jobs::JobQueue,
    /// Wakes this instance's job worker when a job is created here.
    pub job_wake: std::sync::Arc<tokio::sync::Notify>,
    /// How long an ended job is kept before the sweeper removes it.
    pub job_retention: std::time::Duration,
    /// How many days an invitation stays open (`INVITATION_TTL_DAYS`).
    pub invitation_ttl_days: u16,
    /// Whether platform admins need a second-factor session (`PLATFORM_ADMIN_REQUIRE_2FA`).
    pub platform_admin_second_factor: bool,
    /// Where uploads and export files are staged (`DATA_DIR/tmp`).
    pub tmp_dir: std::path::PathBuf,
    /// Where `cargo xtask audit archive` writes archive files by default
    /// (`DATA_DIR/audit-archive`): personal data exports read archived events there.
    pub audit_archive_dir: std::path::PathBuf,
    /// Security headers, HSTS and CORS.
    pub security: crate::http::security::SecurityPolicy,
    /// Builds the links of e-mail messages (`PUBLIC_BASE_URL`): pass them to
    /// `mail::MailKind`, enqueue with `mail::Outbox::enqueue` in the write transaction.
    pub mail_urls: mail::PublicUrls,
    /// Wakes this instance's mail worker (`notify_one` after committing messages);
    /// without it they go within the worker's poll interval.
    pub mail_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Webhook endpoints, deliveries and attempts.
    pub webhooks: webhooks_store::SeaOrmWebhooks,
    /// Which receivers webhook endpoints may have (`WEBHOOK_ALLOW_LOOPBACK`).
    pub webhook_policy: webhooks::AddressPolicy,
    /// Sends webhook messages (`WEBHOOK_TIMEOUT_MS`).
    pub webhook_transport: std::sync::Arc<dyn webhooks_store::transport::Transport>,
    /// Wakes this instance's webhook worker (the dispatcher, after an org's change).
    pub webhook_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Where messages are written as `.eml` files when there is no SMTP server (the
    /// embedded default); an erasure removes the person's files there.
    pub mail_files: Option<std::path::PathBuf>,
}

impl AppState {
    /// Ends the officer terms that are over (each falls back to volunteer, audited; the
    /// dispatcher retires what the caches hold of them); how many ended.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn end_expired_terms(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<usize, tenancy::ports::StorageFailure> {
        use tenancy::ports::OrgRepository;
        Ok(self.orgs.end_expired_terms(now).await?.len())
    }
}

/// The shared application state, as a handler argument.
#[derive(Clone)]
pub struct State(pub web::Data<AppState>);

impl std::ops::Deref for State {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl FromRequest for State {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.app_data::<web::Data<AppState>>()
                .cloned()
                .map(State)
                .ok_or_else(|| ApiError::internal("application state missing from the app".into())),
        )
    }
}

impl aide::OperationInput for State {}
