//! Configuration: defaults, then an optional TOML file (`CONFIG_FILE`), then
//! environment variables. Validated once at start-up; every bad value is reported on
//! its own line, all at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rate_limit::{BackoffPolicy, IpNet, Policy, Quota, RateClass, Tier};

/// A secret string (a URL with a password, a key): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret value, for the one place that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable, coloured (for a terminal).
    Pretty,
}

/// The validated settings of one server process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (`BIND_ADDR`, default `127.0.0.1:8080`).
    pub bind_addr: SocketAddr,
    /// Data directory for the SQLite file and the generated signing key (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// Primary database URL (`DATABASE_URL`); `None` = SQLite in `data_dir`.
    pub database_url: Option<Secret>,
    /// Read-replica URL (`DATABASE_READ_URL`).
    pub database_read_url: Option<Secret>,
    /// Pool size per database pool (`DATABASE_MAX_CONNECTIONS`, default 16 on
    /// PostgreSQL, 6 on SQLite).
    pub database_max_connections: u32,
    /// How long a request waits for a pooled connection before answering 503
    /// (`DATABASE_ACQUIRE_TIMEOUT_MS`, default 5000).
    pub database_acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the write lock before answering 503
    /// (`DATABASE_BUSY_TIMEOUT_MS`, default 5000).
    pub database_busy_timeout: Duration,
    /// Replica lag above which lag-tolerant reads go to the primary (back to the replica
    /// at half of it) (`DATABASE_REPLICA_MAX_LAG_MS`, default 5000).
    pub database_replica_max_lag: Duration,
    /// At most this many orgs (those whose members signed in during the last day) have
    /// their permission tables loaded in the background at start (`CACHE_WARM_MAX_ORGS`,
    /// default 1000; 0 = no warming).
    pub cache_warm_max_orgs: u32,
    /// Byte budgets of the in-process caches (`CACHE_PERMISSION_ORGS_MB`,
    /// `CACHE_PERMISSION_MEMBERS_MB`, `CACHE_DIRECTORY_MB`, `CACHE_TOKENS_MB`).
    pub cache_budgets: CacheBudgets,
    /// Redis URL for the shared cache (`REDIS_URL`); `None` = in-process cache only.
    pub redis_url: Option<Secret>,
    /// Log format (`LOG_FORMAT`: `json` | `pretty`; default pretty on a terminal).
    pub log_format: LogFormat,
    /// Log filter (`LOG_LEVEL`, an env-filter directive; default `info`).
    pub log_level: String,
    /// OTLP/gRPC endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otel_endpoint: Option<String>,
    /// Token signing key, PEM (`SIGNING_KEY`); `None` = generated under `data_dir`.
    pub signing_key: Option<Secret>,
    /// One-time token that lets the first signed-in user become platform admin
    /// (`BOOTSTRAP_TOKEN`, at least 32 characters); useless once an admin exists.
    pub bootstrap_token: Option<Secret>,
    /// How often the audit chain heads are signed into a digest
    /// (`AUDIT_DIGEST_INTERVAL_SECS`, default 300).
    pub audit_digest_interval: Duration,
    /// How long an ended background job (its error report, its export file) is kept
    /// (`JOB_RETENTION_DAYS`, default 7).
    pub job_retention: Duration,
    /// How long an idle event stream waits before a heartbeat comment
    /// (`STREAM_HEARTBEAT_MS`, default 15000).
    pub stream_heartbeat: Duration,
    /// How many days an invitation (adding someone to an org) stays open
    /// (`INVITATION_TTL_DAYS`, default 14).
    pub invitation_ttl_days: u16,
    /// Whether webhook endpoints may be loopback receivers (`127.0.0.0/8`, `::1`,
    /// `localhost`, also over plain `http`) (`WEBHOOK_ALLOW_LOOPBACK`, default false:
    /// production refuses every address that is not public). For tests and development.
    pub webhook_allow_loopback: bool,
    /// How long one webhook attempt may take (`WEBHOOK_TIMEOUT_MS`, default 10000).
    pub webhook_timeout: Duration,
    /// Whether platform admins act as such only from sessions opened with a second
    /// factor (`PLATFORM_ADMIN_REQUIRE_2FA`, default false).
    pub platform_admin_second_factor: bool,
    /// Seconds to let in-flight requests finish on SIGTERM (`SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
    /// HTTP worker threads (`WORKERS`; default: number of CPUs).
    pub workers: Option<usize>,
    /// Rate limits (`RATE_LIMIT_*`, `SIGN_IN_*`, `TRUSTED_PROXIES`).
    pub rate_limit: RateLimitSettings,
    /// Response hardening: HSTS and the CORS allow-list.
    pub http: HttpSettings,
    /// Requests slower than this log one warning naming their slowest spans
    /// (`SLOW_REQUEST_MS`, default 500; `0` logs every request).
    pub slow_request: Duration,
    /// E-mail delivery (`SMTP_URL`, `MAIL_FROM`, `PUBLIC_BASE_URL`).
    pub mail: MailSettings,
}

/// E-mail delivery settings.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The SMTP server (`SMTP_URL`: `smtp://[user:password@]host[:port]` — STARTTLS
    /// when offered, required with credentials — or `smtps://…` for implicit TLS);
    /// `None` = messages are written as `.eml` files under `DATA_DIR/outbox/` and their
    /// links logged (the embedded default). Its `Debug` hides the password.
    pub smtp: Option<mail::SmtpConfig>,
    /// The sender (`MAIL_FROM`, default `PTO Connect <no-reply@localhost>`).
    pub from: mail::Sender,
    /// The base of every link in a message (`PUBLIC_BASE_URL`, default
    /// `http://localhost:<port of BIND_ADDR>`).
    pub public_urls: mail::PublicUrls,
}

/// Response hardening settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpSettings {
    /// Always send `Strict-Transport-Security` (`HSTS`, default `false`: only when a
    /// trusted proxy says the client connection was HTTPS).
    pub hsts: bool,
    /// Origins allowed to call the API from a browser (`CORS_ALLOWED_ORIGINS`,
    /// comma-separated `scheme://host[:port]`; default none: no cross-origin access).
    pub cors_allowed_origins: Vec<String>,
    /// Who may read `GET /metrics` (`METRICS_TOKEN`, `METRICS_PUBLIC`).
    pub metrics: MetricsAccess,
}

/// Who may read `GET /metrics`: it names routes, caches, job counts and rate-limit
/// refusals, so it is off unless asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MetricsAccess {
    /// Not served (404): the default.
    #[default]
    Off,
    /// Served to `Authorization: Bearer <token>` (`METRICS_TOKEN`, at least 32
    /// characters); anything else is 401.
    Token(Secret),
    /// Served to anyone who reaches the listener (`METRICS_PUBLIC=true`): for a server
    /// whose `BIND_ADDR` only the scraper's network reaches.
    Public,
}

/// How requests are rate-limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Whether requests are limited at all (`RATE_LIMIT_ENABLED`, default `true`).
    pub enabled: bool,
    /// Quotas per tier (`RATE_LIMIT_ADMIN`, …, `RATE_LIMIT_ANONYMOUS`) and per endpoint
    /// class (`RATE_LIMIT_LIST`, …, `RATE_LIMIT_SIGN_IN`), each `<requests>/<period>`
    /// or `off`; sign-in back-off (`SIGN_IN_*`).
    pub policy: Policy,
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`, comma-
    /// separated addresses or CIDR ranges; default none: the peer address counts).
    pub trusted_proxies: Vec<IpNet>,
    /// Prefix of the limiter's Redis keys (`RATE_LIMIT_KEY_PREFIX`, default
    /// `ptoc:rl:v1:`).
    pub key_prefix: String,
    /// How long one limiter call to Redis may take before the limiter decides locally
    /// (`RATE_LIMIT_REDIS_TIMEOUT_MS`, default 75).
    pub redis_timeout: Duration,
}

/// The variable holding a tier's quota.
#[must_use]
pub fn tier_key(tier: Tier) -> &'static str {
    match tier {
        Tier::Admin => "RATE_LIMIT_ADMIN",
        Tier::BoardMember => "RATE_LIMIT_BOARD_MEMBER",
        Tier::CommitteeLead => "RATE_LIMIT_COMMITTEE_LEAD",
        Tier::Volunteer => "RATE_LIMIT_VOLUNTEER",
        Tier::ApiKey => "RATE_LIMIT_API_KEY",
        Tier::Authenticated => "RATE_LIMIT_AUTHENTICATED",
        Tier::Anonymous => "RATE_LIMIT_ANONYMOUS",
    }
}

/// The variable holding an endpoint class's quota.
#[must_use]
pub fn class_key(class: RateClass) -> &'static str {
    match class {
        RateClass::List => "RATE_LIMIT_LIST",
        RateClass::Create => "RATE_LIMIT_CREATE",
        RateClass::Update => "RATE_LIMIT_UPDATE",
        RateClass::Delete => "RATE_LIMIT_DELETE",
        RateClass::Search => "RATE_LIMIT_SEARCH",
        RateClass::Export => "RATE_LIMIT_EXPORT",
        RateClass::SignIn => "RATE_LIMIT_SIGN_IN",
    }
}

/// Every problem found in the configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for line in &self.0 {
            writeln!(f, "  - {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Byte budgets of the in-process caches (docs/operations.md, "Memory budget per
/// instance").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudgets {
    /// Compiled permission tables (default 32 MiB).
    pub permission_orgs: u64,
    /// Member contexts (default 64 MiB).
    pub permission_members: u64,
    /// Directory profiles and pages (default 64 MiB).
    pub directory: u64,
    /// Verified access tokens (default 16 MiB).
    pub tokens: u64,
    /// Account views, `GET /me` (default 16 MiB).
    pub accounts: u64,
}

/// The names of every setting, as environment variables (the TOML file uses the same
/// names in lower case).
pub const KEYS: &[&str] = &[
    "BIND_ADDR",
    "DATA_DIR",
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT_MS",
    "DATABASE_BUSY_TIMEOUT_MS",
    "DATABASE_REPLICA_MAX_LAG_MS",
    "CACHE_WARM_MAX_ORGS",
    "CACHE_PERMISSION_ORGS_MB",
    "CACHE_PERMISSION_MEMBERS_MB",
    "CACHE_DIRECTORY_MB",
    "CACHE_TOKENS_MB",
    "CACHE_ACCOUNTS_MB",
    "REDIS_URL",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SIGNING_KEY",
    "BOOTSTRAP_TOKEN",
    "AUDIT_DIGEST_INTERVAL_SECS",
    "JOB_RETENTION_DAYS",
    "STREAM_HEARTBEAT_MS",
    "INVITATION_TTL_DAYS",
    "PLATFORM_ADMIN_REQUIRE_2FA",
    "WEBHOOK_ALLOW_LOOPBACK",
    "WEBHOOK_TIMEOUT_MS",
    "SHUTDOWN_TIMEOUT_SECS",
    "WORKERS",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_ADMIN",
    "RATE_LIMIT_BOARD_MEMBER",
    "RATE_LIMIT_COMMITTEE_LEAD",
    "RATE_LIMIT_VOLUNTEER",
    "RATE_LIMIT_API_KEY",
    "RATE_LIMIT_AUTHENTICATED",
    "RATE_LIMIT_ANONYMOUS",
    "RATE_LIMIT_LIST",
    "RATE_LIMIT_CREATE",
    "RATE_LIMIT_UPDATE",
    "RATE_LIMIT_DELETE",
    "RATE_LIMIT_SEARCH",
    "RATE_LIMIT_EXPORT",
    "RATE_LIMIT_SIGN_IN",
    "RATE_LIMIT_KEY_PREFIX",
    "RATE_LIMIT_REDIS_TIMEOUT_MS",
    "SIGN_IN_FREE_FAILURES_PER_ACCOUNT",
    "SIGN_IN_FREE_FAILURES_PER_IP",
    "SIGN_IN_LOCKOUT_BASE_SECS",
    "SIGN_IN_LOCKOUT_MAX_SECS",
    "SIGN_IN_FAILURE_WINDOW_SECS",
    "TRUSTED_PROXIES",
    "HSTS",
    "CORS_ALLOWED_ORIGINS",
    "METRICS_TOKEN",
    "METRICS_PUBLIC",
    "SLOW_REQUEST_MS",
    "SMTP_URL",
    "MAIL_FROM",
    "PUBLIC_BASE_URL",
];

impl Settings {
    /// Loads settings from the process environment (and `CONFIG_FILE` if set).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let is_tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Self::from_sources(&env, is_tty)
    }

    /// Loads settings from the given variables; `CONFIG_FILE` among them names an
    /// optional TOML file whose values the variables override.
    pub fn from_sources(
        env: &BTreeMap<String, String>,
        stdout_is_terminal: bool,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = env.get("CONFIG_FILE").filter(|p| !p.is_empty()) {
            match read_file(path) {
                Ok(file) => values.extend(file),
                Err(e) => errors.push(e),
            }
        }
        for key in KEYS {
            if let Some(v) = env.get(*key) {
                values.insert((*key).to_owned(), v.clone());
            }
        }
        // An empty value means "unset", as is conventional for env files.
        values.retain(|_, v| !v.trim().is_empty());
        let get = |k: &str| values.get(k).map(|v| v.trim().to_owned());

        let bind_addr = match get("BIND_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.parse().unwrap_or_else(|_| {
                errors.push(format!(
                    "BIND_ADDR: {v:?} is not a socket address (expected host:port, e.g. 127.0.0.1:8080)"
                ));
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }),
        };
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = get("DATABASE_URL").map(Secret::new);
        if let Some(url) = &database_url
            && !is_postgres(url.expose())
            && !url.expose().starts_with("sqlite:")
        {
            errors.push(
                "DATABASE_URL: must start with postgres://, postgresql:// or sqlite: (leave unset for the embedded SQLite file)"
                    .into(),
            );
        }
        let database_read_url = get("DATABASE_READ_URL").map(Secret::new);
        if let Some(url) = &database_read_url {
            if !is_postgres(url.expose()) {
                errors
                    .push("DATABASE_READ_URL: must start with postgres:// or postgresql://".into());
            } else if !database_url
                .as_ref()
                .is_some_and(|u| is_postgres(u.expose()))
            {
                errors.push(
                    "DATABASE_READ_URL: needs DATABASE_URL to point at PostgreSQL too".into(),
                );
            }
        }
        // SQLite runs in this process: each pooled connection holds its own page cache,
        // schema and prepared statements (~5 MiB measured), and it has one writer.
        let on_postgres = database_url
            .as_ref()
            .is_some_and(|u| is_postgres(u.expose()));
        let database_max_connections = parse_num(
            &mut errors,
            "DATABASE_MAX_CONNECTIONS",
            get("DATABASE_MAX_CONNECTIONS"),
            if on_postgres {
                DEFAULT_POOL_POSTGRES
            } else {
                DEFAULT_POOL_SQLITE
            },
            1..=1000,
        );
        let database_acquire_ms: u64 = parse_num(
            &mut errors,
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            get("DATABASE_ACQUIRE_TIMEOUT_MS"),
            5000,
            50..=600_000,
        );
        let database_busy_ms: u64 = parse_num(
            &mut errors,
            "DATABASE_BUSY_TIMEOUT_MS",
            get("DATABASE_BUSY_TIMEOUT_MS"),
            5000,
            0..=600_000,
        );
        let database_replica_max_lag_ms: u64 = parse_num(
            &mut errors,
            "DATABASE_REPLICA_MAX_LAG_MS",
            get("DATABASE_REPLICA_MAX_LAG_MS"),
            5000,
            10..=3_600_000,
        );
        let cache_warm_max_orgs: u32 = parse_num(
            &mut errors,
            "CACHE_WARM_MAX_ORGS",
            get("CACHE_WARM_MAX_ORGS"),
            1000,
            0..=100_000,
        );
        let mut mib = |key: &str, default: u64| -> u64 {
            parse_num(&mut errors, key, get(key), default, 1..=65_536) << 20
        };
        let cache_budgets = CacheBudgets {
            permission_orgs: mib("CACHE_PERMISSION_ORGS_MB", 32),
            permission_members: mib("CACHE_PERMISSION_MEMBERS_MB", 64),
            directory: mib("CACHE_DIRECTORY_MB", 64),
            tokens: mib("CACHE_TOKENS_MB", 16),
            accounts: mib("CACHE_ACCOUNTS_MB", 16),
        };
        let redis_url = get("REDIS_URL").map(Secret::new);
        if let Some(url) = &redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            errors.push("REDIS_URL: must start with redis:// or rediss://".into());
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None if stdout_is_terminal => LogFormat::Pretty,
            None => LogFormat::Json,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                errors.push(format!("LOG_FORMAT: {other:?} is not one of json, pretty"));
                LogFormat::Json
            }
        };
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            errors.push(format!(
                "LOG_LEVEL: {log_level:?} is not a valid filter (e.g. info, or info,pto_server=debug)"
            ));
        }
        let otel_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT");
        if let Some(e) = &otel_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            errors.push(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT: {e:?} must be an http:// or https:// URL"
            ));
        }
        let signing_key = get("SIGNING_KEY").map(Secret::new);
        if let Some(k) = &signing_key
            && credentials::SigningKey::from_pem(k.expose()).is_err()
        {
            errors.push("SIGNING_KEY: not a valid Ed25519 private key in PEM form".into());
        }
        let bootstrap_token = get("BOOTSTRAP_TOKEN").map(Secret::new);
        if bootstrap_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 32)
        {
            errors.push(
                "BOOTSTRAP_TOKEN: must be at least 32 characters (use a random string)".into(),
            );
        }
        let digest_secs: u64 = parse_num(
            &mut errors,
            "AUDIT_DIGEST_INTERVAL_SECS",
            get("AUDIT_DIGEST_INTERVAL_SECS"),
            300,
            10..=86_400,
        );
        let job_retention_days: u64 = parse_num(
            &mut errors,
            "JOB_RETENTION_DAYS",
            get("JOB_RETENTION_DAYS"),
            7,
            1..=3650,
        );
        let stream_heartbeat_ms: u64 = parse_num(
            &mut errors,
            "STREAM_HEARTBEAT_MS",
            get("STREAM_HEARTBEAT_MS"),
            15_000,
            50..=15_000,
        );
        let invitation_ttl_days: u16 = parse_num(
            &mut errors,
            "INVITATION_TTL_DAYS",
            get("INVITATION_TTL_DAYS"),
            14,
            1..=365,
        );
        let platform_admin_second_factor = parse_bool(
            &mut errors,
            "PLATFORM_ADMIN_REQUIRE_2FA",
            get("PLATFORM_ADMIN_REQUIRE_2FA"),
            false,
        );
        let webhook_allow_loopback = parse_bool(
            &mut errors,
            "WEBHOOK_ALLOW_LOOPBACK",
            get("WEBHOOK_ALLOW_LOOPBACK"),
            false,
        );
        let webhook_timeout_ms: u64 = parse_num(
            &mut errors,
            "WEBHOOK_TIMEOUT_MS",
            get("WEBHOOK_TIMEOUT_MS"),
            10_000,
            100..=60_000,
        );
        let shutdown_secs: u64 = parse_num(
            &mut errors,
            "SHUTDOWN_TIMEOUT_SECS",
            get("SHUTDOWN_TIMEOUT_SECS"),
            30,
            0..=3600,
        );
        let workers =
            get("WORKERS").map(|v| parse_num(&mut errors, "WORKERS", Some(v), 1, 1..=512));
        let rate_limit = rate_limit_settings(&mut errors, &get);
        let hsts = parse_bool(&mut errors, "HSTS", get("HSTS"), false);
        let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
            .map(|raw| parse_origins(&mut errors, &raw))
            .unwrap_or_default();
        let metrics_public =
            parse_bool(&mut errors, "METRICS_PUBLIC", get("METRICS_PUBLIC"), false);
        let metrics = match (get("METRICS_TOKEN").map(Secret::new), metrics_public) {
            (Some(_), true) => {
                errors.push(
                    "METRICS_TOKEN: set either METRICS_TOKEN or METRICS_PUBLIC=true, not both"
                        .into(),
                );
                MetricsAccess::Off
            }
            (Some(t), false) if t.expose().len() < 32 => {
                errors.push(
                    "METRICS_TOKEN: must be at least 32 characters (use a random string)".into(),
                );
                MetricsAccess::Off
            }
            (Some(t), false) => MetricsAccess::Token(t),
            (None, true) => MetricsAccess::Public,
            (None, false) => MetricsAccess::Off,
        };
        let slow_ms: u64 = parse_num(
            &mut errors,
            "SLOW_REQUEST_MS",
            get("SLOW_REQUEST_MS"),
            500,
            0..=3_600_000,
        );

        let mail = mail_settings(&mut errors, &get, bind_addr.port());

        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let Some(mail) = mail else {
            return Err(ConfigError(vec![
                "MAIL_FROM/PUBLIC_BASE_URL: the built-in defaults do not parse".into(),
            ]));
        };
        Ok(Self {
            bind_addr,
            data_dir,
            database_url,
            database_read_url,
            database_max_connections,
            database_acquire_timeout: Duration::from_millis(database_acquire_ms),
            database_busy_timeout: Duration::from_millis(database_busy_ms),
            database_replica_max_lag: Duration::from_millis(database_replica_max_lag_ms),
            cache_warm_max_orgs,
            cache_budgets,
            redis_url,
            log_format,
            log_level,
            otel_endpoint,
            signing_key,
            bootstrap_token,
            audit_digest_interval: Duration::from_secs(digest_secs),
            job_retention: Duration::from_secs(job_retention_days * 86_400),
            stream_heartbeat: Duration::from_millis(stream_heartbeat_ms),
            invitation_ttl_days,
            platform_admin_second_factor,
            webhook_allow_loopback,
            webhook_timeout: Duration::from_millis(webhook_timeout_ms),
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            workers,
            rate_limit,
            http: HttpSettings {
                hsts,
                cors_allowed_origins,
                metrics,
            },
            slow_request: Duration::from_millis(slow_ms),
            mail,
        })
    }
}

/// The default sender.
/// The default pool size on PostgreSQL.
pub const DEFAULT_POOL_POSTGRES: u32 = 16;
/// The default pool size on SQLite (docs/decisions.md, "SQLite's memory: a smaller pool
/// and page cache").
pub const DEFAULT_POOL_SQLITE: u32 = 6;

const DEFAULT_MAIL_FROM: &str = "PTO Connect <no-reply@localhost>";

/// Parses the e-mail settings (one line per bad value; never the SMTP password).
fn mail_settings(
    errors: &mut Vec<String>,
    get: &impl Fn(&str) -> Option<String>,
    port: u16,
) -> Option<MailSettings> {
    let smtp = get("SMTP_URL").and_then(|url| match mail::SmtpConfig::parse(&url) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(format!("SMTP_URL: {e}"));
            None
        }
    });
    let from = get("MAIL_FROM")
        .and_then(|v| match mail::Sender::parse(&v) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(format!("MAIL_FROM: {e}"));
                None
            }
        })
        .or_else(|| mail::Sender::parse(DEFAULT_MAIL_FROM).ok());
    let public_urls = get("PUBLIC_BASE_URL")
        .and_then(|v| match mail::PublicUrls::new(&v) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.push(format!("PUBLIC_BASE_URL: {e}"));
                None
            }
        })
        .or_else(|| mail::PublicUrls::new(&format!("http://localhost:{port}")).ok());
    // Both are `None` only after an error line (the built-in defaults parse: tested).
    Some(MailSettings {
        smtp,
        from: from?,
        public_urls: public_urls?,
    })
}

/// Parses the CORS allow-list: exact origins only (`*` is refused: with bearer
/// credentials a wildcard would let any site act as the signed-in user's browser).
fn parse_origins(errors: &mut Vec<String>, raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    for origin in raw
        .split(',')
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
    {
        let plain = origin
            .split_once("://")
            .filter(|(scheme, host)| {
                matches!(*scheme, "http" | "https")
                    && !host.is_empty()
                    && !host.contains(['/', '*', ' ', '?', '#'])
            })
            .is_some();
        if plain {
            out.push(origin.to_ascii_lowercase());
        } else {
            errors.push(format!(
                "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin (expected scheme://host[:port], no wildcards or paths)"
            ));
        }
    }
    out
}

fn parse_bool(errors: &mut Vec<String>, key: &str, raw: Option<String>, default: bool) -> bool {
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some("true" | "1" | "yes" | "on") => true,
        Some("false" | "0" | "no" | "off") => false,
        Some(other) => {
            errors.push(format!("{key}: {other:?} is not one of true, false"));
            default
        }
    }
}

fn rate_limit_settings(
    errors: &mut Vec<String>,
    get: &dyn Fn(&str) -> Option<String>,
) -> RateLimitSettings {
    let mut policy = Policy::default();
    let mut quota = |key: &str, default: Option<Quota>| match get(key) {
        None => default,
        Some(raw) => Quota::parse(&raw).unwrap_or_else(|e| {
            errors.push(format!("{key}: {e}"));
            default
        }),
    };
    for tier in Tier::ALL {
        let default = policy.tiers.get(&tier).copied().flatten();
        policy.tiers.insert(tier, quota(tier_key(tier), default));
    }
    for class in RateClass::ALL {
        let default = policy.classes.get(&class).copied().flatten();
        policy
            .classes
            .insert(class, quota(class_key(class), default));
    }
    let free_account = parse_num(
        errors,
        "SIGN_IN_FREE_FAILURES_PER_ACCOUNT",
        get("SIGN_IN_FREE_FAILURES_PER_ACCOUNT"),
        policy.sign_in_account.free_failures,
        1..=1000,
    );
    let free_ip = parse_num(
        errors,
        "SIGN_IN_FREE_FAILURES_PER_IP",
        get("SIGN_IN_FREE_FAILURES_PER_IP"),
        policy.sign_in_ip.free_failures,
        1..=100_000,
    );
    let base: u64 = parse_num(
        errors,
        "SIGN_IN_LOCKOUT_BASE_SECS",
        get("SIGN_IN_LOCKOUT_BASE_SECS"),
        policy.sign_in_account.base.as_secs(),
        1..=3600,
    );
    let max: u64 = parse_num(
        errors,
        "SIGN_IN_LOCKOUT_MAX_SECS",
        get("SIGN_IN_LOCKOUT_MAX_SECS"),
        policy.sign_in_account.max.as_secs(),
        1..=86_400,
    );
    if max < base {
        errors.push(format!(
            "SIGN_IN_LOCKOUT_MAX_SECS: {max} is shorter than SIGN_IN_LOCKOUT_BASE_SECS ({base})"
        ));
    }
    let window: u64 = parse_num(
        errors,
        "SIGN_IN_FAILURE_WINDOW_SECS",
        get("SIGN_IN_FAILURE_WINDOW_SECS"),
        policy.sign_in_account.window.as_secs(),
        60..=86_400,
    );
    let backoff = |free_failures| BackoffPolicy {
        free_failures,
        base: Duration::from_secs(base),
        max: Duration::from_secs(max.max(base)),
        window: Duration::from_secs(window),
    };
    policy.sign_in_account = backoff(free_account);
    policy.sign_in_ip = backoff(free_ip);
    let mut trusted_proxies = Vec::new();
    for entry in get("TRUSTED_PROXIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match IpNet::parse(entry) {
            Ok(net) => trusted_proxies.push(net),
            Err(e) => errors.push(format!("TRUSTED_PROXIES: {e}")),
        }
    }
    RateLimitSettings {
        enabled: parse_bool(
            errors,
            "RATE_LIMIT_ENABLED",
            get("RATE_LIMIT_ENABLED"),
            true,
        ),
        policy,
        trusted_proxies,
        key_prefix: get("RATE_LIMIT_KEY_PREFIX").unwrap_or_else(|| "ptoc:rl:v1:".to_owned()),
        redis_timeout: Duration::from_millis(parse_num(
            errors,
            "RATE_LIMIT_REDIS_TIMEOUT_MS",
            get("RATE_LIMIT_REDIS_TIMEOUT_MS"),
            75,
            5..=10_000,
        )),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn parse_num<T>(
    errors: &mut Vec<String>,
    key: &str,
    raw: Option<String>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> T
where
    T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
{
    let Some(raw) = raw else { return default };
    match raw.parse::<T>() {
        Ok(v) if range.contains(&v) => v,
        _ => {
            errors.push(format!(
                "{key}: {raw:?} is not a whole number from {} to {}",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

fn read_file(path: &str) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("CONFIG_FILE: cannot read {path:?}: {e}"))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("CONFIG_FILE: {path:?} is not valid TOML: {e}"))?;
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for (k, v) in table {
        let upper = k.to_ascii_uppercase();
        if !KEYS.contains(&upper.as_str()) {
            unknown.push(k);
            continue;
        }
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "CONFIG_FILE: {k} must be a string or number, not a {}",
                    other.type_str()
                ));
            }
        };
        out.insert(upper, s);
    }
    if !unknown.is_empty() {
        return Err(format!(
            "CONFIG_FILE: unknown setting(s) {} (known: {})",
            unknown.join(", "),
            KEYS.iter()
                .map(|k| k.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_default_pool_size_follows_the_backend() {
        let pool = |pairs: &[(&str, &str)]| {
            Settings::from_sources(&env(pairs), false)
                .expect("valid")
                .database_max_connections
        };
        assert_eq!(
            pool(&[("DATABASE_URL", "postgres://db.example/pto")]),
            DEFAULT_POOL_POSTGRES
        );
        assert_eq!(
            pool(&[("DATABASE_URL", "sqlite:///var/lib/pto/pto.sqlite3")]),
            DEFAULT_POOL_SQLITE
        );
        assert_eq!(
            pool(&[
                ("DATABASE_URL", "sqlite:///var/lib/pto/pto.sqlite3"),
                ("DATABASE_MAX_CONNECTIONS", "12")
            ]),
            12
        );
    }

    #[test]
    fn defaults_need_no_configuration() {
        let s = Settings::from_sources(&env(&[]), false).expect("defaults are valid");
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(s.database_url.is_none() && s.redis_url.is_none());
        assert_eq!(s.database_max_connections, DEFAULT_POOL_SQLITE);
        assert_eq!(s.log_format, LogFormat::Json);
        let on_tty = Settings::from_sources(&env(&[]), true).expect("defaults are valid");
        assert_eq!(on_tty.log_format, LogFormat::Pretty);
    }

    #[test]
    fn mail_settings_default_to_files_and_localhost() {
        let s = Settings::from_sources(&env(&[("BIND_ADDR", "127.0.0.1:9000")]), false)
            .expect("defaults are valid");
        assert!(s.mail.smtp.is_none());
        assert_eq!(s.mail.public_urls.base(), "http://localhost:9000");
        assert_eq!(s.mail.from.domain(), "localhost");
        let s = Settings::from_sources(
            &env(&[
                ("SMTP_URL", "smtps://mailer:s3cret@smtp.example.org"),
                ("MAIL_FROM", "PTO <pto@example.org>"),
                ("PUBLIC_BASE_URL", "https://pto.example.org/"),
            ]),
            false,
        )
        .expect("valid");
        let smtp = s.mail.smtp.as_ref().expect("smtp");
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.org", 465));
        assert_eq!(s.mail.public_urls.base(), "https://pto.example.org");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "the password is never printed"
        );
    }

    #[test]
    fn bad_mail_settings_are_one_line_each_without_the_password() {
        let err = Settings::from_sources(
            &env(&[
                ("SMTP_URL", "smtp://u:s3cret@mail.example.org:notaport"),
                ("MAIL_FROM", "nobody"),
                ("PUBLIC_BASE_URL", "pto.example.org"),
            ]),
            false,
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
        for key in ["SMTP_URL", "MAIL_FROM", "PUBLIC_BASE_URL"] {
            assert!(
                err.0.iter().any(|l| l.starts_with(key)),
                "no line for {key}: {err}"
            );
        }
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn database_timeouts_are_configurable_and_checked() {
        let s = Settings::from_sources(&env(&[]), false).expect("defaults are valid");
        assert_eq!(s.database_acquire_timeout, Duration::from_secs(5));
        assert_eq!(s.database_busy_timeout, Duration::from_secs(5));
        assert_eq!(s.database_replica_max_lag, Duration::from_secs(5));
        assert_eq!(s.cache_budgets.permission_members, 64 << 20);
        let s = Settings::from_sources(&env(&[("CACHE_DIRECTORY_MB", "8")]), false).expect("valid");
        assert_eq!(s.cache_budgets.directory, 8 << 20);
        assert_eq!(s.cache_budgets.accounts, 16 << 20);
        assert!(Settings::from_sources(&env(&[("CACHE_TOKENS_MB", "0")]), false).is_err());
        let s = Settings::from_sources(
            &env(&[
                ("DATABASE_ACQUIRE_TIMEOUT_MS", "250"),
                ("DATABASE_BUSY_TIMEOUT_MS", "0"),
                ("DATABASE_REPLICA_MAX_LAG_MS", "200"),
            ]),
            false,
        )
        .expect("valid");
        assert_eq!(s.database_acquire_timeout, Duration::from_millis(250));
        assert_eq!(s.database_busy_timeout, Duration::ZERO);
        assert_eq!(s.database_replica_max_lag, Duration::from_millis(200));
        let err = Settings::from_sources(
            &env(&[
                ("DATABASE_ACQUIRE_TIMEOUT_MS", "10"),
                ("DATABASE_BUSY_TIMEOUT_MS", "soon"),
                ("DATABASE_REPLICA_MAX_LAG_MS", "0"),
            ]),
            false,
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
        for key in [
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            "DATABASE_BUSY_TIMEOUT_MS",
            "DATABASE_REPLICA_MAX_LAG_MS",
        ] {
            assert!(
                err.0.iter().any(|l| l.starts_with(key)),
                "no line for {key}: {err}"
            );
        }
    }

    #[test]
    fn reports_every_bad_value_on_its_own_line() {
        let err = Settings::from_sources(
            &env(&[
                ("BIND_ADDR", "nope"),
                ("DATABASE_URL", "mysql://x"),
                ("REDIS_URL", "http://x"),
                ("LOG_FORMAT", "xml"),
                ("SHUTDOWN_TIMEOUT_SECS", "-1"),
            ]),
            false,
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 5, "{err}");
        for key in [
            "BIND_ADDR",
            "DATABASE_URL",
            "REDIS_URL",
            "LOG_FORMAT",
            "SHUTDOWN_TIMEOUT_SECS",
        ] {
            assert!(
                err.0.iter().any(|l| l.starts_with(key)),
                "no line for {key}: {err}"
            );
        }
    }

    #[test]
    fn hardening_settings_parse_and_refuse_wildcards() {
        let s = Settings::from_sources(&env(&[]), false).expect("defaults are valid");
        assert!(!s.http.hsts && s.http.cors_allowed_origins.is_empty());
        assert_eq!(s.slow_request, Duration::from_millis(500));
        let s = Settings::from_sources(
            &env(&[
                ("HSTS", "true"),
                (
                    "CORS_ALLOWED_ORIGINS",
                    "https://App.example.org/, http://localhost:5173",
                ),
                ("SLOW_REQUEST_MS", "0"),
            ]),
            false,
        )
        .expect("valid");
        assert!(s.http.hsts);
        assert_eq!(
            s.http.cors_allowed_origins,
            ["https://app.example.org", "http://localhost:5173"]
        );
        assert_eq!(s.slow_request, Duration::ZERO);
        let err = Settings::from_sources(
            &env(&[("CORS_ALLOWED_ORIGINS", "*, https://x.org/path, ftp://y")]),
            false,
        )
        .expect_err("wildcards, paths and other schemes are refused");
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn rate_limits_default_to_the_issue_and_are_configurable() {
        let s = Settings::from_sources(&env(&[]), false).expect("defaults are valid");
        let r = &s.rate_limit;
        assert!(r.enabled && r.trusted_proxies.is_empty());
        assert_eq!(r.policy, Policy::default());
        let s = Settings::from_sources(
            &env(&[
                ("RATE_LIMIT_VOLUNTEER", "3/1m"),
                ("RATE_LIMIT_EXPORT", "off"),
                ("RATE_LIMIT_ENABLED", "false"),
                ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
                ("SIGN_IN_FREE_FAILURES_PER_ACCOUNT", "2"),
            ]),
            false,
        )
        .expect("valid");
        let r = &s.rate_limit;
        assert!(!r.enabled);
        assert_eq!(
            r.policy.tiers[&Tier::Volunteer].map(|q| q.to_string()),
            Some("3/1m".into())
        );
        assert_eq!(r.policy.classes[&RateClass::Export], None);
        assert_eq!(r.trusted_proxies.len(), 2);
        assert_eq!(r.policy.sign_in_account.free_failures, 2);
        // Every tier and class has its variable among the known keys.
        for tier in Tier::ALL {
            assert!(KEYS.contains(&tier_key(tier)), "{tier:?}");
        }
        for class in RateClass::ALL {
            assert!(KEYS.contains(&class_key(class)), "{class:?}");
        }
    }

    #[test]
    fn bad_rate_limits_are_reported_one_line_each() {
        let err = Settings::from_sources(
            &env(&[
                ("RATE_LIMIT_ADMIN", "lots"),
                ("RATE_LIMIT_SEARCH", "0/1m"),
                ("RATE_LIMIT_ENABLED", "maybe"),
                ("TRUSTED_PROXIES", "10.0.0.0/40"),
                ("SIGN_IN_LOCKOUT_BASE_SECS", "60"),
                ("SIGN_IN_LOCKOUT_MAX_SECS", "10"),
            ]),
            false,
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 5, "{err}");
        for (key, says) in [
            ("RATE_LIMIT_ADMIN", "e.g. 100/1m"),
            ("RATE_LIMIT_SEARCH", "out of range"),
            ("RATE_LIMIT_ENABLED", "true, false"),
            ("TRUSTED_PROXIES", "CIDR"),
            ("SIGN_IN_LOCKOUT_MAX_SECS", "shorter than"),
        ] {
            assert!(
                err.0.iter().any(|l| l.starts_with(key) && l.contains(says)),
                "no line for {key}: {err}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::from_sources(
            &env(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]),
            false,
        )
        .expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn env_overrides_file_and_file_keys_are_checked() {
        let dir = std::env::temp_dir().join(format!("ptoc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "bind_addr = \"0.0.0.0:9000\"\nworkers = 3\n").expect("write");
        let path = file.display().to_string();
        let s = Settings::from_sources(&env(&[("CONFIG_FILE", &path)]), false).expect("valid");
        assert_eq!(s.bind_addr.to_string(), "0.0.0.0:9000");
        assert_eq!(s.workers, Some(3));
        let s = Settings::from_sources(
            &env(&[("CONFIG_FILE", &path), ("BIND_ADDR", "127.0.0.1:1")]),
            false,
        )
        .expect("valid");
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:1");
        std::fs::write(&file, "bindaddr = 1\n").expect("write");
        let err = Settings::from_sources(&env(&[("CONFIG_FILE", &path)]), false)
            .expect_err("unknown key");
        assert!(err.0[0].contains("unknown setting"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
