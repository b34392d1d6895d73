//! The `Transport` port (hand a formatted message to something that delivers it) and
//! its two adapters: SMTP through lettre ([`SmtpTransport`], rustls only) and `.eml`
//! files in a directory ([`FileTransport`], the embedded default).

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use uuid::Uuid;

/// A message ready for a transport: rendered and formatted (RFC 5322 bytes).
pub struct Outgoing {
    /// The message id (its `Message-ID` is `<id@domain of MAIL_FROM>`).
    pub id: Uuid,
    /// Sender and recipient for the SMTP envelope.
    pub envelope: Envelope,
    /// The whole message, headers and MIME parts.
    pub formatted: Vec<u8>,
    /// The links it carries (the file transport logs them; never logged otherwise).
    pub links: Vec<String>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("bytes", &self.formatted.len())
            .finish_non_exhaustive()
    }
}

/// A transport could not deliver a message.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SendError {
    /// Whether retrying cannot help (the server refused for good: a 5xx reply).
    pub permanent: bool,
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SendError {
    /// A failure that a later attempt may cure.
    pub fn transient(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            permanent: false,
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

/// Delivers formatted messages (the worker's port).
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Delivers one message; success means the receiving side took responsibility for
    /// it (an SMTP `250` after `DATA`, a file renamed into place).
    async fn send(&self, message: &Outgoing) -> Result<(), SendError>;

    /// A short name for logs (`smtp`, `file`).
    fn name(&self) -> &'static str;
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://` without credentials: STARTTLS when the server offers it, else plain.
    Opportunistic,
    /// `smtp://` with credentials (unless to a loopback host), or `?tls=required`:
    /// STARTTLS or no delivery (credentials never cross the network in clear).
    StartTls,
    /// `smtps://`: TLS from the first byte (implicit TLS, port 465 by default).
    Implicit,
}

/// A parsed `SMTP_URL`: `smtp://[user[:password]@]host[:port][?tls=required|opportunistic]`
/// (port 587 by default) or `smtps://[user[:password]@]host[:port]` (port 465).
/// User and password are percent-decoded. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a bad %-escape in the user or password".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8".to_owned())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SmtpConfig {
    /// Parses an `SMTP_URL`.
    ///
    /// # Errors
    /// A sentence saying what is wrong, without the password (for the configuration
    /// report).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let (implicit, rest) = if let Some(r) = url.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err("must start with smtp:// or smtps://".into());
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err("must not have a path (smtp://[user:password@]host[:port])".into());
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
            None => None,
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("a bad IPv6 host")?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        let port = match port {
            None => {
                if implicit {
                    465
                } else {
                    587
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port"))?,
        };
        let security = match (implicit, query) {
            (true, None) => SmtpSecurity::Implicit,
            (true, Some(_)) => return Err("smtps:// takes no ?tls= (it is always TLS)".into()),
            (false, Some("tls=required")) => SmtpSecurity::StartTls,
            (false, Some("tls=opportunistic")) if credentials.is_some() && !is_loopback(&host) => {
                return Err(
                    "?tls=opportunistic with a user and password would send them in clear; use ?tls=required or smtps://".into(),
                );
            }
            (false, Some("tls=opportunistic")) => SmtpSecurity::Opportunistic,
            (false, Some(q)) => {
                return Err(format!(
                    "{q:?}: the only option is tls=required or tls=opportunistic"
                ));
            }
            (false, None) if credentials.is_some() && !is_loopback(&host) => SmtpSecurity::StartTls,
            (false, None) => SmtpSecurity::Opportunistic,
        };
        Ok(Self {
            host,
            port,
            security,
            credentials,
        })
    }

    /// Whether a user and password are configured.
    #[must_use]
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }
}

/// SMTP delivery through lettre (rustls with the system's root certificates, Mozilla's
/// as fallback), keeping up to [`POOL_SIZE`] connections open between messages.
///
/// `smtp://` connections are opened here with `TCP_NODELAY` (lettre writes a message's
/// body and its terminating `.` separately: with Nagle's algorithm on, the terminator
/// waits for the server's delayed ACK, ~40 ms a message) and kept in a small pool of
/// our own; `smtps://` goes through lettre's own transport and pool (it opens the socket
/// itself, so Nagle stays on there).
pub struct SmtpTransport {
    inner: Inner,
}

enum Inner {
    /// Plain or STARTTLS, our sockets and pool.
    Direct(Direct),
    /// Implicit TLS, lettre's transport.
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
}

/// Idle connections kept open.
pub const POOL_SIZE: usize = 10;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

struct Direct {
    host: String,
    port: u16,
    tls: Option<(TlsParameters, bool)>,
    credentials: Option<Credentials>,
    idle: tokio::sync::Mutex<Vec<AsyncSmtpConnection>>,
}

impl Direct {
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let hello = ClientId::default();
        let tcp = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
        .and_then(|r| r)
        .map_err(io_error)?;
        tcp.set_nodelay(true).map_err(io_error)?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
            .await
            .map_err(smtp_error)?;
        if let Some((params, required)) = &self.tls {
            if conn.can_starttls() {
                conn.starttls(params.clone(), &hello)
                    .await
                    .map_err(smtp_error)?;
            } else if *required {
                conn.abort().await;
                return Err(io_error(std::io::Error::other(
                    "the server does not offer STARTTLS, which SMTP_URL requires",
                )));
            }
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(smtp_error)?;
        }
        Ok(conn)
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let pooled = self.idle.lock().await.pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut result = conn.send(&message.envelope, &message.formatted).await;
        if result.as_ref().is_err_and(|e| !e.is_permanent()) && reused {
            // An idle connection the server closed meanwhile: once more on a new one.
            conn.abort().await;
            conn = self.connect().await?;
            result = conn.send(&message.envelope, &message.formatted).await;
        }
        match result {
            Ok(_) if !conn.has_broken() => {
                let mut idle = self.idle.lock().await;
                if idle.len() < POOL_SIZE {
                    idle.push(conn);
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                conn.abort().await;
                Err(smtp_error(e))
            }
        }
    }
}

fn smtp_error(e: lettre::transport::smtp::Error) -> SendError {
    SendError {
        permanent: e.is_permanent(),
        what: "the SMTP server did not accept the message".into(),
        source: Some(Box::new(e)),
    }
}

fn io_error(e: std::io::Error) -> SendError {
    SendError::transient("the SMTP connection failed", e)
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpTransport")
    }
}

impl SmtpTransport {
    /// A transport for `config` (connects lazily, on the first message).
    ///
    /// # Errors
    /// The TLS parameters could not be built (no usable root certificates).
    pub fn new(config: &SmtpConfig) -> Result<Self, SendError> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|e| SendError::transient("building the TLS parameters failed", e))
        };
        let credentials = config
            .credentials
            .as_ref()
            .map(|(user, pass)| Credentials::new(user.clone(), pass.clone()));
        let inner = match config.security {
            SmtpSecurity::Opportunistic | SmtpSecurity::StartTls => Inner::Direct(Direct {
                host: config.host.clone(),
                port: config.port,
                tls: Some((
                    tls(&config.host)?,
                    config.security == SmtpSecurity::StartTls,
                )),
                credentials,
                idle: tokio::sync::Mutex::new(Vec::new()),
            }),
            SmtpSecurity::Implicit => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                        .port(config.port)
                        .tls(Tls::Wrapper(tls(&config.host)?))
                        .timeout(Some(TIMEOUT));
                if let Some(c) = credentials {
                    builder = builder.credentials(c);
                }
                Inner::Lettre(builder.build())
            }
        };
        Ok(Self { inner })
    }
}

#[async_trait::async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        match &self.inner {
            Inner::Direct(d) => d.send(message).await,
            Inner::Lettre(t) => t
                .send_raw(&message.envelope, &message.formatted)
                .await
                .map(|_| ())
                .map_err(smtp_error),
        }
    }

    fn name(&self) -> &'static str {
        "smtp"
    }
}

/// Writes each message as `<dir>/<id>.eml` (written to a temporary name, then renamed:
/// a reader never sees half a file; a resend overwrites the same file) and logs its
/// links, so a local start without SMTP shows the whole flow. For development and the
/// embedded default only: it logs links with their tokens.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// Writes into `dir` (created when the first message is written).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Deletes every message file in `dir` addressed to or naming `address`
    /// (case-insensitive; an erasure); how many. A missing directory holds none.
    ///
    /// # Errors
    /// Reading the directory or removing a file failed.
    pub fn forget_address(dir: &std::path::Path, address: &str) -> std::io::Result<u64> {
        let needle = address.to_lowercase().into_bytes();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "eml" && x != "tmp") {
                continue;
            }
            let bytes = std::fs::read(&path)?.to_ascii_lowercase();
            if !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[async_trait::async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let dir = self.dir.clone();
        let id = message.id;
        let bytes = message.formatted.clone();
        let path = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{id}.eml.tmp"));
            let path = dir.join(format!("{id}.eml"));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(path)
        })
        .await
        .map_err(|e| SendError::transient("the file writer stopped", e))?
        .map_err(|e| SendError::transient("writing the .eml file failed", e))?;
        tracing::info!(
            message_id = %id,
            path = %path.display(),
            links = %message.links.join(" "),
            "mail: written to the outbox directory (no SMTP_URL configured)"
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let c = SmtpConfig::parse("smtp://mail.example.org").expect("ok");
        assert_eq!(
            (c.host.as_str(), c.port, c.security),
            ("mail.example.org", 587, SmtpSecurity::Opportunistic)
        );
        assert!(!c.has_credentials());
        let c = SmtpConfig::parse("smtp://u%40x:p%3Ass@mail.example.org:2525").expect("ok");
        assert_eq!(c.port, 2525);
        assert_eq!(c.security, SmtpSecurity::StartTls, "credentials need TLS");
        assert_eq!(c.credentials, Some(("u@x".into(), "p:ss".into())));
        assert!(!format!("{c:?}").contains("p:ss"));
        let c = SmtpConfig::parse("smtps://u:p@mail.example.org").expect("ok");
        assert_eq!((c.port, c.security), (465, SmtpSecurity::Implicit));
        let c = SmtpConfig::parse("smtp://127.0.0.1:1025").expect("ok");
        assert_eq!(c.security, SmtpSecurity::Opportunistic);
        let c = SmtpConfig::parse("smtp://u:p@localhost:1025").expect("ok");
        assert_eq!(
            c.security,
            SmtpSecurity::Opportunistic,
            "loopback may be plain"
        );
        let c = SmtpConfig::parse("smtp://mail.example.org?tls=required").expect("ok");
        assert_eq!(c.security, SmtpSecurity::StartTls);
        let c = SmtpConfig::parse("smtp://[::1]:25").expect("ok");
        assert_eq!((c.host.as_str(), c.port), ("::1", 25));
        for bad in [
            "http://x",
            "smtp://",
            "smtp://x:0",
            "smtp://x:99999",
            "smtp://x/path",
            "smtp://x?tls=maybe",
            "smtps://x?tls=required",
            "smtp://u:secret@x?tls=opportunistic",
        ] {
            let err = SmtpConfig::parse(bad).expect_err(bad);
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
