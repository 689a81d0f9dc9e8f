//! A recording SMTP server (aiosmtpd with `recording_sink.py`): keeps every accepted message byte for byte with
//! its arrival time, and refuses with 4xx or 5xx while the test says so.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keypost::reply::SmtpConfig;

use super::{free_port, require, smtp_config, stop_child, wait_listening};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/support/recording_sink.py");

/// How the sink answers RCPT TO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Accept,
    /// 451 to every recipient.
    Defer,
    /// 550 to every recipient except the vendor.
    RefuseBuyers,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Seconds since the epoch when DATA ended (the server's clock, which is this machine's).
    pub at: f64,
    pub recipients: Vec<String>,
    pub bytes: Vec<u8>,
}

pub struct RecordingSink {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl RecordingSink {
    /// Accepts mail on a free loopback port; `vendor` is the one address `RefuseBuyers` still accepts.
    pub fn start(vendor: &str) -> Self {
        let python = require("/usr/bin/python3", "python3");
        let probe = Command::new(&python).args(["-c", "import aiosmtpd"]).status().unwrap();
        assert!(probe.success(), "{}", super::missing("aiosmtpd not found", "python3-aiosmtpd"));
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&python)
                .arg(SCRIPT)
                .args(["127.0.0.1", &port.to_string()])
                .arg(dir.path())
                .arg(vendor)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_listening(port, &mut child) {
                return Self { dir, port, child };
            }
            stop_child(&mut child);
        }
        panic!("the recording SMTP sink (aiosmtpd) did not start");
    }

    pub fn smtp_config(&self) -> SmtpConfig {
        smtp_config(self.port)
    }

    /// Takes effect from the next RCPT TO.
    pub fn set_mode(&self, mode: SinkMode) {
        let text = match mode {
            SinkMode::Accept => "accept",
            SinkMode::Defer => "defer",
            SinkMode::RefuseBuyers => "refuse-buyers",
        };
        let path = self.dir.path().join("mode");
        std::fs::write(path.with_extension("tmp"), text).unwrap();
        std::fs::rename(path.with_extension("tmp"), path).unwrap();
    }

    /// How many RCPTs were answered 451 so far.
    pub fn deferred(&self) -> usize {
        self.log_lines("deferred.log")
    }

    /// How many RCPTs were answered 550 so far.
    pub fn refused(&self) -> usize {
        self.log_lines("refused.log")
    }

    /// How many messages were accepted so far (cheap: counts files).
    pub fn count(&self) -> usize {
        let entries = std::fs::read_dir(self.messages_dir());
        let is_message = |entry: &std::fs::DirEntry| entry.path().extension().is_some_and(|ext| ext == "eml");
        entries.map(|entries| entries.filter(|e| e.as_ref().is_ok_and(is_message)).count()).unwrap_or(0)
    }

    /// Waits up to `timeout` until `condition(count())` holds; returns the last count.
    pub fn wait_count(&self, timeout: Duration, condition: impl Fn(usize) -> bool) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count();
            if condition(count) || Instant::now() >= deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every accepted message, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        let log = std::fs::read_to_string(self.dir.path().join("arrivals.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let mut fields = line.split(' ');
                let name = fields.next().unwrap();
                let at = fields.next().unwrap().parse().unwrap();
                let recipients = fields.next().unwrap_or_default().split(',').map(str::to_owned).collect();
                let bytes = std::fs::read(self.messages_dir().join(format!("{name}.eml"))).unwrap();
                Arrival { at, recipients, bytes }
            })
            .collect()
    }

    /// The accepted messages as text, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        self.arrivals().into_iter().map(|a| String::from_utf8_lossy(&a.bytes).into_owned()).collect()
    }

    fn messages_dir(&self) -> PathBuf {
        self.dir.path().join("messages")
    }

    fn log_lines(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(name)).map(|text| text.lines().count()).unwrap_or(0)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RecordingSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
