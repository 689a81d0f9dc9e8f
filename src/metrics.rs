//! The Prometheus endpoint: `[metrics] listen`, off by default. A small HTTP/1.1 responder for `GET /metrics`
//! (text format 0.0.4, rendered by [`crate::telemetry::prometheus`]); every other request gets a short error and
//! every connection is closed after one answer.
//!
//! It has no authentication and tells how much you sell, so it listens on a loopback address unless the
//! configuration says `allow_remote = true` (put a reverse proxy with TLS and authentication in front of it, or
//! scrape it from the same machine). It only reads: the daemon's in-memory facts and counts from the store.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::problems::Problems;
use crate::store::Store;
use crate::telemetry::{StateSummary, Telemetry};

/// The longest request head read; a scrape sends a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4;

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsConfig {
    /// Where the Prometheus endpoint listens, e.g. `"127.0.0.1:9187"`; no endpoint when absent.
    #[serde(default)]
    pub listen: Option<String>,
    /// Allow a `listen` address that is not loopback (the endpoint has no authentication); warned about.
    #[serde(default)]
    pub allow_remote: bool,
}

impl MetricsConfig {
    /// The address to listen on, when the endpoint is on and the address valid.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|listen| listen.parse().ok())
    }

    pub fn validate(&self, problems: &mut Problems) {
        let Some(listen) = &self.listen else { return };
        let Ok(address) = listen.parse::<SocketAddr>() else {
            problems
                .error("metrics.listen", format!("{listen:?} is not an address with a port, e.g. \"127.0.0.1:9187\""));
            return;
        };
        match (address.ip().is_loopback(), self.allow_remote) {
            (true, _) => {}
            (false, false) => problems.error(
                "metrics.listen",
                format!(
                    "{address} is not a loopback address; the endpoint has no authentication and shows your order \
                     volume: listen on 127.0.0.1 or [::1] (behind a proxy if another machine scrapes it), or set \
                     metrics.allow_remote = true"
                ),
            ),
            (false, true) => problems.warn(
                "metrics.allow_remote",
                format!("the metrics endpoint on {address} can be read by anyone who reaches it (no authentication)"),
            ),
        }
    }
}

/// The listening endpoint. Dropping it stops serving.
#[derive(Debug)]
pub struct MetricsServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `address` and serves it in a task. Needs a tokio runtime.
    pub async fn start(address: SocketAddr, store: Store, telemetry: Arc<Telemetry>) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(address).await.with_context(|| format!("Failed to listen for metrics on {address}"))?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, store, telemetry));
        tracing::info!(%address, "Prometheus metrics on http://{address}/metrics");
        Ok(Self { address, task })
    }

    /// Where it listens (the port the system chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, store: Store, telemetry: Arc<Telemetry>) {
    crate::net::accept::serve_bounded(listener, MAX_CONNECTIONS, "Metrics", move |stream| {
        let (store, telemetry) = (store.clone(), telemetry.clone());
        async move {
            let _ = tokio::time::timeout(IO_TIMEOUT, serve(stream, store, telemetry)).await;
        }
    })
    .await;
}

async fn serve(mut stream: TcpStream, store: Store, telemetry: Arc<Telemetry>) {
    let head = match read_head(&mut stream).await {
        Ok(head) => head,
        Err(status) => return respond(&mut stream, status, "", false).await,
    };
    let head_only = head.method == "HEAD";
    let (status, body) = match route(&head) {
        Route::Metrics => match render(store, &telemetry).await {
            Ok(body) => ("200 OK", body),
            Err(err) => {
                tracing::warn!("Cannot render the metrics: {err:#}");
                ("500 Internal Server Error", "cannot read the state\n".to_owned())
            }
        },
        Route::NotFound => ("404 Not Found", "only /metrics is here\n".to_owned()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "GET /metrics\n".to_owned()),
    };
    respond(&mut stream, status, &body, head_only).await;
}

async fn render(store: Store, telemetry: &Telemetry) -> anyhow::Result<String> {
    let facts = telemetry.snapshot();
    // The store scan can take a moment on a large state: off the daemon's (single) runtime thread.
    let summary = tokio::task::spawn_blocking(move || StateSummary::read(&store)).await??;
    let now = time::OffsetDateTime::now_utc();
    let now = now.unix_timestamp() as f64 + f64::from(now.nanosecond()) / 1e9;
    Ok(crate::telemetry::prometheus(&facts, &summary, now))
}

/// The parts of a request line that matter.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    path: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
}

fn route(head: &Head) -> Route {
    let path = head.path.split('?').next().unwrap_or_default();
    match (head.method.as_str(), path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// Reads until the blank line that ends the head (bounded); `Err` is the status to answer with.
async fn read_head(stream: &mut TcpStream) -> Result<Head, &'static str> {
    let mut buffer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && !buffer.windows(2).any(|w| w == b"\n\n") {
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("431 Request Header Fields Too Large");
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => buffer.extend_from_slice(chunk.get(..read).unwrap_or_default()),
        }
    }
    parse_head(&buffer).ok_or("400 Bad Request")
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    (version.starts_with("HTTP/1.") && parts.next().is_none())
        .then(|| Head { method: method.to_owned(), path: path.to_owned() })
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str, head_only: bool) {
    let content_type =
        if status.starts_with("200") { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain" };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, allow_remote: bool) -> Vec<String> {
        let mut problems = Problems::new("k.toml");
        MetricsConfig { listen: Some(listen.to_owned()), allow_remote }.validate(&mut problems);
        problems.items().iter().map(|p| format!("{:?} {}: {}", p.severity, p.key, p.message)).collect()
    }

    #[test]
    fn a_loopback_address_is_accepted_and_any_other_needs_allow_remote() {
        assert!(config("127.0.0.1:9187", false).is_empty());
        assert!(config("[::1]:9187", false).is_empty());
        let refused = config("0.0.0.0:9187", false);
        assert!(
            refused.len() == 1 && refused[0].starts_with("Error metrics.listen: 0.0.0.0:9187 is not a loopback"),
            "{refused:?}"
        );
        let warned = config("192.0.2.7:9187", true);
        assert!(warned.len() == 1 && warned[0].starts_with("Warning metrics.allow_remote"), "{warned:?}");
        assert!(config("localhost", false)[0].contains("not an address with a port"));
    }

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        let head = |text: &str| parse_head(text.as_bytes());
        let get = head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(route(&get), Route::Metrics);
        assert_eq!(route(&head("GET /metrics?x=1 HTTP/1.0\r\n\r\n").unwrap()), Route::Metrics);
        assert_eq!(route(&head("GET / HTTP/1.1\r\n\r\n").unwrap()), Route::NotFound);
        assert_eq!(route(&head("POST /metrics HTTP/1.1\r\n\r\n").unwrap()), Route::MethodNotAllowed);
        assert_eq!(head("GET /metrics\r\n\r\n"), None, "HTTP/0.9 is not spoken");
        assert_eq!(head("\u{0}\u{ff}"), None);
    }
}
