//! SMTP sinks: Postfix's smtp-sink (plaintext, 4xx/5xx on demand) and aiosmtpd (STARTTLS or implicit TLS).
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keypost::reply::SmtpConfig;

use super::{TestCa, free_port, require, set_mode, stop_child, wait_listening};

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
        assert!(probe.success(), "{}", super::missing("aiosmtpd not found", "python3-aiosmtpd"));
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
