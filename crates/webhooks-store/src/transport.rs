//! Sending one webhook message: the [`Transport`] port and [`HttpTransport`], an
//! HTTP/1.1 client on hyper's connection API over rustls.
//!
//! The receiver's host is resolved on every attempt and **every** address it resolves
//! to is checked with [`webhooks::check_ip`]; the connection goes to an address that
//! passed (never a second resolution), so a name re-pointed at a private address
//! after registration (DNS rebinding) reaches nothing. Redirects are not followed (a
//! 3xx is a failed attempt). The whole attempt — resolution, connection, TLS, request
//! and the answer's head — is bounded by the timeout (10 s by default); the answer's
//! body is not read.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use webhooks::{AddressPolicy, EndpointUrl, SignedHeaders};

/// Why an attempt got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL is not (or no longer) acceptable, or its host resolved to an address
    /// that is not public.
    #[error("refused receiver: {0}")]
    Refused(#[from] webhooks::AddressError),
    /// The name did not resolve.
    #[error("could not resolve the receiver's host: {0}")]
    Resolve(String),
    /// Connecting, TLS or the exchange failed.
    #[error("{0}")]
    Connection(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What the receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
}

/// The boxed future of [`Transport::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, SendError>> + Send + 'a>>;

/// Sends one signed message (`POST`, `Content-Type: application/json`).
pub trait Transport: Send + Sync + 'static {
    /// POSTs `body` with `headers` to `url`.
    fn send<'a>(&'a self, url: &'a str, headers: &'a SignedHeaders, body: Bytes) -> SendFuture<'a>;
}

/// The HTTP client.
pub struct HttpTransport {
    policy: AddressPolicy,
    timeout: Duration,
    tls: TlsConnector,
    user_agent: String,
    hosts: Vec<(String, std::net::IpAddr)>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A client under `policy`, each attempt bounded by `timeout`, trusting Mozilla's
    /// root certificates.
    ///
    /// # Errors
    /// The TLS configuration cannot be built (no usable protocol version).
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, rustls::Error> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            policy,
            timeout,
            tls: TlsConnector::from(Arc::new(config)),
            user_agent: format!("PTO-Connect-Webhooks/{}", env!("CARGO_PKG_VERSION")),
            hosts: Vec::new(),
        })
    }

    /// Fixed host entries consulted before DNS (as `/etc/hosts` would be): what a name
    /// resolves to at delivery time, for tests of the address check. The addresses are
    /// checked like any resolved address.
    #[must_use]
    pub fn with_hosts(mut self, hosts: Vec<(String, std::net::IpAddr)>) -> Self {
        self.hosts = hosts;
        self
    }

    /// The addresses `host:port` resolves to, all of them checked; the first to connect to.
    async fn resolve(&self, host: &url::Host<&str>, port: u16) -> Result<SocketAddr, SendError> {
        let addrs: Vec<SocketAddr> = match host {
            url::Host::Ipv4(ip) => vec![SocketAddr::new((*ip).into(), port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new((*ip).into(), port)],
            url::Host::Domain(d) => {
                let fixed: Vec<SocketAddr> = self
                    .hosts
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case(d))
                    .map(|(_, ip)| SocketAddr::new(*ip, port))
                    .collect();
                if fixed.is_empty() {
                    tokio::net::lookup_host((*d, port))
                        .await
                        .map_err(|e| SendError::Resolve(e.to_string()))?
                        .collect()
                } else {
                    fixed
                }
            }
        };
        // One non-public address among them refuses the whole name: a receiver does
        // not need one, an attacker mixing answers does.
        for a in &addrs {
            webhooks::check_ip(a.ip(), self.policy)?;
        }
        addrs
            .first()
            .copied()
            .ok_or_else(|| SendError::Resolve("no address".into()))
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &SignedHeaders,
        body: Bytes,
    ) -> Result<Answer, SendError> {
        let url = EndpointUrl::parse(url, self.policy)?;
        let url = url.url();
        let host = url.host().ok_or(webhooks::AddressError::NoHost)?;
        let port = url
            .port_or_known_default()
            .ok_or(webhooks::AddressError::NotHttps)?;
        let addr = self.resolve(&host, port).await?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| SendError::Connection(format!("connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", host),
            None => host.to_string(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, self.user_agent.as_str());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| SendError::Connection(e.to_string()))?;
        if url.scheme() == "https" {
            let name = match host {
                url::Host::Domain(d) => ServerName::try_from(d.to_owned()),
                url::Host::Ipv4(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
                url::Host::Ipv6(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
            }
            .map_err(|e| SendError::Connection(e.to_string()))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| SendError::Connection(format!("TLS: {e}")))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<Answer, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Connection(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = sender
        .send_request(request)
        .await
        .map(|res| Answer {
            status: res.status().as_u16(),
        })
        .map_err(|e| SendError::Connection(e.to_string()));
    driver.abort();
    answer
}

impl Transport for HttpTransport {
    fn send<'a>(&'a self, url: &'a str, headers: &'a SignedHeaders, body: Bytes) -> SendFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.attempt(url, headers, body))
                .await
                .unwrap_or(Err(SendError::Timeout(self.timeout)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn headers() -> SignedHeaders {
        SignedHeaders {
            id: "msg_1".into(),
            timestamp: 1,
            signature: "v1,x".into(),
        }
    }

    #[tokio::test]
    async fn posts_to_a_loopback_receiver_when_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("{\"a\":1}") {
                let n = s.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8_lossy(&got).into_owned()
        });
        let t = HttpTransport::new(
            AddressPolicy {
                allow_loopback: true,
            },
            Duration::from_secs(5),
        )
        .expect("client");
        let answer = t
            .send(
                &format!("http://{addr}/hook?x=1"),
                &headers(),
                Bytes::from_static(b"{\"a\":1}"),
            )
            .await
            .expect("answer");
        assert_eq!(answer.status, 204);
        let request = server.await.expect("server");
        assert!(
            request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("webhook-id: msg_1"), "{request}");
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn refuses_loopback_and_private_receivers_in_production() {
        let t =
            HttpTransport::new(AddressPolicy::default(), Duration::from_secs(5)).expect("client");
        for url in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://localhost/x",
            "http://example.org/",
        ] {
            let e = t.send(url, &headers(), Bytes::new()).await.expect_err(url);
            assert!(matches!(e, SendError::Refused(_)), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_at_delivery() {
        // Registered as a public name; by delivery time it points inside (rebinding).
        let t = HttpTransport::new(AddressPolicy::default(), Duration::from_secs(5))
            .expect("client")
            .with_hosts(vec![
                ("rebind.example".into(), "10.0.0.7".parse().expect("ip")),
                ("mixed.example".into(), "93.184.216.34".parse().expect("ip")),
                (
                    "mixed.example".into(),
                    "169.254.169.254".parse().expect("ip"),
                ),
            ]);
        for url in ["https://rebind.example/x", "https://mixed.example/x"] {
            assert!(webhooks::EndpointUrl::parse(url, AddressPolicy::default()).is_ok());
            let e = t.send(url, &headers(), Bytes::new()).await.expect_err(url);
            assert!(
                matches!(e, SendError::Refused(webhooks::AddressError::NotPublic(_))),
                "{url}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _keep = tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let t = HttpTransport::new(
            AddressPolicy {
                allow_loopback: true,
            },
            Duration::from_millis(200),
        )
        .expect("client");
        let e = t
            .send(&format!("http://{addr}/"), &headers(), Bytes::new())
            .await
            .expect_err("timeout");
        assert!(matches!(e, SendError::Timeout(_)), "{e}");
    }
}
