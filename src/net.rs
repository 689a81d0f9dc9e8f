//! Connecting to a mail server over TCP, shared by the IMAP source and the SMTP mailer. Sets `TCP_NODELAY`, so a
//! short write (lettre's end-of-data line, an IMAP command) leaves at once instead of waiting on a delayed ACK.
//! [`accept`]: the bounded accept loop keypost's own two small servers share.
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpStream;

pub mod accept;

/// Connects to the first address of `host` that answers; `loopback_only` skips every other address (plaintext
/// is only ever allowed to loopback).
pub async fn connect(host: &str, port: u16, loopback_only: bool) -> anyhow::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("Failed to resolve {host}"))?
        .filter(|addr| !loopback_only || addr.ip().is_loopback())
        .collect();
    let mut last_err = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true).with_context(|| format!("Failed to set TCP_NODELAY towards {addr}"))?;
                return Ok(stream);
            }
            Err(err) => last_err = Some(anyhow::Error::new(err).context(format!("Failed to connect to {addr}"))),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("{host} resolved to no usable address")))
}
