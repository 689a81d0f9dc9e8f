//! The built `keypost` binary as a user runs it: a generated config in a temp dir pointing at the test's
//! Dovecot and SMTP server, `keypost run` as a child process (stopped by its PID), and the vendor's tools.
//! Orders are the PayPal template fixture, one order id, buyer and Message-ID each, DKIM-signed by a key the
//! config pins (DNS off).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::TestSigner;

pub const VENDOR: &str = "vendor@acme.example";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/paypal/sale_plain_text.eml");

/// Signed PayPal orders, numbered.
pub struct Orders {
    signer: TestSigner,
    template: String,
}

impl Default for Orders {
    fn default() -> Self {
        Self::new()
    }
}

impl Orders {
    pub fn new() -> Self {
        let fixture = std::fs::read_to_string(FIXTURE).unwrap();
        // The fixture's Authentication-Results would not be believed anyway (no authserv_id): drop it, and sign.
        let template = fixture.lines().filter(|line| !line.starts_with("Authentication-Results:")).collect::<Vec<_>>();
        let template = template.join("\r\n") + "\r\n";
        assert!(template.contains("5TY12345AB678901C"), "the fixture changed");
        Self { signer: TestSigner::new("paypal.com", "e2e"), template }
    }

    /// The order id of order `n` (PayPal's 17-character form).
    pub fn id(n: usize) -> String {
        format!("E2E{n:014}")
    }

    /// Order `n` as the provider sends it, signed.
    pub fn mail(&self, n: usize) -> Vec<u8> {
        let mail = self
            .template
            .replace("5TY12345AB678901C", &Self::id(n))
            .replace("jane.buyer@example.com", &format!("buyer{n}@example.com"))
            .replace("Example Labs Ltd", &format!("Licensee {n}"))
            .replace("pp-sale-1@paypal.com", &format!("e2e-{n}@paypal.com"));
        self.signer.sign(&mail).into_bytes()
    }

    /// The `[trust]` section trusting exactly this signer.
    pub fn trust_toml(&self) -> String {
        format!("[trust]\ndns = false\nrecipients = [\"sales@vendor.example\"]\n\n{}", self.signer.pinned_toml())
    }
}

/// Order ids (`E2E` + 14 digits) each message mentions, once per message.
pub fn order_ids(message: &str) -> Vec<String> {
    let mut ids: Vec<String> = message
        .match_indices("E2E")
        .filter_map(|(at, _)| message.get(at..at + 17))
        .filter(|id| id.get(3..).is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit())))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Whether a message is a license reply (not a vendor alert), by its deterministic Message-ID.
pub fn is_reply(message: &str) -> bool {
    message.contains("Message-ID: <keypost.reply.")
}

/// Order id -> every license reply that mentions it.
pub fn replies_by_order<'a>(messages: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Vec<&'a str>> {
    let mut by_order: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for message in messages.into_iter().filter(|m| is_reply(m)) {
        for id in order_ids(message) {
            by_order.entry(id).or_default().push(message);
        }
    }
    by_order
}

/// Asserts that each of orders `0..count` got exactly one reply, and nothing else was answered.
pub fn assert_one_reply_each<'a>(messages: impl IntoIterator<Item = &'a str>, count: usize) {
    let by_order = replies_by_order(messages);
    let missing: Vec<String> = (0..count).map(Orders::id).filter(|id| !by_order.contains_key(id)).collect();
    let doubled: Vec<(&String, usize)> =
        by_order.iter().filter(|(_, replies)| replies.len() != 1).map(|(id, r)| (id, r.len())).collect();
    assert!(missing.is_empty(), "{} order(s) without a reply: {missing:?}", missing.len());
    assert!(doubled.is_empty(), "orders answered more than once: {doubled:?}");
    assert_eq!(by_order.len(), count, "replies for orders that were never sent");
}

/// The configuration `keypost run` gets: IMAP and SMTP on loopback without TLS, 1 s polls, a product whose
/// SKU the PayPal fixture carries, no vendor copies (alerts still go to the vendor). `extra` is appended.
pub fn config(imap_port: u16, smtp_port: u16, orders: &Orders, extra: &str) -> String {
    format!(
        r#"
[state]
dir = "state"

[mailbox.imap]
host = "127.0.0.1"
port = {imap_port}
security = "plain"
allow_plaintext = true
user = "{user}"
password = {{ inline = "{password}" }}
poll_interval_secs = 1
command_timeout_secs = 10

[outbox.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
allow_plaintext = true
timeout_secs = 5

[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "{VENDOR}"
vendor_copy = "none"
retry_after_secs = 1

[limits]
per_buyer_per_hour = 1000
per_provider_per_hour = 1000000

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = {{ scheme = "name-cbc", key = {{ inline = "0123456789abcdef0123456789abcdef" }} }}

{trust}
{extra}
"#,
        user = super::dovecot::IMAP_USER,
        password = super::IMAP_PASSWORD,
        trust = orders.trust_toml(),
    )
}

/// A temp dir with `keypost.toml`, and the `keypost run` child when one is running.
pub struct Keypost {
    dir: tempfile::TempDir,
    child: Option<Child>,
    runs: usize,
}

impl Keypost {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keypost.toml"), config).unwrap();
        Self { dir, child: None, runs: 0 }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `keypost --config keypost.toml ARGS`, in the temp dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = super::keypost(self.dir.path(), &["--config", "keypost.toml"]);
        command.args(args);
        command
    }

    /// Starts `keypost run`; its log goes to `run-N.log` (see [`Keypost::log`]).
    pub fn start(&mut self) {
        self.start_with(|_| {});
    }

    /// Starts `keypost run` after `setup` adjusted the command (environment, log level).
    pub fn start_with(&mut self, setup: impl FnOnce(&mut Command)) {
        assert!(self.child.is_none(), "keypost is already running");
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs)).unwrap();
        let mut command = self.command(&["run"]);
        command.env("KEYPOST_LOG", "keypost=info").env("NO_COLOR", "1").stdout(Stdio::null()).stderr(log);
        setup(&mut command);
        self.child = Some(command.spawn().unwrap());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("keypost is not running").id()
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("keypost is not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends SIGTERM (the child keeps running until it exits by itself).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("keypost is not running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a running keypost with SIGTERM and asserts a clean exit.
    pub fn stop(&mut self) {
        self.terminate();
        let status = self.wait_exit(Duration::from_secs(20));
        assert!(status.is_some_and(|s| s.success()), "keypost did not stop cleanly: {status:?}\n{}", self.log());
    }

    /// Runs a vendor tool (`lookup`, `export`, ...) to completion.
    pub fn tool(&self, args: &[&str]) -> Output {
        self.command(args).env("KEYPOST_LOG", "error").output().unwrap()
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("run-{run}.log"))
    }

    /// The log of every `keypost run` so far, in order.
    pub fn log(&self) -> String {
        (1..=self.runs).map(|run| std::fs::read_to_string(self.log_path(run)).unwrap_or_default()).collect()
    }

    /// The log of the latest start only.
    pub fn last_run_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
    }

    /// The peak resident set size of the running child (`VmHWM` in /proc), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Keypost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
