//! The composition root: adapters → services → HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::{App, HttpServer, middleware, web};
use cache::{InvalidationBus, RedisCache};
use credentials::{Argon2Hasher, KeySource, SigningKey, TokenIssuer};
use persistence::{Database, DatabaseSettings};
use tenancy::service::AccountService;
use tenancy_store::{SeaOrmOrgRepository, SeaOrmSessionRepository, SeaOrmUserRepository};

use crate::auth::{AuthService, SessionSettings};

use crate::config::Settings;
use crate::http::guard::RouteGuard;
use crate::http::rate_limit::CallerIdentity;
use crate::http::request_context;
use crate::http::{Api, ApiError, Requirement};
use crate::state::AppState;

/// Why the server could not start. Each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory could not be created.
    #[error("DATA_DIR {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] persistence::ConnectError),
    /// Redis could not be configured.
    #[error(transparent)]
    Redis(#[from] cache::RedisError),
    /// The signing key could not be loaded or created.
    #[error(transparent)]
    SigningKey(#[from] credentials::KeyError),
    /// The password hasher could not be configured.
    #[error("password hasher: {0}")]
    Hasher(String),
    /// The mail transport could not be configured.
    #[error("mail: {0}")]
    Mail(String),
    /// The webhook client could not be configured.
    #[error("webhooks: {0}")]
    Webhooks(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The permission cache could not be configured.
    #[error("permission cache: {0}")]
    Cache(String),
    /// The audit digest key or directory could not be opened.
    #[error("audit digests: {0}")]
    Audit(String),
    /// The rate limiter could not be configured.
    #[error("rate limits: {0}")]
    RateLimit(#[from] rate_limit::StoreError),
    /// The OpenAPI document could not be serialized.
    #[error("openapi: {0}")]
    OpenApi(#[from] serde_json::Error),
}

/// Which password-hashing cost to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingCost {
    /// OWASP-recommended argon2id parameters (production).
    Recommended,
    /// Minimal parameters (tests).
    FastForTests,
}

/// Opens the adapters described by `settings` and builds the shared state.
pub async fn build_state(
    settings: &Settings,
    api: &Api,
    cost: HashingCost,
) -> Result<web::Data<AppState>, StartupError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
        path: settings.data_dir.display().to_string(),
        source,
    })?;
    let mut db_settings = match &settings.database_url {
        Some(url) => DatabaseSettings {
            url: url.expose().to_owned(),
            read_url: settings
                .database_read_url
                .as_ref()
                .map(|u| u.expose().to_owned()),
            max_connections: settings.database_max_connections,
            acquire_timeout: settings.database_acquire_timeout,
            busy_timeout: settings.database_busy_timeout,
        },
        None => DatabaseSettings::sqlite_in(&settings.data_dir),
    };
    db_settings.max_connections = settings.database_max_connections;
    db_settings.acquire_timeout = settings.database_acquire_timeout;
    db_settings.busy_timeout = settings.database_busy_timeout;
    let db = Database::connect(&db_settings).await?;
    db.migrate().await?;
    if db.start_replica_monitor(persistence::ReplicaPolicy {
        max_lag: settings.database_replica_max_lag,
        ..persistence::ReplicaPolicy::default()
    }) {
        tracing::info!(
            max_lag_ms =
                u64::try_from(settings.database_replica_max_lag.as_millis()).unwrap_or(u64::MAX),
            "replica lag monitored"
        );
    }
    tracing::info!(
        backend = db.backend().as_str(),
        "database ready (migrations applied)"
    );

    let (redis, bus) = match &settings.redis_url {
        Some(url) => {
            let redis = RedisCache::connect(url.expose(), Duration::from_secs(2)).await?;
            let bus =
                InvalidationBus::with_redis(url.expose(), redis.clone(), Duration::from_secs(2))
                    .await?;
            (Some(redis), bus)
        }
        None => (None, InvalidationBus::local_only()),
    };

    let signing_key = match &settings.signing_key {
        Some(pem) => SigningKey::from_pem(pem.expose())?,
        None => {
            let (key, source) =
                SigningKey::load_or_create(&settings.data_dir.join("signing_key.pem"))?;
            if source == KeySource::Generated {
                tracing::info!(public_key = %key.public_hex(), "generated a new token signing key in DATA_DIR");
            }
            key
        }
    };
    let hasher = match cost {
        HashingCost::Recommended => Argon2Hasher::recommended(),
        HashingCost::FastForTests => Argon2Hasher::fast_for_tests(),
    }
    .map_err(|e| StartupError::Hasher(e.to_string()))?;

    let openapi_json = Bytes::from(serde_json::to_vec(api.document().as_ref())?);
    let docs_page = aide::scalar::Scalar::new("/openapi.json")
        .with_title("PTO Connect API")
        .html();
    let security = crate::http::security::SecurityPolicy::new(
        &settings.http,
        &settings.rate_limit.trusted_proxies,
        &docs_page,
    );
    let docs_html = Bytes::from(docs_page);
    let (audit_signer, _) = audit_store::Ed25519DigestSigner::load_or_create(
        &settings.data_dir.join("audit_digest_key.pem"),
    )
    .map_err(|e| StartupError::Audit(e.to_string()))?;
    let audit_digests = audit_store::FileDigestStore::in_data_dir(&settings.data_dir)
        .map_err(|e| StartupError::Audit(e.to_string()))?;
    let permission_store = permissions_store::SeaOrmPermissionStore::new(db.clone());
    let permission_cache = permissions_cache::PermissionCache::new(
        permission_store.clone(),
        settings.redis_url.as_ref().map(|u| u.expose()),
        bus.clone(),
        permissions_cache::CacheSettings {
            l1_org_bytes: settings.cache_budgets.permission_orgs,
            l1_member_bytes: settings.cache_budgets.permission_members,
            ..permissions_cache::CacheSettings::default()
        },
    )
    .await
    .map_err(|e| StartupError::Cache(e.to_string()))?;
    // Cache fills read the primary: a page from a lagging replica would otherwise stay
    // stale for the cache's lifetime instead of the replication lag.
    let directory_cache = directory_cache::CachedDirectory::with_l1_budget(
        tenancy_store::SeaOrmMemberDirectory::new(db.clone()).reading_primary(),
        settings.redis_url.as_ref().map(|u| u.expose()),
        bus.clone(),
        settings.cache_budgets.directory,
    )
    .await
    .map_err(|e| StartupError::Cache(e.to_string()))?;
    let account_views = crate::account_views::AccountViews::new(
        SeaOrmSessionRepository::new(db.clone()),
        SeaOrmOrgRepository::new(db.clone()),
        settings.redis_url.as_ref().map(|u| u.expose()),
        bus.clone(),
        settings.cache_budgets.accounts,
    )
    .await
    .map_err(|e| StartupError::Cache(e.to_string()))?;
    // What the stores tell people by e-mail, queued with the change that causes it.
    let notices = tenancy_store::Notices::new(Arc::new(crate::mailer::MailNotifier::new(
        settings.mail.public_urls.clone(),
    )));
    let confirmations = credentials::ConfirmationKey::derive(&signing_key);
    let totp_key = credentials::TotpKey::derive(&signing_key);
    let webhook_seal = WebhookSeal(credentials::TotpKey::derive_for(
        &signing_key,
        "ptoc webhook secrets v1",
    ));
    let auth = AuthService::new(
        TokenIssuer::new(Arc::new(signing_key)),
        SeaOrmSessionRepository::new(db.clone()).with_notices(notices.clone()),
        tenancy_store::SeaOrmAccountSecurity::new(db.clone()).with_notices(notices.clone()),
        totp_key,
        tenancy_store::SeaOrmApiKeyRepository::new(db.clone()),
        hasher.clone(),
        bus.clone(),
        SessionSettings {
            verified_cache_bytes: settings.cache_budgets.tokens,
            ..SessionSettings::default()
        },
    )
    .await
    .map_err(|e| StartupError::Hasher(e.to_string()))?;
    let tmp_dir = settings.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|source| StartupError::DataDir {
        path: tmp_dir.display().to_string(),
        source,
    })?;
    let rate_limits = crate::http::rate_limit::RateLimits::new(
        &settings.rate_limit,
        settings.redis_url.as_ref().map(|u| u.expose()),
        Arc::new(rate_limit::SystemClock),
    )
    .await?;
    let authz = Arc::new(crate::authz::Authz::new(permission_store, permission_cache));
    let auth = Arc::new(auth);
    let orgs = SeaOrmOrgRepository::new(db.clone()).with_notices(notices.clone());
    // The one place committed changes become invalidations (every store's `WriteTx`
    // hands its events here after commit).
    let mail_wake = Arc::new(tokio::sync::Notify::new());
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    let webhook_policy = webhooks::AddressPolicy {
        allow_loopback: settings.webhook_allow_loopback,
    };
    let webhook_transport: Arc<dyn webhooks_store::transport::Transport> = Arc::new(
        webhooks_store::transport::HttpTransport::new(webhook_policy, settings.webhook_timeout)
            .map_err(|e| StartupError::Webhooks(e.to_string()))?,
    );
    let search_indexes = crate::search_index::SearchIndexes::new(
        tenancy_store::SeaOrmMemberDirectory::new(db.clone()),
        bus.clone(),
        crate::search_index::DEFAULT_BUDGET_BYTES,
    );
    let events =
        crate::event_hub::EventHub::new(bus.clone(), audit_store::SeaOrmAuditLog::new(db.clone()));
    db.set_after_commit(Arc::new(crate::dispatch::Dispatcher::new(
        bus.clone(),
        events.clone(),
        authz.clone(),
        directory_cache.clone(),
        search_indexes.clone(),
        account_views.clone(),
        auth.clone(),
        orgs.clone(),
        mail_wake.clone(),
        webhook_wake.clone(),
    )));
    Ok(web::Data::new(AppState {
        accounts: AccountService::new(SeaOrmUserRepository::new(db.clone()), hasher),
        orgs,
        privacy: tenancy_store::SeaOrmPrivacy::new(db.clone()),
        // Inbox changes reach the streams' unread counts through the event hub.
        notifications: notifications_store::SeaOrmNotifications::new(db.clone())
            .with_observer(Arc::new(events.clone())),
        account_tokens: tenancy_store::SeaOrmAccountTokens::new(db.clone(), notices.clone()),
        confirmations,
        directory: tenancy_store::SeaOrmMemberDirectory::new(db.clone()),
        directory_cache,
        account_views,
        search_indexes,
        jobs: jobs::JobQueue::new(db.clone()).with_notices(notices.clone()),
        job_wake: Arc::new(tokio::sync::Notify::new()),
        warming: Arc::default(),
        open_streams: crate::http::metrics::OpenStreams::default(),
        job_retention: settings.job_retention,
        invitation_ttl_days: settings.invitation_ttl_days,
        platform_admin_second_factor: settings.platform_admin_second_factor,
        tmp_dir,
        audit_archive_dir: settings.data_dir.join("audit-archive"),
        mail_urls: settings.mail.public_urls.clone(),
        mail_wake,
        webhooks: webhooks_store::SeaOrmWebhooks::new(db.clone(), Arc::new(webhook_seal)),
        webhook_policy,
        webhook_transport,
        webhook_wake,
        mail_files: settings
            .mail
            .smtp
            .is_none()
            .then(|| settings.data_dir.join("outbox")),
        audit_log: audit_store::SeaOrmAuditLog::new(db.clone()),
        events,
        stream_heartbeat: settings.stream_heartbeat,
        authz,
        districts: districts_store::SeaOrmDistrictRepository::new(db.clone()),
        idempotency: Arc::new(idempotency_store::SqlIdempotencyStore::new(db.clone())),
        auth,
        db,
        redis,
        bus,

        audit_signer,
        audit_digests,
        bootstrap_token: settings.bootstrap_token.clone(),
        openapi_json,
        docs_html,
        rate_limits: Arc::new(rate_limits),
        security,
    }))
}

/// The actix app: middleware, every registered route, and the envelope 404.
pub fn app(
    state: web::Data<AppState>,
    api: Api,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The edge's injected parts: the guard of the org routes, who a request counts
    // against for rate limiting, the limiter and the security policy.
    let guard = RouteGuard::new(|requirement, req| match requirement {
        Requirement::DistrictAuthority => Box::pin(crate::routes::district_authority(req)),
        _ => Box::pin(crate::authz::check(requirement, req)),
    });
    let identity = CallerIdentity::new(|req| Box::pin(crate::authz::rate_identity(req)));
    App::new()
        .app_data(web::Data::new(guard))
        .app_data(web::Data::new(identity))
        .app_data(web::Data::from(state.rate_limits.clone()))
        .app_data(web::Data::from(state.auth.clone()))
        .app_data(web::Data::from(state.authz.clone()))
        .app_data(web::Data::from(state.idempotency.clone()))
        .app_data(web::Data::new(state.security.clone()))
        .app_data(state)
        .configure(move |cfg| api.configure(cfg))
        .default_service(web::to(route_not_found))
        .wrap(middleware::Compress::default())
        .wrap(middleware::from_fn(crate::http::security::middleware))
        .wrap(middleware::from_fn(request_context::middleware))
}

async fn route_not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

/// Anchors the audit chains: every `interval`, signs all chain heads into the digest
/// file (CloudTrail-style), so a chain rewritten later fails verification.
fn spawn_digest_writer(state: web::Data<AppState>, interval: Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = time::OffsetDateTime::now_utc();
            if let Err(e) =
                audit_store::write_digest(&state.db, &state.audit_digests, &state.audit_signer, now)
                    .await
            {
                tracing::warn!(error = %e, "writing the audit digest failed; retrying next interval");
            }
        }
    });
}

/// Ends officer terms that are over (the member falls back to volunteer, audited),
/// once a minute. Idempotent, so several instances may run it.
fn spawn_term_ender(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match state
                .end_expired_terms(time::OffsetDateTime::now_utc())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(ended = n, "officer terms ended"),
                Err(e) => {
                    tracing::warn!(error = %e, "ending officer terms failed; retrying next minute")
                }
            }
        }
    });
}

/// Every minute: runs the personal data exports a crash left queued (an export runs
/// right after its request otherwise) and removes expired export files.
fn spawn_personal_exports(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match tenancy_store::personal_data::run_due(
                &state.db,
                &state.audit_archive_dir,
                time::Duration::minutes(1),
            )
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(ran = n, "personal data exports left queued were run"),
                Err(e) => {
                    tracing::warn!(error = %e, "running queued personal data exports failed; retrying next minute")
                }
            }
        }
    });
}

/// Every hour: erases what orgs still hold about members removed longer ago than the
/// org's retention period (`member.erase` by the system; several instances may run it:
/// an erasure found done meanwhile is skipped).
fn spawn_member_retention(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = time::OffsetDateTime::now_utc();
            match tenancy_store::erasure::apply_retention(
                &state.db,
                now,
                &crate::routes::JobsAndMail,
                500,
            )
            .await
            {
                Ok(done) if done.is_empty() => {}
                Ok(done) => tracing::info!(
                    erased = done.len(),
                    "retention: removed members' records erased"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "retention: erasing removed members' records failed; retrying next hour")
                }
            }
        }
    });
}

/// Every hour (and at start): the daily digest of notifications — one e-mail per user
/// per UTC day with the items waiting for it (the first run of a day sends them; later
/// runs that day send nothing more, on any instance: `notification_digests` is keyed
/// by user and day).
fn spawn_notification_digest(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let day = notifications_store::utc_day(time::OffsetDateTime::now_utc());
            match state.notifications.run_daily_digest(day).await {
                Ok(r) if r.emails == 0 => {}
                Ok(r) => {
                    tracing::info!(
                        emails = r.emails,
                        items = r.items,
                        "notification digests queued"
                    );
                    state.mail_wake.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification digest failed; retrying next hour")
                }
            }
        }
    });
}

/// Every hour: removes the idempotency keys older than their 24 hours (expired keys
/// are ignored before that; several instances may run it).
fn spawn_idempotency_sweeper(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let cutoff = time::OffsetDateTime::now_utc() - idempotency_store::RETENTION;
            match state.idempotency.purge(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "expired idempotency keys removed"),
                Err(e) => {
                    tracing::warn!(error = %e, "removing expired idempotency keys failed; retrying next hour")
                }
            }
        }
    });
}

/// Starts this instance's job worker: it runs jobs created here at once (woken) and
/// picks up any runnable job, including ones a crashed instance left, every few seconds.
fn spawn_job_worker(state: &web::Data<AppState>) {
    let worker = job_worker(state, jobs::WorkerSettings::new(state.tmp_dir.clone()));
    worker.spawn(state.job_wake.clone(), Duration::from_secs(5));
}

/// How often the webhook worker looks for events committed by other instances and for
/// retries that came due (changes committed here wake it at once via `webhook_wake`).
const WEBHOOK_POLL: Duration = Duration::from_secs(2);

/// This instance's webhook worker (several instances share the deliveries); tests drive
/// one with `run_once` / `drain`.
#[must_use]
pub fn webhook_worker(
    state: &web::Data<AppState>,
    settings: webhooks_store::worker::WorkerSettings,
) -> webhooks_store::worker::WebhookWorker<audit_store::SeaOrmAuditLog> {
    webhooks_store::worker::WebhookWorker::new(
        state.webhooks.clone(),
        audit_store::SeaOrmAuditLog::new(state.db.clone()),
        state.webhook_transport.clone(),
        settings,
    )
}

/// Starts this instance's webhook worker (several instances share the deliveries) and,
/// every 10 minutes, the purge of deliveries finished more than [`WEBHOOK_RETENTION`]
/// ago.
fn spawn_webhook_worker(state: &web::Data<AppState>) {
    webhook_worker(state, webhooks_store::worker::WorkerSettings::default())
        .spawn(state.webhook_wake.clone(), WEBHOOK_POLL);
    let store = state.webhooks.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let before = time::OffsetDateTime::now_utc() - WEBHOOK_RETENTION;
            loop {
                match store.purge_finished(before).await {
                    Ok(0) => break,
                    Ok(n) => tracing::info!(purged = n, "webhooks: finished deliveries purged"),
                    Err(e) => {
                        tracing::warn!(error = %e, "webhooks: purging finished deliveries failed");
                        break;
                    }
                }
            }
        }
    });
}

/// How long delivered and failed webhook deliveries (and their attempts) are kept.
const WEBHOOK_RETENTION: time::Duration = time::Duration::days(30);

/// Webhook secrets sealed at rest (XChaCha20-Poly1305 under a key derived from the
/// signing key for this purpose; the endpoint id as associated data).
struct WebhookSeal(credentials::TotpKey);

impl webhooks_store::SecretSeal for WebhookSeal {
    fn seal(&self, owner: &[u8], secret: &[u8]) -> Result<String, webhooks_store::BoxError> {
        self.0.seal(owner, secret).map_err(Into::into)
    }

    fn open(&self, owner: &[u8], sealed: &str) -> Result<Vec<u8>, webhooks_store::BoxError> {
        self.0.open(owner, sealed).map_err(Into::into)
    }
}

/// How often the mail worker looks for messages committed by other instances and for
/// retries that came due (messages committed here wake it at once via `mail_wake`).
const MAIL_POLL: Duration = Duration::from_secs(2);

/// The transport of `settings`: SMTP when `SMTP_URL` is set, else `.eml` files under
/// `DATA_DIR/outbox/` (the embedded default: the links are logged).
pub fn mail_transport(settings: &Settings) -> Result<Arc<dyn mail::Transport>, StartupError> {
    match &settings.mail.smtp {
        Some(smtp) => {
            tracing::info!(host = %smtp.host, port = smtp.port, security = ?smtp.security, "mail: delivering through SMTP");
            let transport =
                mail::SmtpTransport::new(smtp).map_err(|e| StartupError::Mail(e.to_string()))?;
            Ok(Arc::new(transport))
        }
        None => {
            let dir = settings.data_dir.join("outbox");
            tracing::info!(dir = %dir.display(), "mail: no SMTP_URL; messages are written as .eml files and their links logged");
            Ok(Arc::new(mail::FileTransport::new(dir)))
        }
    }
}

/// Starts this instance's mail worker (several instances share the outbox) and, every
/// 10 minutes, the purge of messages finished more than [`MAIL_RETENTION`] ago.
fn spawn_mail_worker(state: &web::Data<AppState>, settings: &Settings) -> Result<(), StartupError> {
    let worker = mail::MailWorker::new(
        state.db.clone(),
        mail_transport(settings)?,
        mail::WorkerSettings::new(settings.mail.from.clone()),
    );
    worker.spawn(state.mail_wake.clone(), MAIL_POLL);
    let db = state.db.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let before = time::OffsetDateTime::now_utc() - MAIL_RETENTION;
            match mail::Outbox::purge_finished(&db, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "mail: finished messages purged"),
                Err(e) => tracing::warn!(error = %e, "mail: purging finished messages failed"),
            }
        }
    });
    Ok(())
}

/// How long sent and failed messages stay in the outbox (for support: was it sent,
/// when, after how many attempts); their variables are cleared at once.
const MAIL_RETENTION: time::Duration = time::Duration::days(30);

/// How long a staged upload or export file may sit in `DATA_DIR/tmp` before it is taken
/// for the leftover of a process that died.
const STALE_STAGED_FILE: Duration = Duration::from_secs(24 * 3600);

/// Every 10 minutes (and at start): removes ended jobs past their retention with their
/// error reports and files, and staged files a dead process left. Idempotent, so several
/// instances may run it.
fn spawn_job_sweeper(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let cutoff = time::OffsetDateTime::now_utc()
                - time::Duration::try_from(state.job_retention).unwrap_or(time::Duration::WEEK);
            match state.jobs.sweep(cutoff, 100).await {
                Ok(r) if r.jobs > 0 => tracing::info!(jobs = r.jobs, "ended jobs removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "removing ended jobs failed; retrying later"),
            }
            let dir = state.tmp_dir.clone();
            let swept = tokio::task::spawn_blocking(move || {
                jobs::cleanup::remove_stale_files(
                    &dir,
                    STALE_STAGED_FILE,
                    std::time::SystemTime::now(),
                )
            })
            .await;
            match swept {
                Ok(Ok(n)) if n > 0 => tracing::info!(files = n, "stale staged files removed"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "listing the staging directory failed"),
                Err(e) => tracing::warn!(error = %e, "the staged-file sweep panicked"),
            }
        }
    });
}

/// A job worker over the app's queue (the caches learn of its steps' changes from the
/// after-commit dispatcher, like every other write).
pub fn job_worker(state: &web::Data<AppState>, settings: jobs::WorkerSettings) -> jobs::Worker {
    jobs::Worker::new(state.jobs.clone(), state.directory.clone(), settings)
}

/// A running server bound to a port.
pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
}

impl Application {
    /// Opens the adapters, binds the listener (port 0 picks a free port) and prepares
    /// the server; [`Application::run_until_stopped`] serves.
    pub async fn build(settings: Settings, cost: HashingCost) -> Result<Self, StartupError> {
        let api = crate::routes::api();
        let state = build_state(&settings, &api, cost).await?;
        let listener =
            TcpListener::bind(settings.bind_addr).map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.to_string(),
                source,
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        spawn_digest_writer(state.clone(), settings.audit_digest_interval);
        spawn_term_ender(state.clone());
        spawn_personal_exports(state.clone());
        spawn_member_retention(state.clone());
        spawn_notification_digest(state.clone());
        spawn_idempotency_sweeper(state.clone());
        spawn_job_worker(&state);
        spawn_job_sweeper(state.clone());
        spawn_mail_worker(&state, &settings)?;
        spawn_webhook_worker(&state);
        crate::cache_warming::spawn(
            state.db.clone(),
            state.authz.clone(),
            state.warming.clone(),
            settings.cache_warm_max_orgs,
        );
        let factory_state = state.clone();
        // TCP_NODELAY on every accepted connection: with Nagle's algorithm on, a response
        // written in several segments (a compressed, chunked body over ~1 KB) waits for the
        // client's delayed ACK, ~40 ms (docs/decisions.md, "TCP_NODELAY at the edge").
        let mut server = HttpServer::new(move || app(factory_state.clone(), api.clone()))
            .tcp_nodelay(true)
            .shutdown_timeout(settings.shutdown_timeout.as_secs());
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.to_string(),
                source,
            })?
            .run();
        Ok(Self {
            server,
            port,
            state,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully.
    #[must_use]
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight requests finish), then closes
    /// the database pools and the Redis connection.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        tracing::info!("server stopped; closing connections");
        if let Some(redis) = &self.state.redis {
            redis.shutdown().await;
        }
        if let Err(e) = self.state.db.close().await {
            tracing::warn!(error = %e, "closing the database pools");
        }
        result
    }
}
