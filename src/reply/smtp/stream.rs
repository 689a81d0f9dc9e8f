//! The byte streams under an SMTP connection: TCP with `TCP_NODELAY` (plaintext only to loopback addresses),
//! and implicit TLS over it (rustls with ring), in the shape lettre takes for a connection made elsewhere.
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// Connects to the first address of `host` that answers; `loopback_only` skips every other address.
/// `TCP_NODELAY` is set so that a short write (lettre's end-of-data line) leaves at once.
pub async fn tcp(host: &str, port: u16, loopback_only: bool) -> anyhow::Result<TcpStream> {
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

/// Implicit TLS (SMTPS) over `tcp`, verified against `host`.
pub async fn tls(connector: &TlsConnector, host: &str, tcp: TcpStream) -> anyhow::Result<Tls> {
    let name = ServerName::try_from(host.to_owned()).context("SMTP host is not a valid TLS server name")?;
    let stream = connector.connect(name, tcp).await.context("Failed to complete the TLS handshake")?;
    Ok(Tls(stream))
}

/// A TLS stream lettre can carry (its trait wants the peer's address).
#[derive(Debug)]
pub struct Tls(TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
