//! Where order emails come from: a local Maildir or an IMAP folder, behind the one small [`Source`] trait.
//! A source never deletes a message: it hands out waiting messages and moves settled ones to a folder.
//!
//! Done and ignored mail is filed by the month it was settled in (`keypost/done/2026-11`), so no folder grows
//! without bound: a server's cost per move grows with the destination's size, and keypost never reads these
//! folders again. Set-aside mail stays in one folder: the vendor works through it.
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::endpoint::{Security, validate_server};
use crate::problems::Problems;
use crate::secret::SecretSource;

pub mod archive;
pub mod aside;
pub mod imap;
pub mod maildir;

/// `[mailbox]`: exactly one of `[mailbox.maildir]` or `[mailbox.imap]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MailboxConfig {
    /// A local Maildir (the embedded default; also what a local MTA delivers to).
    #[serde(default)]
    pub maildir: Option<MaildirConfig>,
    /// An IMAP folder watched with IDLE, or polled where the server has no IDLE.
    #[serde(default)]
    pub imap: Option<ImapConfig>,
}

/// `[mailbox.maildir]`.
#[derive(Debug, Clone, Deserialize)]
pub struct MaildirConfig {
    /// The Maildir (with `new/`, `cur/`, `tmp/`); relative to the config file's folder.
    pub path: PathBuf,
    /// How often `keypost run` looks for new mail, in seconds.
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
    /// Demo only: when the Maildir does not exist yet, first fill it with a copy of this one (relative to the
    /// config file's folder), so a demo can be run again from a fresh state.
    #[serde(default)]
    pub seed_from: Option<PathBuf>,
}

/// `[mailbox.imap]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ImapConfig {
    /// Server name, e.g. `imap.example.com`.
    pub host: String,
    /// Port; defaults to 993 for `tls`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (default), `starttls`, or `plain` (loopback only, with `allow_plaintext`).
    #[serde(default = "default_security")]
    pub security: Security,
    /// Must be true for `security = "plain"`.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Extra CA certificate (PEM) to trust, for a server with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Login name.
    pub user: String,
    /// Password source: `{ file = ... }`, `{ env = ... }` or `{ credential = ... }`.
    pub password: SecretSource,
    /// `login` (default) or `plain` (AUTHENTICATE PLAIN).
    #[serde(default)]
    pub auth: ImapAuth,
    /// The folder order emails arrive in.
    #[serde(default = "default_inbox")]
    pub folder: String,
    /// Where fulfilled (or otherwise finished) orders are moved; created when missing.
    #[serde(default = "default_done")]
    pub done_folder: String,
    /// Where messages that are not orders are moved.
    #[serde(default = "default_ignored")]
    pub ignored_folder: String,
    /// Where messages keypost could not handle are set aside for the vendor.
    #[serde(default = "default_set_aside")]
    pub set_aside_folder: String,
    /// Use IDLE when the server offers it.
    #[serde(default = "default_true")]
    pub idle: bool,
    /// Poll interval in seconds when IDLE is off or not offered.
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
    /// Timeout for each IMAP command, in seconds.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImapAuth {
    #[default]
    Login,
    Plain,
}

fn default_poll_secs() -> u64 {
    60
}
fn default_security() -> Security {
    Security::Tls
}
fn default_inbox() -> String {
    "INBOX".to_owned()
}
fn default_done() -> String {
    "keypost/done".to_owned()
}
fn default_ignored() -> String {
    "keypost/ignored".to_owned()
}
fn default_set_aside() -> String {
    "keypost/set-aside".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_command_timeout() -> u64 {
    60
}

impl MailboxConfig {
    pub fn validate(&self, problems: &mut Problems) {
        match (&self.maildir, &self.imap) {
            (Some(_), Some(_)) => problems.error("mailbox", "set either [mailbox.maildir] or [mailbox.imap], not both"),
            (None, None) => problems.error("mailbox", "needs [mailbox.maildir] or [mailbox.imap]"),
            _ => {}
        }
        if self.maildir.as_ref().is_some_and(|maildir| maildir.poll_interval_secs == 0) {
            problems.error("mailbox.maildir.poll_interval_secs", "must be at least 1");
        }
        if let Some(imap) = &self.imap {
            validate_server("mailbox.imap", &imap.host, imap.security, imap.allow_plaintext, problems);
            if imap.poll_interval_secs == 0 {
                problems.error("mailbox.imap.poll_interval_secs", "must be at least 1");
            }
            if imap.command_timeout_secs == 0 {
                problems.error("mailbox.imap.command_timeout_secs", "must be at least 1");
            }
            if imap.password.is_inline() {
                problems
                    .warn("mailbox.imap.password", "inline secret in the config file; prefer file, env or credential");
            }
            let folders = [&imap.folder, &imap.done_folder, &imap.ignored_folder, &imap.set_aside_folder];
            for (i, a) in folders.iter().enumerate() {
                if folders.iter().skip(i + 1).any(|b| a == b) {
                    problems.error("mailbox.imap", format!("folder {a:?} is used for two purposes"));
                }
            }
        }
    }
}

/// Where a processed message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// An order (or refund) that was handled.
    Done,
    /// Not an order: receipts, payouts, newsletters, unrecognised mail.
    Ignored,
    /// keypost could not handle it: the vendor must look.
    SetAside,
}

impl Disposition {
    /// Whether settled mail of this kind is filed by month (see the module docs).
    pub fn by_month(self) -> bool {
        matches!(self, Disposition::Done | Disposition::Ignored)
    }
}

/// The month a message settled `at` is filed under, `2026-11` (UTC).
pub fn month(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// A message's bytes, or why they were not fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailContent {
    Bytes(Vec<u8>),
    /// Larger than the configured limit; left on the server unread and to be set aside.
    TooLarge {
        size: u64,
    },
}

/// One waiting message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMail {
    /// Unique within its source and stable across restarts (IMAP: `UIDVALIDITY:UID`; Maildir: the file name).
    pub key: String,
    pub content: MailContent,
}

impl RawMail {
    /// The SHA-256 (hex) of its bytes; `None` when they were not fetched.
    pub fn sha256(&self) -> Option<String> {
        match &self.content {
            MailContent::Bytes(bytes) => Some(sha256_hex(bytes)),
            MailContent::TooLarge { .. } => None,
        }
    }
}

/// The SHA-256 of a message's bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A place order emails arrive.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// A stable name for logs and for the state's per-source records.
    fn name(&self) -> String;
    /// Messages waiting to be processed, oldest first, at most `max`. A message keeps waiting until settled,
    /// so a crash before `settle` hands it out again (the state recognises it).
    /// It hands out fewer than `max` when the messages' bytes reach [`pass_bytes`].
    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>>;
    /// The last [`Source::fetch_new`] stopped at the byte budget with more mail waiting: the daemon goes on at
    /// once, as after a full batch. No default, like `settle_all`: a wrapper must forward it.
    fn more_waiting(&self) -> bool;
    /// Moves a processed message to the folder for its disposition. Never deletes.
    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()>;
    /// Moves many processed messages, in as few commands as the source allows (IMAP: one `UID MOVE` per folder
    /// and range set). Every message is tried even when one move fails; the first failure is returned, and the
    /// messages not moved are handed out again later. No default: a wrapper that forgot to forward it would
    /// move a batch one command per message ([`settle_one_by_one`] is there for sources without batches).
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()>;
    /// Returns when new mail may have arrived, or after `max_wait`.
    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()>;
}

/// Most bytes of mail one pass holds: four messages at the size limit (`templates.max_message_bytes`, 5 MiB by
/// default). A pass of [`crate::daemon::BATCH`] large mails would otherwise hold that many times the limit.
pub fn pass_bytes(max_message_bytes: u64) -> u64 {
    max_message_bytes.saturating_mul(4)
}

/// How many of the messages of these sizes, oldest first, one pass takes: always the first, then each one
/// whose bytes still fit in `budget`. A message too large to be fetched counts as 0.
pub fn within_budget(sizes: impl IntoIterator<Item = u64>, budget: u64) -> usize {
    let mut total = 0_u64;
    let mut taken = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if taken > 0 && total > budget {
            break;
        }
        taken += 1;
    }
    taken
}

/// [`Source::settle_all`] for a source that moves one message at a time: every message is tried, the first
/// failure returned.
pub async fn settle_one_by_one<S: Source + ?Sized>(
    source: &mut S,
    settled: &[(String, Disposition)],
) -> anyhow::Result<()> {
    let mut first_err = None;
    for (key, disposition) in settled {
        if let Err(err) = source.settle(key, *disposition).await {
            first_err.get_or_insert(err);
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_pass_takes_messages_until_their_bytes_reach_the_budget_and_always_the_first() {
        assert_eq!(within_budget([10, 20, 30], 60), 3);
        assert_eq!(within_budget([10, 20, 30, 1], 60), 3, "the fourth would pass the budget");
        assert_eq!(within_budget([100, 1], 60), 1, "a message larger than the budget still goes, alone");
        assert_eq!(within_budget([0, 0, 50, 0], 50), 4, "messages not fetched cost nothing");
        assert_eq!(within_budget([u64::MAX, 1], u64::MAX - 1), 1, "no overflow");
        assert_eq!(within_budget(std::iter::empty(), 60), 0);
        assert_eq!(pass_bytes(5 << 20), 20 << 20);
    }

    #[test]
    fn settled_mail_is_filed_under_its_utc_month_and_set_aside_mail_is_not() {
        assert_eq!(month(datetime!(2026-11-30 23:59:59 UTC)), "2026-11");
        assert_eq!(month(datetime!(2026-12-01 00:30 +01:00)), "2026-11", "UTC, not the local month");
        assert_eq!(month(datetime!(2027-01-01 00:00 UTC)), "2027-01");
        assert!(Disposition::Done.by_month() && Disposition::Ignored.by_month());
        assert!(!Disposition::SetAside.by_month(), "the vendor works through one set-aside folder");
    }
}
