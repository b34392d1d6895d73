//! Test support (feature `test-support`): a TCP proxy in front of Redis that a test can
//! cut and restore, to simulate an outage without touching the real server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A proxy to one upstream address. While cut, it drops every open connection and
/// closes new ones at once (the client sees a dead server); restored, it forwards again.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    upstream_url: String,
}

/// The `host:port` of a `redis://[user:pass@]host:port[/db]` URL.
fn authority(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (before_path, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (userinfo, host) = before_path
        .rsplit_once('@')
        .map_or(("", before_path), |(u, h)| (u, h));
    let _ = scheme;
    Some((userinfo, host, path))
}

impl TcpProxy {
    /// A proxy in front of the Redis at `redis_url`, listening on a free local port.
    ///
    /// # Panics
    /// When `redis_url` has no host or no local port can be bound (test code).
    pub async fn start(redis_url: &str) -> Self {
        let (_, host, _) = authority(redis_url).expect("a redis:// URL");
        let upstream: String = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let port = listener.local_addr().expect("local addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            up.clone(),
            connections.clone(),
        ))
        .abort_handle();
        Self {
            port,
            up,
            connections,
            accept,
            upstream_url: redis_url.to_owned(),
        }
    }

    /// The upstream URL with the proxy as its host.
    #[must_use]
    pub fn url(&self) -> String {
        let (userinfo, _, path) = authority(&self.upstream_url).unwrap_or_default();
        let scheme = self
            .upstream_url
            .split_once("://")
            .map_or("redis", |(s, _)| s);
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}{path}", self.port)
    }

    /// The listening address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Simulates an outage: drops every connection, refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            c.abort();
        }
    }

    /// Ends the outage.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let upstream = upstream.clone();
        let task = tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
    }
}
