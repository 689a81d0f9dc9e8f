//! The daemon's side of the control socket: bind it privately, accept connections, read one bounded request
//! with a timeout, answer reads from the store and hand writes to the daemon's loop as [`Job`]s.
//! It must not write to the store itself: the loop is the only writer.
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::answer;
use super::protocol::{Answer, ExportFormat, MAX_REQUEST_BYTES, Request, Response};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// What the server task answers reads from: the daemon's open store and its in-memory facts.
#[derive(Clone)]
struct Readers {
    store: Store,
    telemetry: Arc<Telemetry>,
}

/// The socket's file name in the state folder.
pub const SOCKET_NAME: &str = "control.sock";
/// How long a client may take to send its request, and the daemon to write its response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4;
/// Writes waiting for the loop; more wait with their connection.
const MAX_QUEUED_JOBS: usize = 8;

/// Where the daemon with this state folder listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A request that changes the state, for the daemon's loop to carry out between passes. The loop sends the
/// response; dropping the job unanswered tells the tool nothing was done.
#[derive(Debug)]
pub struct Job {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// The listening control socket. Dropping it stops serving and removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl ControlServer {
    /// Binds `<state_dir>/control.sock` (replacing a stale one: only the process holding the store's lock gets
    /// here) and serves it in a task. Returns the jobs for the daemon's loop. Needs a tokio runtime.
    pub fn start(
        state_dir: &Path,
        store: Store,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<(Self, mpsc::Receiver<Job>)> {
        let path = socket_path(state_dir);
        let listener = bind_private(&path)
            .with_context(|| format!("Failed to listen on the control socket {}", path.display()))?;
        // The socket was created by this process, so its owner is the daemon's own (effective) user.
        let own_uid = std::fs::metadata(&path).context("Failed to read the control socket's owner")?.uid();
        let (jobs, receiver) = mpsc::channel(MAX_QUEUED_JOBS);
        let task = tokio::spawn(accept_loop(listener, Readers { store, telemetry }, jobs, own_uid));
        tracing::info!(socket = %path.display(), "Vendor tools can reach keypost over its control socket.");
        Ok((Self { path, task }, receiver))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(socket = %self.path.display(), "Cannot remove the control socket: {err}"),
        }
    }
}

/// Binds in a fresh 0700 folder, makes the socket 0600, then renames it into place: it is never reachable with
/// looser permissions, whatever the umask, and the rename replaces a stale socket atomically.
fn bind_private(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path.parent().context("The control socket path has no folder")?;
    // Short names: the temporary path must not be longer than the final one (a socket path has ~107 bytes).
    let private = dir.join(format!(".c{}", std::process::id()));
    // A leftover from an earlier process with the same id: ours to clear.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let temporary = private.join("s");
    let bound = (|| -> anyhow::Result<std::os::unix::net::UnixListener> {
        let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    Ok(UnixListener::from_std(bound?)?)
}

/// Who may use the socket besides its file modes: root and the daemon's own user, by the kernel's word on the
/// connecting process (SO_PEERCRED), so a socket made reachable by mistake (a looser state folder, a copied
/// mode) still serves no one else.
fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

async fn accept_loop(listener: UnixListener, readers: Readers, jobs: mpsc::Sender<Job>, own_uid: u32) {
    crate::net::accept::serve_bounded(listener, MAX_CONNECTIONS, "Control socket", move |stream: UnixStream| {
        let (readers, jobs) = (readers.clone(), jobs.clone());
        async move {
            match stream.peer_cred().map(|cred| cred.uid()) {
                Ok(uid) if peer_allowed(uid, own_uid) => serve(stream, &readers, &jobs).await,
                Ok(uid) => refuse(stream, &format!("user id {uid} is neither root nor keypost's user")).await,
                Err(err) => refuse(stream, &format!("cannot tell who is connecting: {err}")).await,
            }
        }
    })
    .await;
}

/// One connection: one request, one response. A bad request gets an error response; nothing here panics.
async fn serve(stream: UnixStream, readers: &Readers, jobs: &mpsc::Sender<Job>) {
    let (reader, mut writer) = stream.into_split();
    let response = match tokio::time::timeout(IO_TIMEOUT, read_request(reader)).await {
        Err(_) => Response::error(format!("no complete request within {} s", IO_TIMEOUT.as_secs())),
        Ok(Err(message)) => Response::error(message),
        Ok(Ok(Request::Export { format })) => return stream_export(writer, readers.store.clone(), format).await,
        Ok(Ok(request)) => respond(request, readers, jobs).await,
    };
    if let Response::Error { message } = &response {
        tracing::debug!("Control request failed: {message}");
    }
    let write = async {
        writer.write_all(response.to_line().as_bytes()).await?;
        writer.shutdown().await
    };
    match tokio::time::timeout(IO_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!("Cannot write the control response: {err}"),
        Err(_) => tracing::debug!("The control client did not read its response."),
    }
}

/// Bytes per frame of a streamed export.
const EXPORT_FRAME: usize = 1 << 16;

/// `export`: the rows are written to the tool as they are read (frames, see [`Response::Stream`]), so the
/// daemon holds a few frames, never the whole export. The store is read in a blocking task; a tool that stops
/// reading (or takes longer than [`IO_TIMEOUT`] for a frame) ends the reading too.
async fn stream_export(mut writer: OwnedWriteHalf, store: Store, format: ExportFormat) {
    tracing::info!(command = "export", "Control request.");
    let (frames, mut received) = mpsc::channel::<Vec<u8>>(4);
    let reading = tokio::task::spawn_blocking(move || {
        let mut out = FrameWriter { frames, buffer: Vec::with_capacity(EXPORT_FRAME) };
        answer::export_to(&store, format, &mut out)?;
        std::io::Write::flush(&mut out)?;
        anyhow::Ok(())
    });
    let sent = async {
        writer.write_all(Response::Stream.to_line().as_bytes()).await?;
        while let Some(frame) = received.recv().await {
            let write = async {
                writer.write_all(format!("{}\n", frame.len()).as_bytes()).await?;
                writer.write_all(&frame).await
            };
            tokio::time::timeout(IO_TIMEOUT, write).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        }
        std::io::Result::Ok(())
    }
    .await;
    drop(received);
    let read = reading.await;
    if let Err(err) = sent {
        tracing::debug!("The control client stopped reading the export: {err}");
        return;
    }
    let end = match read {
        Ok(Ok(())) => Response::Ok(Answer::success(String::new())),
        Ok(Err(err)) => Response::error(format!("{err:#}")),
        Err(err) => Response::error(format!("the export stopped: {err}")),
    };
    let write = async {
        writer.write_all(format!("0\n{}", end.to_line()).as_bytes()).await?;
        writer.shutdown().await
    };
    if !matches!(tokio::time::timeout(IO_TIMEOUT, write).await, Ok(Ok(()))) {
        tracing::debug!("Cannot write the end of the export.");
    }
}

/// What [`answer::export_to`] writes into: full frames go to the socket's task; a send that fails (the tool
/// went away) fails the write, which ends the export.
struct FrameWriter {
    frames: mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl FrameWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let frame = std::mem::replace(&mut self.buffer, Vec::with_capacity(EXPORT_FRAME));
        self.frames.blocking_send(frame).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for FrameWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = EXPORT_FRAME.saturating_sub(self.buffer.len()).max(1);
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(data.get(..taken).unwrap_or_default());
        if self.buffer.len() >= EXPORT_FRAME {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Answers a connection that may not use the socket with an error and nothing else. Its request is read only to
/// be discarded (bounded, briefly), so the client gets the answer rather than a broken pipe.
async fn refuse(mut stream: UnixStream, why: &str) {
    tracing::warn!("Control connection refused: {why}.");
    let response = Response::error(format!("not allowed: {why}"));
    let write = async {
        stream.write_all(response.to_line().as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, write).await;
    let discard = async {
        let (mut buffer, mut total) = ([0u8; 4096], 0usize);
        while let Ok(read @ 1..) = stream.read(&mut buffer).await {
            total = total.saturating_add(read);
            if total > MAX_REQUEST_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), discard).await;
}

async fn read_request(reader: tokio::net::unix::OwnedReadHalf) -> Result<Request, String> {
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = BufReader::new(reader.take(limit));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await.map_err(|err| format!("cannot read the request: {err}"))?;
    if line.is_empty() {
        return Err("empty request".to_owned());
    }
    Request::parse(&line)
}

async fn respond(request: Request, readers: &Readers, jobs: &mpsc::Sender<Job>) -> Response {
    tracing::info!(command = request.name(), "Control request.");
    // Answered here, not by the loop, so `status` answers even while a pass is long or stuck.
    if let Request::Status { json } = request {
        return answer::status(&readers.store, Some(&readers.telemetry.snapshot()), json).into();
    }
    if let Some(result) = answer::read(&readers.store, &request) {
        return result.into();
    }
    let (reply, response) = oneshot::channel();
    let stopping = || Response::error("keypost is stopping; nothing was done");
    if jobs.send(Job { request, reply }).await.is_err() {
        return stopping();
    }
    // No timeout here: once queued, the loop carries it out; the tool's own timeout says it may still happen.
    response.await.unwrap_or_else(|_| stopping())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_own_user_may_use_the_socket() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
