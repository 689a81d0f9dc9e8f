//! The byte streams under an SMTP connection: TCP from [`crate::net::connect`] and implicit TLS over it (rustls with ring), in the shape lettre takes for a connection made elsewhere.
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

/// Holds what is written to a connection while corked, and sends it in one write before the next read (or a
/// flush once uncorked). lettre writes a message and its end-of-data line as two writes, each flushed; corked
/// around the message, the server gets both in one segment: one `send` instead of two, and one wake-up of the
/// server instead of two, for every reply.
#[derive(Debug)]
pub struct Corked {
    inner: Box<dyn AsyncTokioStream>,
    cork: Cork,
    held: Vec<u8>,
    /// How much of `held` went out.
    sent: usize,
}

/// Corks and uncorks one [`Corked`] stream from outside lettre's connection, and tells what it holds.
#[derive(Debug, Clone, Default)]
pub struct Cork(std::sync::Arc<CorkState>);

#[derive(Debug, Default)]
struct CorkState {
    corked: std::sync::atomic::AtomicBool,
    held: std::sync::atomic::AtomicUsize,
}

impl Cork {
    pub fn set(&self, corked: bool) {
        self.0.corked.store(corked, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.corked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes written and not sent yet. After a transaction this must be 0: an answer read without the message
    /// having gone out (a server that spoke out of turn, its line already buffered by lettre) is no acceptance.
    pub fn held(&self) -> usize {
        self.0.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note(&self, held: usize) {
        self.0.held.store(held, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Beyond this much held, a corked stream sends it anyway (a reply is a few KiB; an alert may carry a message).
const HOLD_MAX: usize = 256 * 1024;

impl Corked {
    pub fn new(inner: Box<dyn AsyncTokioStream>, cork: Cork) -> Self {
        Self { inner, cork, held: Vec::new(), sent: 0 }
    }

    /// Sends everything held, then flushes the stream under it.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.held.get(self.sent..).filter(|rest| !rest.is_empty()) {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        self.cork.note(0);
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl AsyncTokioStream for Corked {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl AsyncRead for Corked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // The server answers what it was sent: whatever is held goes out before waiting for an answer.
        if !self.held.is_empty() {
            std::task::ready!(self.poll_send_held(cx))?;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Corked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !self.cork.is_set() && self.held.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        if self.held.len() + buf.len() > HOLD_MAX {
            std::task::ready!(self.poll_send_held(cx))?;
            if buf.len() > HOLD_MAX {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
        }
        self.held.extend_from_slice(buf);
        self.cork.note(self.held.len());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cork.is_set() {
            return Poll::Ready(Ok(()));
        }
        self.poll_send_held(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_held(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A stream that records each write it is given and answers reads with `answer`.
    #[derive(Debug, Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncTokioStream for Recorder {
        fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], 25)))
        }
    }

    impl AsyncRead for Recorder {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            buf.put_slice(b"250 OK\r\n");
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.writes.lock().unwrap().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_corked_message_and_its_end_go_out_in_one_write_before_the_answer_is_read() {
        let recorder = Recorder::default();
        let cork = Cork::default();
        let mut stream = Corked::new(Box::new(recorder.clone()), cork.clone());
        stream.write_all(b"DATA\r\n").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(recorder.writes.lock().unwrap().len(), 1, "uncorked, a flushed write goes out");
        cork.set(true);
        stream.write_all(b"Subject: hi\r\n\r\nbody\r\n").await.unwrap();
        stream.flush().await.unwrap();
        stream.write_all(b"\r\n.\r\n").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(recorder.writes.lock().unwrap().len(), 1, "corked, nothing goes out on a flush");
        assert_eq!(cork.held(), b"Subject: hi\r\n\r\nbody\r\n\r\n.\r\n".len());
        let mut answer = [0; 8];
        stream.read_exact(&mut answer).await.unwrap();
        cork.set(false);
        assert_eq!(&answer, b"250 OK\r\n");
        assert_eq!(cork.held(), 0);
        let writes = recorder.writes.lock().unwrap().clone();
        assert_eq!(writes, [b"DATA\r\n".to_vec(), b"Subject: hi\r\n\r\nbody\r\n\r\n.\r\n".to_vec()]);
    }

    #[tokio::test]
    async fn a_corked_stream_holds_no_more_than_its_limit() {
        let recorder = Recorder::default();
        let cork = Cork::default();
        cork.set(true);
        let mut stream = Corked::new(Box::new(recorder.clone()), cork);
        let chunk = vec![b'x'; HOLD_MAX / 2 + 1];
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(&chunk).await.unwrap();
        assert_eq!(recorder.writes.lock().unwrap().len(), 1, "the first chunk went out to make room");
        stream.shutdown().await.unwrap();
        let total: usize = recorder.writes.lock().unwrap().iter().map(Vec::len).sum();
        assert_eq!(total, chunk.len() * 2, "a shutdown sends what is held");
    }
}
