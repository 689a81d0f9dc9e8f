//! Replies to buyers and notices to the vendor: rendering (pure) and sending (behind the [`Mailer`] trait).
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Problems, Security, validate_server};
use crate::secret::SecretSource;

pub mod files;
pub mod smtp;

/// `[outbox]`: exactly one of `[outbox.smtp]` or `[outbox.files]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransportConfig {
    /// Send through an SMTP server.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Write each reply as an `.eml` file into a folder (the embedded default; also for a dry run).
    #[serde(default)]
    pub files: Option<FilesConfig>,
}

/// `[outbox.smtp]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpConfig {
    /// Server name, e.g. `smtp.example.com`.
    pub host: String,
    /// Port; defaults to 465 for `tls`, 587 for `starttls`, 25 for `plain`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (default), `starttls`, or `plain` (loopback only, with `allow_plaintext`).
    #[serde(default = "default_security")]
    pub security: Security,
    /// Must be true for `security = "plain"`.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Extra CA certificate (PEM) to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Login name, when the server needs authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password source, with `user`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Timeout for one send, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Most connections kept open to the server.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
}

/// `[outbox.files]`.
#[derive(Debug, Clone, Deserialize)]
pub struct FilesConfig {
    /// Folder the `.eml` files are written to; relative to the config file's folder.
    pub dir: PathBuf,
}

fn default_security() -> Security {
    Security::Tls
}
fn default_timeout() -> u64 {
    30
}
fn default_pool() -> u32 {
    2
}

impl TransportConfig {
    pub fn validate(&self, problems: &mut Problems) {
        match (&self.smtp, &self.files) {
            (Some(_), Some(_)) => problems.error("outbox", "set either [outbox.smtp] or [outbox.files], not both"),
            (None, None) => problems.error("outbox", "needs [outbox.smtp] or [outbox.files]"),
            _ => {}
        }
        if let Some(smtp) = &self.smtp {
            validate_server("outbox.smtp", &smtp.host, smtp.security, smtp.allow_plaintext, problems);
            if smtp.user.is_some() != smtp.password.is_some() {
                problems.error("outbox.smtp", "user and password go together");
            }
            if smtp.password.as_ref().is_some_and(SecretSource::is_inline) {
                problems
                    .warn("outbox.smtp.password", "inline secret in the config file; prefer file, env or credential");
            }
            if smtp.timeout_secs == 0 {
                problems.error("outbox.smtp.timeout_secs", "must be at least 1");
            }
            if smtp.pool_size == 0 {
                problems.error("outbox.smtp.pool_size", "must be at least 1");
            }
        }
    }
}

/// `[reply]`: who replies come from and who the vendor is. The fulfilment issue fills in the rest.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplyConfig {}

impl ReplyConfig {
    pub fn validate(&self, _problems: &mut Problems) {}
}

/// A reply template: subject, text body, optional HTML body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplyTemplateConfig {}

impl ReplyTemplateConfig {
    pub fn validate(&self, _key: &str, _problems: &mut Problems) {}
}

/// A fully rendered message ready for the wire, as kept in the durable outbox: re-sending after a restart
/// sends the same bytes with the same Message-ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Outgoing {
    pub message_id: String,
    /// Envelope sender (MAIL FROM).
    pub from: String,
    /// Envelope recipients (RCPT TO), Bcc included.
    pub to: Vec<String>,
    /// The RFC 5322 message.
    pub bytes: Vec<u8>,
}

/// Why a send failed, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a 4xx reply, a timeout, a dropped connection.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying will not help: a 5xx reply, an address the server refuses.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Somewhere replies can be sent.
#[allow(async_fn_in_trait)]
pub trait Mailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError>;
}
