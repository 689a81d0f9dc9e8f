//! Shared test helpers: temp dirs, spawning Dovecot and SMTP servers on loopback, running the built binary
//! ([`keypost`]) and the embedded demo ([`copy_demo`]).
//! Every server gets its own config in a temp dir and an ephemeral port on 127.0.0.1, and is stopped on drop.
//! A missing server binary fails the test with the Debian package to install: tests never skip silently.
#![allow(dead_code)] // each test module uses a different part

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use keypost::secret::SecretSource;

pub mod binary;
mod dkim;
mod dovecot;
mod recording;
mod smtp;
mod tls;

pub use self::binary::{Keypost, Orders};
pub use self::dkim::TestSigner;
pub use self::dovecot::{Dovecot, IMAP_PASSWORD, TestImap, done_folder, ignored_folder, imap_config};
pub use self::recording::{RecordingSink, SinkMode};
pub use self::smtp::{AiosmtpdSink, SinkTls, SmtpSink, smtp_config};
pub use self::tls::TestCa;

/// The built `keypost` binary as a user runs it: in `dir`, with `args`, without the test's own KEYPOST_CONFIG,
/// its log at error level (a test that reads the log sets KEYPOST_LOG again).
pub fn keypost(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keypost"));
    command.current_dir(dir).args(args).env_remove("KEYPOST_CONFIG").env("KEYPOST_LOG", "error");
    command
}

/// Copies the embedded demo into `to`: `demo.toml`, its reply text and the sample Maildir (run it there with
/// `--config demo.toml`; its state and outbox land in `to/demo-run`).
pub fn copy_demo(to: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for file in ["demo.toml", "demo-reply.txt"] {
        std::fs::copy(examples.join(file), to.join(file)).unwrap();
    }
    std::fs::create_dir_all(to.join("demo-maildir/new")).unwrap();
    for entry in std::fs::read_dir(examples.join("demo-maildir/new")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("demo-maildir/new").join(entry.file_name())).unwrap();
    }
}

/// The Debian packages the real-server tests need (Dovecot, Postfix's smtp-sink, aiosmtpd, openssl for their
/// certificates, nginx for download links); `.ci/test-all` installs them.
pub const SERVER_PACKAGES: &str = "dovecot-imapd postfix python3-aiosmtpd openssl nginx";

/// Fails with the package to install when a server binary is missing.
pub fn require(binary: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(binary);
    assert!(path.exists(), "{}", missing(&format!("{binary} not found"), package));
    path
}

/// Why a real-server test cannot run: what is missing, its package, every package these tests need and the
/// command that installs them.
pub fn missing(what: &str, package: &str) -> String {
    format!(
        "{what}: this test runs a real server on 127.0.0.1 and needs the Debian package {package}. The \
         real-server tests need {SERVER_PACKAGES}: install them with `sudo apt-get install -y {SERVER_PACKAGES}`, \
         or run every test with `sudo bash .ci/test-all`, which installs them first"
    )
}

/// A port nothing listens on right now (bind port 0, then release it). The caller retries on collision.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until something accepts connections on the port, or the child exits.
pub fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub fn stop_child(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown_mail(path: &Path) {
    let status = Command::new("chown").args(["-R", "mail:mail"]).arg(path).status().unwrap();
    assert!(status.success(), "chown mail:mail failed (the tests run as root, like CI)");
}

/// A small order email whose Subject carries its number.
pub fn order_mail(n: usize) -> Vec<u8> {
    format!(
        "From: shop@payments.example\r\nTo: vendor@example.com\r\nSubject: Order {n}\r\n\
         Message-ID: <order-{n}@payments.example>\r\nDate: Sun, 22 Nov 2026 02:00:00 +0000\r\n\r\n\
         Order {n}: 1 x Acme Pro for Jane Doe.\r\n"
    )
    .into_bytes()
}

/// The number in `Subject: Order N`, to check which message came back.
pub fn order_number(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("Subject: Order ").unwrap() + "Subject: Order ".len();
    text[start..].split_whitespace().next().unwrap().parse().unwrap()
}

/// A secret given inline (tests only; `keypost check` warns about it in real configs).
pub fn inline_secret(value: &str) -> SecretSource {
    SecretSource::Inline(value.to_owned().into())
}

/// Shows keypost's log lines in a failing test's output.
pub fn show_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("keypost=debug").try_init();
}

/// `unwrap` that prints the whole error chain.
pub trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T> OrPanic<T> for anyhow::Result<T> {
    fn or_panic(self) -> T {
        self.unwrap_or_else(|err| panic!("{err:#}"))
    }
}

/// Of a kill test's counts of orders answered after each kill: how many kills came after the run in between had
/// answered more and before all `total` were answered, i.e. landed while orders were being answered.
pub fn killed_mid_drain(progress: &[usize], total: usize) -> usize {
    let mut before = 0;
    progress
        .iter()
        .filter(|&&answered| {
            let moved = answered > before && answered < total;
            before = answered;
            moved
        })
        .count()
}
