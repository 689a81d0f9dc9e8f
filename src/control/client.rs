//! The tool's side of the control socket: send one request to a running `keypost run`, read its response.
//! Blocking (the tools run without a runtime). Every way of not reaching the daemon is a clear error.
use std::io::{BufRead, BufReader, ErrorKind, Write as _};

use anyhow::Context as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{MAX_FRAME_BYTES, Request, Response};

/// How long the daemon may take to answer: a write waits for the pass in hand to finish.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the daemon listening on `socket`. `Ok` holds the daemon's response (which may be the
/// error it reports); `Err` means the daemon could not be asked or did not answer. A streamed answer is
/// gathered into the response's output.
pub fn ask(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut streamed = Vec::new();
    Ok(match ask_into(socket, request, &mut streamed)? {
        Response::Ok(mut answer) if !streamed.is_empty() => {
            answer.stdout = String::from_utf8(streamed)? + &answer.stdout;
            Response::Ok(answer)
        }
        response => response,
    })
}

/// The same, writing a streamed answer (`export`) to `out` as it arrives: memory does not grow with it. The
/// response returned is the one that ends the stream (or the only one, for any other request).
pub fn ask_into(socket: &Path, request: &Request, out: &mut impl std::io::Write) -> anyhow::Result<Response> {
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
    let mut reader = BufReader::with_capacity(1 << 16, &stream);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(|err| match err.kind() {
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
    match Response::parse(&line).map_err(anyhow::Error::msg)? {
        Response::Stream => read_stream(&mut reader, out)
            .with_context(|| format!("the answer from {shown} was cut short; what was printed is incomplete")),
        response => Ok(response),
    }
}

/// The frames of a streamed answer, copied to `out`, then the response line that ends it.
fn read_stream(reader: &mut impl BufRead, out: &mut impl std::io::Write) -> anyhow::Result<Response> {
    let mut line = Vec::new();
    let mut frame = Vec::new();
    loop {
        line.clear();
        reader.read_until(b'\n', &mut line)?;
        let len: usize = std::str::from_utf8(line.strip_suffix(b"\n").unwrap_or_default())
            .ok()
            .and_then(|len| len.parse().ok())
            .filter(|len| *len <= MAX_FRAME_BYTES)
            .ok_or_else(|| anyhow::anyhow!("malformed frame length {:?}", String::from_utf8_lossy(&line)))?;
        if len == 0 {
            break;
        }
        frame.resize(len, 0);
        reader.read_exact(&mut frame)?;
        out.write_all(&frame).context("Failed to write the output")?;
    }
    line.clear();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        anyhow::bail!("no closing response");
    }
    Response::parse(&line).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_answer_is_copied_frame_by_frame_and_one_cut_short_or_malformed_is_an_error() {
        let end = Response::Ok(crate::control::Answer::success(String::new())).to_line();
        let whole = format!("3\nab\n2\nc\n0\n{end}");
        let mut out = Vec::new();
        let response = read_stream(&mut std::io::Cursor::new(whole), &mut out).unwrap();
        assert_eq!(
            (out.as_slice(), response),
            (&b"ab\nc\n"[..], Response::Ok(crate::control::Answer::success(String::new())))
        );
        let failed = format!("3\nab\n0\n{}", Response::error("state record o/x cannot be read").to_line());
        let response = read_stream(&mut std::io::Cursor::new(failed), &mut Vec::new()).unwrap();
        assert_eq!(response, Response::error("state record o/x cannot be read"), "the daemon's error reaches the tool");
        for broken in ["3\nab\n2\nc", "3\nab\n", "3\nab\n0\n", "x\nab", "99999999999\n"] {
            assert!(read_stream(&mut std::io::Cursor::new(broken), &mut Vec::new()).is_err(), "{broken:?}");
        }
    }

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
