//! Replies to buyers and notices to the vendor: rendering (pure) and sending (behind the [`Mailer`] trait).
use std::path::PathBuf;

use serde::Deserialize;

use crate::endpoint::{Security, validate_server};
use crate::problems::Problems;
use crate::secret::SecretSource;

mod alert;
pub mod digest;
pub mod files;
pub mod link;
pub mod placeholder;
mod render;
pub mod smtp;
mod wire;

pub use alert::{Alert, Delivery, RevokedLine};
pub use render::{LicenseReply, ProductReply, RenderError, Renderer};

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

/// `[reply]`: who replies come from, who the vendor is, the default reply template, and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ReplyConfig {
    /// Sender of every reply and alert, e.g. `"Acme Licenses <licenses@acme.example>"`; its domain ends each
    /// Message-ID. Needed by `keypost run`.
    pub from: Option<String>,
    /// Where buyers' answers go, when not to `from`.
    pub reply_to: Option<String>,
    /// The vendor's address: copies of replies, and an alert for every review, set-aside message and failure.
    /// Needed by `keypost run`.
    pub vendor: Option<String>,
    /// How the vendor sees each reply: `bcc` (default), `notice` (a separate short message) or `none`.
    pub vendor_copy: VendorCopy,
    /// The default reply template; a product's `reply` replaces it. Without one, a built-in text is used.
    pub template: Option<ReplyTemplateConfig>,
    /// The reply to a renewal or an extension (a licence that continues an earlier one), for every product.
    /// Without one, a built-in text that says the licence was renewed and `{expires}`.
    pub renewal: Option<ReplyTemplateConfig>,
    /// Sends tried per message before it is given up as failed and the vendor alerted (default 8).
    pub send_attempts: u32,
    /// Seconds before the first retry of a failed send; four times longer for each further retry, at most 6 hours
    /// (default 2).
    pub retry_after_secs: u64,
}

impl Default for ReplyConfig {
    fn default() -> Self {
        Self {
            from: None,
            reply_to: None,
            vendor: None,
            vendor_copy: VendorCopy::Bcc,
            template: None,
            renewal: None,
            send_attempts: 8,
            retry_after_secs: 2,
        }
    }
}

/// How the vendor is copied on replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorCopy {
    /// Blind copy of the reply itself.
    #[default]
    Bcc,
    /// A separate short notice (order, product, licensee; no serial).
    Notice,
    /// No copy (alerts are still sent).
    None,
}

impl ReplyConfig {
    pub fn validate(&self, problems: &mut Problems) {
        for (key, value) in
            [("reply.from", &self.from), ("reply.reply_to", &self.reply_to), ("reply.vendor", &self.vendor)]
        {
            if let Some(value) = value
                && let Err(err) = value.parse::<lettre::message::Mailbox>()
            {
                problems.error(key, format!("{value:?} is not a mail address: {err}"));
            }
        }
        if self.send_attempts == 0 {
            problems.error("reply.send_attempts", "must be at least 1");
        }
        if self.retry_after_secs == 0 {
            problems.error("reply.retry_after_secs", "must be at least 1");
        }
        if let Some(template) = &self.template {
            template.validate("reply.template", problems);
        }
        if let Some(template) = &self.renewal {
            template.validate("reply.renewal", problems);
        }
    }

    /// What `keypost run` needs beyond [`ReplyConfig::validate`]: a sender and a vendor.
    pub fn validate_for_sending(&self, problems: &mut Problems) {
        if self.from.is_none() {
            problems.error("reply.from", "needed to send replies");
        }
        if self.vendor.is_none() {
            problems.error("reply.vendor", "needed to send copies and alerts to the vendor");
        }
    }
}

/// A reply template: subject, text body, optional HTML body. Placeholders: `{licensee}` (the exact name to
/// type), `{serial}`, `{product}`, `{seats}`, `{order_id}`, `{provider}`, `{buyer_name}`, `{expires}` (the last
/// valid day, or words for a perpetual licence), `{download_url}`, `{activation_url}`, and `{x_url}` for any of them percent-encoded; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplyTemplateConfig {
    /// Subject line, e.g. `"Your {product} license"`.
    pub subject: String,
    /// Plain-text body: a string, or `{ file = "reply.txt" }` relative to the config file's folder.
    pub text: BodySource,
    /// HTML body, same forms; values are HTML-escaped in it.
    #[serde(default)]
    pub html: Option<BodySource>,
}

/// A body written inline or kept in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum BodySource {
    /// The text itself.
    Inline(String),
    File {
        /// Path of the file, relative to the config file's folder.
        file: PathBuf,
    },
}

impl ReplyTemplateConfig {
    /// Checks the subject and inline bodies; files are checked when loaded (see [`Renderer::new`]).
    pub fn validate(&self, key: &str, problems: &mut Problems) {
        check_placeholders(&format!("{key}.subject"), &self.subject, problems);
        if let BodySource::Inline(text) = &self.text {
            check_placeholders(&format!("{key}.text"), text, problems);
        }
        if let Some(BodySource::Inline(html)) = &self.html {
            check_placeholders(&format!("{key}.html"), html, problems);
        }
    }
}

/// Reports a template's placeholder problem under its key.
pub fn check_placeholders(key: &str, template: &str, problems: &mut Problems) {
    if let Err(err) = placeholder::check(template) {
        problems.error(key, err);
    }
}

/// A fully rendered message ready for the wire, as kept in the durable outbox: re-sending after a restart
/// sends the same bytes with the same Message-ID (kept here without angle brackets).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Outgoing {
    pub message_id: String,
    /// Envelope sender (MAIL FROM).
    pub from: String,
    /// Envelope recipients (RCPT TO), Bcc included.
    pub to: Vec<String>,
    /// The RFC 5322 message (kept as a JSON string when it is UTF-8, see `wire.rs`).
    #[serde(with = "wire")]
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
