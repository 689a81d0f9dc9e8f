//! Integration tests: the vendor's tools talking to a running daemon over its control socket.
//! The built binary runs the demo configuration in a temp dir (Maildir in, files outbox); the tools are run as a
//! user runs them, while it watches, and their output is compared with what they print once it stopped.
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::support::{self, copy_demo};

/// A tool on the demo configuration.
pub(crate) fn keypost(dir: &Path, args: &[&str]) -> Output {
    support::keypost(dir, &["--config", "demo.toml"]).args(args).output().unwrap()
}

/// Runs a tool that must succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let output = keypost(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The daemon, killed if a test fails before it stopped it.
pub(crate) struct Daemon(Option<Child>);

impl Daemon {
    pub(crate) fn start(dir: &Path) -> Self {
        let child = support::keypost(dir, &["--config", "demo.toml", "run"])
            .env("KEYPOST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    fn is_running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then its exit status and log.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let child = self.0.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let output = child.wait_with_output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("demo-run/state/control.sock")
}

/// Until the sample orders are processed (every seed message settled) and the socket is there.
pub(crate) fn wait_until_processed(dir: &Path, daemon: &mut Daemon) {
    let new = dir.join("demo-run/maildir/new");
    let set_aside = dir.join("demo-run/maildir/.keypost.set-aside/cur");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settled = set_aside.exists() && std::fs::read_dir(&new).map(|d| d.count() == 0).unwrap_or(false);
        if settled && socket(dir).exists() {
            return;
        }
        assert!(daemon.is_running(), "the daemon exited early");
        assert!(Instant::now() < deadline, "the daemon did not process the sample orders within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reply files (`keypost.reply.*`, `keypost.resend.*`) in the files outbox that contain `text`.
fn replies_containing(dir: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.join("demo-run/outbox")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("keypost.re") && std::fs::read_to_string(entry.path()).unwrap().contains(text) {
            found.push(name);
        }
    }
    found.sort();
    found
}

/// The serial in a `lookup` line: `...: SERIAL; buyer ...`.
fn serial_in(lookup: &str) -> String {
    let license = lookup.split("; buyer").next().unwrap();
    license.rsplit(": ").next().unwrap().to_owned()
}

/// Sends raw bytes to the socket; returns what came back.
fn raw_request(path: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The daemon may answer (and close) before reading everything of an oversized request.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Closed with part of an oversized request unread, the daemon's side resets after its response.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(response).unwrap()
}

#[test]
fn the_vendor_tools_work_through_the_control_socket_while_the_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_demo(dir);
    // A stale socket from a daemon that did not exit cleanly is replaced.
    std::fs::create_dir_all(dir.join("demo-run/state")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(socket(dir)).unwrap());

    let mut daemon = Daemon::start(dir);
    wait_until_processed(dir, &mut daemon);
    let meta = std::fs::metadata(socket(dir)).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "only the daemon's user (and root) may connect");

    let order = "8HJ45678KL901234M";
    let found = ok(dir, &["lookup", order]);
    assert!(found.starts_with(&format!("paypal/{order}#0 sale issue: acme-pro")), "{found}");
    let serial = serial_in(&found);
    assert_eq!(replies_containing(dir, &serial).len(), 1, "the daemon answered the order once");

    let resent = ok(dir, &["resend", "paypal", order]);
    assert_eq!(resent, "1 reply(ies) queued, 1 sent, 0 failed\n");
    let copies = replies_containing(dir, &serial);
    assert_eq!(copies.len(), 2, "one more reply, with the identical serial: {copies:?}");
    assert!(copies.iter().any(|name| name.starts_with("keypost.resend.")), "{copies:?}");

    let revoked = ok(dir, &["revoke", "paypal", order, "--reason", "fraud"]);
    assert_eq!(revoked, format!("1 license(s) of paypal/{order} revoked\n"));
    assert!(ok(dir, &["lookup", order]).trim_end().ends_with("REVOKED (fraud)"));

    let issued = ok(dir, &["issue", "--product", "acme-pro", "--name", "Bo Ek", "--email", "bo@example.com"]);
    assert!(issued.starts_with("issued manual/M-") && issued.ends_with(": 2 sent, 0 failed\n"), "{issued}");

    let export = ok(dir, &["export", "--format", "jsonl"]);
    let records: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 7, "six lines from the mails and the manual one:\n{export}");
    let manual = records.iter().find(|r| r["provider"] == "manual").unwrap();
    assert_eq!(manual["license"]["licensee"], "Bo Ek");
    let paypal = records.iter().find(|r| r["order_id"] == order).unwrap();
    assert_eq!(paypal["revoked"]["reason"], "fraud");
    assert_eq!(paypal["resends"], 1);

    // A tool's failure reaches the user as it would without the daemon: error on stderr, exit 1.
    let missing = keypost(dir, &["resend", "paypal", "NO-SUCH-ORDER"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("error: order paypal/NO-SUCH-ORDER has no active license to send"), "{stderr}");
    let nothing = keypost(dir, &["lookup", "nobody@example.com"]);
    assert_eq!(
        (nothing.status.code(), nothing.stdout.as_slice()),
        (Some(1), &b"nothing found for \"nobody@example.com\"\n"[..])
    );

    // Garbage, an unknown command and an oversized request get an error response; the daemon goes on.
    let garbage = raw_request(&socket(dir), b"\x00\xffnot json\n");
    assert!(garbage.starts_with(r#"{"status":"error","message":"malformed request"#), "{garbage}");
    let unknown = raw_request(&socket(dir), b"{\"command\":\"drop_everything\"}\n");
    assert!(unknown.contains(r#""status":"error""#) && unknown.contains("unknown variant"), "{unknown}");
    let huge = raw_request(&socket(dir), &vec![b'x'; keypost::control::protocol::MAX_REQUEST_BYTES + 2]);
    assert!(huge.contains("longer than"), "{huge}");
    assert!(daemon.is_running(), "a bad request must not stop the daemon");
    assert!(ok(dir, &["lookup", "Bo Ek"]).contains("manual/M-"), "the daemon still answers");
    let csv_running = ok(dir, &["export", "--format", "csv"]);

    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("keypost stopped."), "{log}");
    assert!(!socket(dir).exists(), "the socket is removed on a clean exit");

    // The same commands without the daemon open the state themselves and print exactly the same.
    assert_eq!(ok(dir, &["export", "--format", "jsonl"]), export);
    assert_eq!(ok(dir, &["export", "--format", "csv"]), csv_running);
}

#[test]
fn a_request_that_never_ends_its_line_gets_an_error_and_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_demo(dir);
    let mut daemon = Daemon::start(dir);
    wait_until_processed(dir, &mut daemon);
    // Opens a connection and sends half a request, holding it open.
    let mut slow = UnixStream::connect(socket(dir)).unwrap();
    slow.write_all(br#"{"command":"lookup","#).unwrap();
    // Meanwhile another tool is answered.
    assert!(ok(dir, &["lookup", "jane.buyer@example.com"]).contains("REVOKED (refund)"));
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut response = String::new();
    slow.read_to_string(&mut response).unwrap();
    assert!(response.contains("no complete request within"), "{response}");
    assert!(daemon.is_running());
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn when_the_socket_cannot_be_made_the_daemon_still_fulfils_and_the_tools_say_why_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_demo(dir);
    // A state folder whose path is too long for a Unix socket (about 107 bytes).
    let state = format!("demo-run/state-{}", "x".repeat(120));
    let config = std::fs::read_to_string(dir.join("demo.toml")).unwrap();
    std::fs::write(dir.join("demo.toml"), config.replace("dir = \"demo-run/state\"", &format!("dir = \"{state}\"")))
        .unwrap();
    let mut daemon = Daemon::start(dir);
    let sends = dir.join("demo-run/outbox/sends.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sends.exists() {
        assert!(daemon.is_running(), "the daemon runs without its control socket");
        assert!(Instant::now() < deadline, "the daemon did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lookup = keypost(dir, &["lookup", "jane.buyer@example.com"]);
    assert!(daemon.is_running());
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("the order tools cannot reach keypost while it runs"), "{log}");
    assert_eq!(lookup.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&lookup.stderr);
    assert!(stderr.contains("is in use by a running keypost, which could not be asked: cannot connect"), "{stderr}");
}
