//! Shared test helpers: temp dirs, spawning Dovecot and SMTP servers on loopback, running the built binary.
//! Every server gets its own config in a temp dir and an ephemeral port on 127.0.0.1, and is stopped on drop.
//! A missing server binary fails the test with the Debian package to install: tests never skip silently.
#![allow(dead_code)] // each test module uses a different part

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use keypost::config::Security;
use keypost::mailbox::{ImapAuth, ImapConfig};
use keypost::reply::SmtpConfig;
use keypost::secret::SecretSource;

pub const IMAP_USER: &str = "orders";
pub const IMAP_PASSWORD: &str = "correct horse battery staple";

/// Fails with the package to install when a server binary is missing.
pub fn require(binary: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(binary);
    assert!(
        path.exists(),
        "{binary} not found: this test needs the Debian package {package} (apt-get install -y {package})"
    );
    path
}

/// A port nothing listens on right now (bind port 0, then release it). The caller retries on collision.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until something accepts connections on the port, or the child exits.
fn wait_listening(port: u16, child: &mut Child) -> bool {
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

fn stop_child(child: &mut Child) {
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

/// A private Dovecot with one passwd-file user whose Maildir is owned by `mail`.
pub struct Dovecot {
    dir: tempfile::TempDir,
    pub port: u16,
    /// Implicit-TLS port, when started with [`Dovecot::start_tls`].
    pub imaps_port: u16,
    hidden: Vec<String>,
    /// Certificate and key: TLS offered on both listeners (STARTTLS and implicit).
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

/// Dovecot 2.3's capabilities after login; `imap_capability` set to a subset hides the others.
const DOVECOT_CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
    THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN \
    NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH \
    LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

impl Dovecot {
    pub fn start() -> Self {
        Self::start_hiding(&[])
    }

    /// Starts Dovecot with these capabilities (e.g. `IDLE`, `MOVE`) left out of its CAPABILITY list.
    pub fn start_hiding(hidden: &[&str]) -> Self {
        Self::start_with(hidden, None)
    }

    /// Starts Dovecot offering STARTTLS on `port` and implicit TLS on `imaps_port`, with a cert from `ca`.
    pub fn start_tls(ca: &TestCa) -> Self {
        Self::start_with(&[], Some((ca.server_cert.clone(), ca.server_key.clone())))
    }

    fn start_with(hidden: &[&str], tls: Option<(PathBuf, PathBuf)>) -> Self {
        require("/usr/sbin/dovecot", "dovecot-imapd");
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(IMAP_USER)).unwrap();
        chown_mail(&home);
        std::fs::write(dir.path().join("passwd"), format!("{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}::::::\n")).unwrap();
        let hidden = hidden.iter().map(|cap| cap.to_string()).collect();
        let mut dovecot = Self { dir, port: 0, imaps_port: 0, hidden, tls, child: None };
        dovecot.launch_on_free_port();
        dovecot
    }

    fn launch_on_free_port(&mut self) {
        for _ in 0..5 {
            self.port = free_port();
            self.imaps_port = if self.tls.is_some() { free_port() } else { 0 };
            if self.launch() {
                return;
            }
        }
        panic!("Dovecot did not start; log:\n{}", self.log());
    }

    /// Runs `dovecot -F` with a config for the current port; false when it exited (port taken).
    fn launch(&mut self) -> bool {
        let conf = self.conf_path();
        std::fs::write(&conf, self.config_text()).unwrap();
        let mut child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait_listening(self.port, &mut child);
        if up {
            self.child = Some(child);
        } else {
            stop_child(&mut child);
        }
        up
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    fn config_text(&self) -> String {
        let dir = self.dir.path().display();
        let ssl = match &self.tls {
            Some((cert, key)) => format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}", cert.display(), key.display()),
            None => "ssl = no".to_owned(),
        };
        let capabilities: Vec<&str> =
            DOVECOT_CAPABILITIES.split_whitespace().filter(|cap| !self.hidden.iter().any(|h| h == cap)).collect();
        let capability_line = if self.hidden.is_empty() {
            String::new()
        } else {
            format!("imap_capability = {}", capabilities.join(" "))
        };
        format!(
            "base_dir = {dir}/run\nstate_dir = {dir}/state\nlog_path = {dir}/dovecot.log\n\
             instance_name = keypost-test-{port}\nprotocols = imap\nlisten = 127.0.0.1\n{ssl}\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\ndefault_login_user = dovenull\n\
             default_internal_user = dovecot\nfirst_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
             imap_idle_notify_interval = 3 secs\nmail_fsync = never\n{capability_line}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {dir}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=mail gid=mail home={dir}/home/%u\n}}\n\
             namespace inbox {{\n  inbox = yes\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
             \x20 inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n",
            port = self.port,
            imaps_port = self.imaps_port,
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Stops the server (clients see their connections dropped) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.signal_stop() {
            stop_child(&mut child);
        }
    }

    /// Kicks the clients, then sends the master SIGTERM. Running imap processes outlive the master and keep
    /// serving their clients, hence the kick. (`doveadm stop` would also block until the master is gone.)
    fn signal_stop(&mut self) -> Option<Child> {
        let child = self.child.take()?;
        let _ = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(self.conf_path())
            .args(["kick", IMAP_USER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        Some(child)
    }

    /// Starts it again on the same port, with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.launch(), "Dovecot did not restart on port {}; log:\n{}", self.port, self.log());
    }

    /// Runs `doveadm -c CONF ARGS...` and fails the test if it fails.
    pub fn doveadm(&self, args: &[&str]) {
        let output = Command::new(require("/usr/bin/doveadm", "dovecot-core"))
            .arg("-c")
            .arg(self.conf_path())
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "doveadm {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The source's configuration for this server: loopback plaintext, LOGIN.
    pub fn imap_config(&self) -> ImapConfig {
        imap_config(self.port)
    }

    /// An independent client for setting up and checking the mailbox.
    pub async fn client(&self) -> TestImap {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        let session = client.login(IMAP_USER, IMAP_PASSWORD).await.map_err(|(err, _)| err).unwrap();
        TestImap { session }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // The master takes ~2 s to exit after SIGTERM; nothing waits for it here, so a test does not either.
        if let Some(mut child) = self.signal_stop() {
            std::thread::spawn(move || child.wait());
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_mail(path: &Path) {
    let status = Command::new("chown").args(["-R", "mail:mail"]).arg(path).status().unwrap();
    assert!(status.success(), "chown mail:mail failed (the tests run as root, like CI)");
}

/// Loopback plaintext IMAP to `port` as the test user, LOGIN, 1 s polls, 10 s command timeout.
pub fn imap_config(port: u16) -> ImapConfig {
    let text = format!(
        "host = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\nallow_plaintext = true\nuser = \"{IMAP_USER}\"\n\
         password = {{ inline = \"{IMAP_PASSWORD}\" }}\npoll_interval_secs = 1\ncommand_timeout_secs = 10\n"
    );
    let config: ImapConfig = toml::from_str(&text).unwrap();
    assert_eq!((config.security, config.auth), (Security::Plain, ImapAuth::Login));
    config
}

/// A plain async-imap session used by tests to put mail in and look at folders.
pub struct TestImap {
    session: async_imap::Session<tokio::net::TcpStream>,
}

impl TestImap {
    pub async fn append(&mut self, folder: &str, message: &[u8]) {
        self.session.append(folder, None, None, message).await.unwrap();
    }

    /// Appends with flags, e.g. `(\\Deleted)`.
    pub async fn session_append_flagged(&mut self, folder: &str, message: &[u8], flags: &str) {
        self.session.append(folder, Some(flags), None, message).await.unwrap();
    }

    /// Appends `order_mail(n)` for each n in `numbers`.
    pub async fn append_orders(&mut self, folder: &str, numbers: impl IntoIterator<Item = usize>) {
        for n in numbers {
            self.append(folder, &order_mail(n)).await;
        }
    }

    /// Every folder and how many messages it holds, by the server's names (`keypost.done` on this Dovecot).
    pub async fn folder_counts(&mut self) -> BTreeMap<String, u32> {
        let names: Vec<_> = self.session.list(Some(""), Some("*")).await.unwrap().try_collect().await.unwrap();
        let mut counts = BTreeMap::new();
        let selectable = |name: &&async_imap::types::Name| {
            !name.attributes().iter().any(|a| matches!(a, async_imap::types::NameAttribute::NoSelect))
        };
        for name in names.iter().filter(selectable).map(|name| name.name().to_owned()) {
            let status = self.session.status(&name, "(MESSAGES)").await.unwrap();
            counts.insert(name, status.exists);
        }
        counts
    }

    pub async fn logout(mut self) {
        self.session.logout().await.unwrap();
    }
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

/// Postfix's smtp-sink on a free loopback port, dumping each message to a file. `extra` adds options such as
/// `["-r", "RCPT"]` (answer RCPT with a 4xx) or `["-f", "DATA"]` (answer DATA with a 5xx).
pub struct SmtpSink {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl SmtpSink {
    pub fn start(extra: &[&str]) -> Self {
        let binary = require("/usr/sbin/smtp-sink", "postfix");
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o777); // smtp-sink runs as nobody
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&binary)
                .args(["-u", "nobody", "-d"])
                .arg(format!("{}/%M.", dir.path().display()))
                .args(extra)
                .arg(format!("127.0.0.1:{port}"))
                .arg("100")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_listening(port, &mut child) {
                return Self { dir, port, child };
            }
            stop_child(&mut child);
        }
        panic!("smtp-sink did not start");
    }

    /// The mailer's configuration for this sink: loopback plaintext, no authentication.
    pub fn smtp_config(&self) -> SmtpConfig {
        smtp_config(self.port)
    }

    /// The dumped transactions (`X-Mail-Args:`/`X-Rcpt-Args:` envelope lines, then the message), waiting up to
    /// `timeout` for at least `count` of them.
    pub fn received(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut dumps: Vec<String> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                .collect();
            if dumps.len() >= count || Instant::now() >= deadline {
                dumps.sort();
                return dumps;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loopback plaintext SMTP to `port`, with a short timeout.
pub fn smtp_config(port: u16) -> SmtpConfig {
    let text = format!(
        "host = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\nallow_plaintext = true\ntimeout_secs = 5\n"
    );
    toml::from_str(&text).unwrap()
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

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, made with openssl.
pub struct TestCa {
    dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let openssl = require("/usr/bin/openssl", "openssl");
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(
            path("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=keypost test CA", "-days", "2"],
            ]
            .concat(),
            [&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            let output = Command::new(&openssl).current_dir(dir.path()).args(&args).output().unwrap();
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        set_mode(&path("server.key"), 0o644); // read by the servers' unprivileged processes in tests only
        Self { ca_cert: path("ca.pem"), server_cert: path("server.pem"), server_key: path("server.key"), dir }
    }
}

/// How an aiosmtpd sink protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// STARTTLS, required before MAIL FROM.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// aiosmtpd storing every message into a Maildir, with TLS from `ca`'s server certificate.
pub struct AiosmtpdSink {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl AiosmtpdSink {
    pub fn start(tls: SinkTls, ca: &TestCa) -> Self {
        let python = require("/usr/bin/python3", "python3");
        let probe = Command::new(&python).args(["-c", "import aiosmtpd"]).status().unwrap();
        assert!(probe.success(), "aiosmtpd not found: this test needs the Debian package python3-aiosmtpd");
        let dir = tempfile::tempdir().unwrap();
        let (cert_flag, key_flag) =
            if tls == SinkTls::Implicit { ("--smtpscert", "--smtpskey") } else { ("--tlscert", "--tlskey") };
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
                .arg(cert_flag)
                .arg(&ca.server_cert)
                .arg(key_flag)
                .arg(&ca.server_key)
                .arg(dir.path().join("Maildir"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_listening(port, &mut child) {
                return Self { dir, port, child };
            }
            stop_child(&mut child);
        }
        panic!("aiosmtpd did not start");
    }

    /// Messages stored so far, waiting up to `timeout` for at least `count`.
    pub fn received(&self, count: usize, timeout: Duration) -> Vec<String> {
        let new = self.dir.path().join("Maildir").join("new");
        let deadline = Instant::now() + timeout;
        loop {
            let messages: Vec<String> = std::fs::read_dir(&new)
                .map(|entries| entries.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
                .unwrap_or_default();
            if messages.len() >= count || Instant::now() >= deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AiosmtpdSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
