//! A private Dovecot per test, and a plain IMAP client to put mail in and look at folders.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use futures::TryStreamExt;
use keypost::endpoint::Security;
use keypost::mailbox::{ImapAuth, ImapConfig};

use super::{TestCa, chown_mail, free_port, order_mail, require, set_mode, stop_child, wait_listening};

pub const IMAP_USER: &str = "orders";
pub const IMAP_PASSWORD: &str = "correct horse battery staple";

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
             imap_idle_notify_interval = 3 secs\nmail_fsync = never\nauth_failure_delay = 0\n{capability_line}\n\
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

    /// Creates a folder (e.g. an archive to replay).
    pub async fn create(&mut self, folder: &str) {
        self.session.create(folder).await.unwrap();
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

    /// Every folder and how many messages it holds, by the server's names (`keypost.set-aside` on this Dovecot).
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

/// Where done mail settled now is filed, by this Dovecot's names (`keypost.done.2026-11`).
pub fn done_folder() -> String {
    format!("keypost.done.{}", keypost::mailbox::month(time::OffsetDateTime::now_utc()))
}

/// Where ignored mail settled now is filed (`keypost.ignored.2026-11`).
pub fn ignored_folder() -> String {
    format!("keypost.ignored.{}", keypost::mailbox::month(time::OffsetDateTime::now_utc()))
}
