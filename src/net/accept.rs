//! The bounded accept loop of keypost's two small servers (the control socket, the metrics endpoint): each
//! connection in its own task, a fixed number at once (the rest wait in the listen backlog, so a flood of
//! connections cannot exhaust memory or file descriptors), and a failed accept logged and paused after, not spun
//! on. What a connection is served is the caller's.
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long to wait after a failed accept (out of file descriptors and the like) before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// A listener the loop can take connections from.
pub trait Listener {
    type Stream: Send + 'static;
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept_stream(&self) -> std::io::Result<TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept_stream(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Accepts connections for ever and serves each with `serve`, at most `max` at once. `what` names the server
/// in the log. Dropping the future (aborting its task) also aborts the connections still open.
pub async fn serve_bounded<L, F>(listener: L, max: usize, what: &str, serve: impl Fn(L::Stream) -> F)
where
    L: Listener,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        match listener.accept_stream().await {
            Ok(stream) => {
                let connection = serve(stream);
                connections.spawn(async move {
                    connection.await;
                    drop(permit);
                });
            }
            Err(err) => {
                tracing::warn!("{what} accept failed: {err}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// Counts connections being served now, the most at once, and all started.
    #[derive(Default)]
    struct Counts {
        open: AtomicUsize,
        most: AtomicUsize,
        started: AtomicUsize,
    }

    async fn until(what: impl Fn() -> bool) {
        let wait = async {
            while !what() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap();
    }

    #[tokio::test]
    async fn no_more_than_max_connections_are_served_at_once_and_the_next_is_served_when_one_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let served = counts.clone();
        let server = tokio::spawn(serve_bounded(listener, 2, "Test", move |mut stream: TcpStream| {
            let counts = served.clone();
            async move {
                counts.started.fetch_add(1, Ordering::SeqCst);
                let now = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
                counts.most.fetch_max(now, Ordering::SeqCst);
                // Served until the client closes its end.
                let _ = stream.read(&mut [0; 1]).await;
                counts.open.fetch_sub(1, Ordering::SeqCst);
            }
        }));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        until(|| counts.started.load(Ordering::SeqCst) == 2).await;
        // Time for a third to be (wrongly) taken; it must wait in the backlog.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(counts.started.load(Ordering::SeqCst), 2, "the third waits while two are served");
        drop(clients.remove(0));
        until(|| counts.started.load(Ordering::SeqCst) == 3).await;
        assert_eq!(counts.most.load(Ordering::SeqCst), 2, "never more than two at once");
        server.abort();
    }
}
