//! The tool's side of the control socket: send one request to a running `keypost run`, read its response.
//! Blocking (the tools run without a runtime). Every way of not reaching the daemon is a clear error.
use std::io::{BufRead as _, BufReader, ErrorKind, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Request, Response};

/// How long the daemon may take to answer: a write waits for the pass in hand to finish.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the daemon listening on `socket`. `Ok` holds the daemon's response (which may be the
/// error it reports); `Err` means the daemon could not be asked or did not answer.
pub fn ask(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let shown = socket.display();
    let stream = UnixStream::connect(socket).map_err(|err| match err.kind() {
        ErrorKind::NotFound => anyhow::anyhow!(
            "no control socket {shown}: a `keypost run --once` does not listen (wait for it to finish), and a \
             starting `keypost run` opens it in a moment"
        ),
        ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("nothing listens on the control socket {shown} (is that keypost still starting?)")
        }
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on the control socket {shown}: it is only for the daemon's user and root (try sudo)"
        ),
        _ => anyhow::Error::new(err).context(format!("cannot connect to the control socket {shown}")),
    })?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    (&stream)
        .write_all(request.to_line().as_bytes())
        .map_err(|err| anyhow::Error::new(err).context(format!("cannot send the request to {shown}")))?;
    let mut line = Vec::new();
    BufReader::new(&stream).read_until(b'\n', &mut line).map_err(|err| match err.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => anyhow::anyhow!(
            "keypost run did not answer within {} s; the request may still be carried out (check with keypost \
             lookup)",
            ANSWER_TIMEOUT.as_secs()
        ),
        _ => anyhow::Error::new(err).context(format!("cannot read the answer from {shown}")),
    })?;
    if line.is_empty() {
        anyhow::bail!("keypost run closed the control connection without answering (did it stop?)");
    }
    Response::parse(&line).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request::Lookup { query: "x".into(), json: false };
        let err = ask(&dir.path().join("control.sock"), &request).unwrap_err();
        assert!(format!("{err:#}").starts_with("no control socket"), "{err:#}");
    }

    #[test]
    fn a_stale_socket_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = ask(&path, &Request::Lookup { query: "x".into(), json: false }).unwrap_err();
        assert!(format!("{err:#}").starts_with("nothing listens"), "{err:#}");
    }
}
