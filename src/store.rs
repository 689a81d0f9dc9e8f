//! The state: the only module that touches the storage engine (redb; sled only to move an old state over). It
//! records, it does not decide.
//!
//! # Engine
//! redb: pure Rust, ACID transactions on a copy-on-write B-tree whose two commit slots carry checksums, so a crash
//! (SIGKILL, a power cut) leaves the last durable commit readable and redb repairs the rest on the next open. It
//! replaced sled 0.34, which sometimes could not reopen its state after a SIGKILL ("Read corrupted data at file
//! offset None") and read its whole log at every open (1.4 s at 200,000 orders). SQLite through rusqlite would
//! have served as well; redb keeps the byte-keyed layout below as it was (one table of `&[u8] -> &[u8]`, so the
//! prefix scans map one to one) and needs no C.
//!
//! # Layout
//! One table in `state/keypost.redb`; keys carry a prefix (see `records.rs`): orders by provider + order id +
//! line; indexes by Message-ID, content hash and proving signature (the same email seen twice, `seen.rs`), by
//! buyer email and by licensee
//! (lookup), by provider and buyer with time (rate limits) with per-minute counters over them (`rate.rs`); one
//! record per source message with its final disposition; the outbox of rendered replies not yet sent; the audit
//! trail; the code pools and the orders waiting for codes (`store/pool.rs`); the schema version and the next
//! audit/pool number (`engine.rs`). A [`Change`] is applied in one write transaction, so every transition is
//! atomic. A durable commit fsyncs before it returns: nothing the caller does next (a send, a move) runs until the
//! record is on disk; a batch's commit ([`Pending::durable`]) waits on a blocking thread so that sends beside it go
//! on. A commit that is not durable ([`Pending::apply`], [`Store::commit_waiting`]) goes into an in-memory buffer
//! that every read sees at once (`overlay.rs`), and the next durable commit writes it with its own change in one
//! redb transaction: a batch of messages costs one write transaction, not one per message. A durable commit that
//! fails once it took that buffer poisons the store ([`StoreError::Failed`]: every later read and write fails, and
//! the daemon stops for its service manager to restart it), since what the buffer held may have queued replies
//! that are not on disk; the restart goes on from the last durable commit, as after a crash. Beside the database,
//! `state/sent.journal` notes each send the SMTP server accepted the moment it answers (`journal.rs`), so a group
//! of sends needs one fsync.
//!
//! # Protocol (what a crash at each point leads to)
//! Per message, the daemon does, in order (for a batch of fetched messages each step covers the whole batch:
//! step 2's changes are applied one message after another and made durable once with [`Store::pending`]; then
//! the sends of step 3 run concurrently, each noted in the send journal as soon as the server answered it and all
//! recorded with one durable commit, while step 4 moves the batch, which needs nothing from step 3: a crash
//! during either is case 2):
//! 1. *Nothing recorded yet* (parse, classify, trust, decide, make serials, render): a crash leaves the message
//!    waiting in its source; it is handed out again and processed from scratch. Nothing was sent.
//! 2. *Commit one batch durably* ([`Store::commit_durable`]) — order lines with their decision and licenses, the
//!    Message-ID and content-hash indexes, the outbox entries (fully rendered bytes with their deterministic
//!    Message-ID), the source message's disposition, the audit lines — *then fsync*; only then does it hand out
//!    what was queued. A crash before the fsync completes loses the whole batch (case 1). A crash after it: the
//!    message comes back, its source record says it is settled, so it is only moved again; the outbox entries
//!    are sent on start-up. No decision is made twice.
//! 3. *Send each outbox entry*; the moment the server accepts one, append its Message-ID to the send journal (one
//!    `write`, which a killed process cannot take back); when the group's sends are done, commit "sent" for all
//!    of them durably (entry removed, order's reply state `sent`, audit) with [`Store::commit_sends`], then
//!    empty the journal. A crash of the process after the journal line: the next open records the send from the
//!    journal before anything reads the outbox, so it is not sent again. The accepted duplicates: a crash between
//!    the server's acceptance and the journal line (a loopback round trip), and a power cut before the group's
//!    commit (the journal is not fsynced on its own); either sends the entry again with identical bytes and the
//!    same Message-ID. If the journal cannot be written, that send is committed durably on its own, as before.
//!    A failed try is recorded (attempts, next try, or `failed` plus a vendor alert) in the same group commit,
//!    before anything else; a crash before it only makes the entry be tried again at once.
//! 4. *Settle the source message* (move it to its folder). A crash before: see 2. Never deleted.
//!
//! So no order is lost (a message leaves the queue only after its outcome is durable) and no reply is sent
//! twice except in the windows of step 3. A revocation committed while an order's reply still waits in the
//! outbox takes the reply out in the same batch. The vendor's tools (`resend`, `revoke`, `issue`) follow the
//! same order: a durable commit, then send. The one write not made durable is a message's note that it waits
//! for a later pass ([`Store::commit_waiting`]): nothing external follows it. redb's file lock allows one
//! process: while `keypost run` holds it, the tools ask it over its control socket and its loop carries them
//! out between passes (`control.rs`). The tools that change nothing open the state only to read
//! ([`Store::open_read`], `read.rs`), which writes and syncs nothing.
//! The database itself is created in `keypost.redb.creating` and renamed to `keypost.redb` only with its schema
//! durable, so a crash on the very first start is rebuilt rather than mistaken for damage. An old `sled` state is
//! copied over the same way and then renamed `sled.migrated`, never deleted (`migrate.rs`).
//! A file redb cannot recover stops start-up with an error; keypost never starts over with an empty database
//! when one was there.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::ReadableDatabase as _;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::order::BuyerEmail;
use crate::problems::Problems;

mod chain;
mod change;
mod engine;
mod journal;
mod migrate;
mod overlay;
mod pool;
mod rate;
mod read;
mod records;
mod seen;
mod watch;
mod wire;

pub use change::Change;
pub use pool::{Available, CodeCounts, CodeState, PoolCode, WaitingOrder};
pub use watch::SilenceRecord;

use engine::TABLE;
use records::*;
pub use records::{
    AuditEntry, Cancelled, ChainState, DigestRecord, License, OrderRecord, OutboxEntry, Purpose, ReplyState,
    Revocation, SelfServiceRecord, SourceRecord, Superseded, UNKNOWN_SENDER_NOTE,
};

/// The layout version this build writes. A database with a higher one is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
pub struct StateConfig {
    /// Folder of the state database (`keypost.redb`); relative to the config file's folder.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { dir: default_dir() }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("state")
}

impl StateConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.dir.as_os_str().is_empty() {
            problems.error("state.dir", "must not be empty");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state database {path} is in use by another keypost process (stop `keypost run` first)")]
    Locked { path: PathBuf },
    #[error("cannot open the state database {path}")]
    Open { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("the state database {path} is damaged ({detail}); keypost will not start over empty: restore a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the state database {path} has schema {found}, newer than this keypost ({SCHEMA_VERSION}); upgrade")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("state database failure")]
    Db(#[from] redb::Error),
    #[error("the state's flush stopped: {0}")]
    Flush(String),
    #[error("an earlier write to the state failed; restart keypost to go on from its last durable commit")]
    Failed,
    #[error("the state was opened only to read; a change needs `Store::open`")]
    ReadOnly,
    #[error("state record {key} cannot be read")]
    Decode { key: String, source: serde_json::Error },
}

/// The state folder holds every buyer's name and address and every serial: it is created 0700 (parents too), and
/// an existing one with any group or other bit is narrowed to 0700, with a warning.
fn make_private(state_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |source: std::io::Error| StoreError::Open { path: state_dir.to_owned(), source: Box::new(source) };
    if !state_dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(io)?;
    }
    let mode = std::fs::metadata(state_dir).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %state_dir.display(), mode = format!("{:o}", mode & 0o777), "State folder was open to other users; made 0700.");
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// The database file is created 0600; one copied in with wider modes is narrowed, so a copy made with its modes
/// stays private.
fn keep_private(file: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(file) else { return };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(err) = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(file = %file.display(), "Cannot make the state file private: {err}");
    }
}

/// The Message-IDs a durable commit put into the outbox, in order: the mail that may be sent now. Only
/// [`Store::commit_durable`] makes one, so sending what a change queued cannot skip the flush before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queued(Vec<String>);

impl Queued {
    pub fn message_ids(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Changes of one batch applied but not yet durable; see [`Store::pending`]. A crash before
/// [`Pending::durable`] completes may lose some of them, each whole, never part of one (as
/// [`Store::commit_durable_all`]); nothing was sent for any of them.
#[derive(Debug)]
pub struct Pending<'a> {
    store: &'a Store,
    queued: Vec<String>,
    /// Replies of an earlier batch are being sent while this one is decided: they count as unsent.
    sending: bool,
}

impl Pending<'_> {
    /// Applies one message's change atomically (visible to reads at once, not yet durable).
    pub fn apply(&mut self, change: Change) -> Result<(), StoreError> {
        self.queued.extend_from_slice(change.queued());
        self.store.commit(change)
    }

    /// Whether replies of this batch are unsent: anything applied so far queued mail (not sendable before
    /// [`Pending::durable`]), it continues a batch whose replies are not sent yet, or another batch's replies are
    /// on their way while this one is decided.
    pub fn has_queued(&self) -> bool {
        self.sending || !self.queued.is_empty()
    }

    /// Makes everything applied durable; returns what the batch put into the outbox, which may be sent now.
    /// The fsync runs on a blocking thread, not the caller's: replies being sent beside this batch (a batch
    /// decided ahead, `daemon/ahead.rs`) are noted in the send journal meanwhile instead of waiting for it, which
    /// would widen the window in which a kill repeats a reply.
    pub async fn durable(self) -> Result<Queued, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(Vec::new()))
            .await
            .map_err(|err| StoreError::Flush(err.to_string()))??;
        Ok(Queued(self.queued))
    }
}

/// The open state database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<engine::Db>,
    ids: Arc<engine::Ids>,
    /// Changes applied and not yet written to redb (`overlay.rs`); written by the next durable commit, or when
    /// the last handle on the store is dropped.
    buffer: Arc<overlay::Buffer>,
    _flush: Arc<FlushOnDrop>,
    /// The send journal; `None` when the state was opened only to read.
    journal: Option<Arc<journal::Journal>>,
}

impl Store {
    /// Opens (or creates) the database `state_dir/keypost.redb` and checks its schema.
    ///
    /// A new database is built in `state_dir/keypost.redb.creating` and renamed into place only once its schema
    /// version is durable, so a crash during the very first start leaves a staging file that is simply rebuilt,
    /// never a database without a schema (which every later start would have to refuse as damaged). A state
    /// folder that holds only the old `sled` database has it copied over the same way (`migrate.rs`).
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(engine::FILE);
        make_private(state_dir)?;
        let legacy = state_dir.join(migrate::LEGACY);
        if !path.exists() {
            let staging = state_dir.join(engine::STAGING);
            if legacy.exists() {
                migrate::from_sled(&legacy, &staging, &path)?;
            } else {
                engine::create(&staging, &path, SCHEMA_VERSION)?;
            }
        } else if legacy.exists() {
            migrate::finish(&legacy)?;
        }
        let db = engine::open(&path)?;
        let ids = {
            let table = match db.begin_read()?.open_table(TABLE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => {
                    return Err(StoreError::Corrupt { path, detail: "no records table".into() });
                }
                Err(err) => return Err(err.into()),
            };
            check_schema(&table, &path)?;
            engine::Ids::load(&table)?
        };
        let journal_io =
            |source: std::io::Error| StoreError::Open { path: state_dir.join(journal::FILE), source: Box::new(source) };
        let (journal, left) = journal::Journal::open(state_dir).map_err(journal_io)?;
        let journal = Arc::new(journal);
        let store = Self::assemble(engine::Db::Write(db), ids, Some(journal.clone()));
        rate::build_once(&store)?;
        store.fold_journal(&left)?;
        journal.clear().map_err(journal_io)?;
        keep_private(&path);
        Ok(store)
    }

    /// Whether `state_dir` holds a state (or an old one [`Store::open`] would move over): the tools that only
    /// read do not create one.
    pub fn exists(state_dir: &Path) -> bool {
        state_dir.join(engine::FILE).exists() || state_dir.join(migrate::LEGACY).exists()
    }

    /// Protocol step 2 (and step 3's record of each send): applies `change` atomically, then waits until it is
    /// on disk. Returns what it put into the outbox, which may be sent now and not before. Every write that an
    /// external effect (a send, a move in the mailbox) follows goes through here.
    pub async fn commit_durable(&self, change: Change) -> Result<Queued, StoreError> {
        self.commit_durable_all([change]).await
    }

    /// The same for several changes (a batch of messages) at the cost of one fsync: the changes are applied
    /// in order in one transaction, and none of their queued messages may be sent until all are durable. A
    /// crash before the fsync completes loses all of them (each whole, never part of one).
    ///
    /// The fsync (a few milliseconds) blocks the calling thread: these are single records (a vendor's tool, an
    /// alert, a send that could not be journaled) with nothing running beside them.
    pub async fn commit_durable_all(&self, changes: impl IntoIterator<Item = Change>) -> Result<Queued, StoreError> {
        let changes: Vec<Change> = changes.into_iter().collect();
        let queued = changes.iter().flat_map(|change| change.queued().iter().cloned()).collect();
        self.write(changes)?;
        Ok(Queued(queued))
    }

    /// Protocol step 2 for a batch of messages decided one after another: each change is applied at once, so the
    /// next message's decision reads it (the same order twice in one batch is seen as such), but nothing it
    /// queued may be sent until [`Pending::durable`] has flushed them all, with one flush.
    pub fn pending(&self) -> Pending<'_> {
        Pending { store: self, queued: Vec::new(), sending: false }
    }

    /// The same, continuing a batch decided earlier whose queued mail (durable, not sent yet) is sent with this
    /// one's: [`Pending::durable`] returns both.
    pub fn pending_after(&self, earlier: Queued) -> Pending<'_> {
        Pending { store: self, queued: earlier.0, sending: false }
    }

    /// The same, for a batch decided while another batch's replies are being sent (they count as unsent, so a
    /// message that would revoke one of them is deferred; see [`Pending::has_queued`]).
    pub fn pending_while_sending(&self, sending: bool) -> Pending<'_> {
        Pending { store: self, queued: Vec::new(), sending }
    }

    /// The one write that is not flushed: a message left waiting for a later pass (its trust check could not
    /// finish) notes since when, with its audit line. No external effect follows it; a crash that loses it only
    /// restarts that message's retry clock. It must not queue anything.
    pub fn commit_waiting(&self, change: Change) -> Result<(), StoreError> {
        debug_assert!(change.queued().is_empty(), "a change that queues mail must be committed durably");
        self.commit(change)
    }

    /// Applies a change atomically; not yet durable. Private: see [`Store::commit_durable`]. It goes into the
    /// buffer (`overlay.rs`), resolved against what reads see now: its audit numbers and rate counters are fixed
    /// here, as a redb commit of its own would have fixed them.
    fn commit(&self, change: Change) -> Result<(), StoreError> {
        if matches!(*self.db, engine::Db::Read(_)) {
            return Err(StoreError::ReadOnly);
        }
        let view = self.view()?;
        let ops = change.ops(&view, &self.ids)?;
        drop(view);
        self.buffer.apply(ops);
        Ok(())
    }

    /// Writes everything applied so far, then `changes` in order, in one redb transaction, and returns once that
    /// is on disk (a no-op when there is nothing to write). Quick repair stores the allocator state with it, so
    /// opening after a crash need not rebuild it from the whole file.
    fn write(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        write_buffered(&self.db, &self.ids, &self.buffer, changes)
    }

    /// Waits until everything committed is on disk (tests without a runtime).
    #[cfg(test)]
    fn flush_blocking(&self) -> Result<(), StoreError> {
        self.write(Vec::new())
    }

    /// The records as a read sees them: changes applied and not yet written (`overlay.rs`) over a redb snapshot.
    fn view(&self) -> Result<overlay::View, StoreError> {
        self.buffer.view(|| Ok(self.db.begin_read()?.open_table(TABLE)?))
    }

    /// Every entry under `prefix`, in key order.
    fn prefix(&self, prefix: &[u8]) -> Result<overlay::Merged, StoreError> {
        self.view()?.under(prefix)
    }

    pub fn source_record(&self, source: &str, key: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.get(&records::key(SOURCES, &[source, key]))
    }

    /// Every message set aside and not released or dropped since, as (source, key, record), in key order.
    pub fn set_aside(&self) -> Result<Vec<(String, String, SourceRecord)>, StoreError> {
        let mut found = Vec::new();
        for item in self.prefix(SOURCES.as_bytes())? {
            let (key, value) = item?;
            let key = key.value();
            let record: SourceRecord = decode(key, value.value())?;
            if record.disposition != crate::mailbox::Disposition::SetAside {
                continue;
            }
            let name = String::from_utf8_lossy(key.get(SOURCES.len()..).unwrap_or_default()).into_owned();
            if let Some((source, message_key)) = name.split_once('\0') {
                found.push((source.to_owned(), message_key.to_owned(), record));
            }
        }
        Ok(found)
    }

    /// The highest number seen in a provider's sequence (template `fields.sequence`).
    pub fn sequence_last(&self, scope: &str) -> Result<Option<u64>, StoreError> {
        self.get(&records::key(SEQUENCES, &[scope]))
    }

    /// Every source message's record, in key order.
    pub fn source_records(&self) -> Result<Vec<SourceRecord>, StoreError> {
        self.scan(SOURCES.as_bytes())
    }

    /// The digest of this period, if it was queued.
    pub fn digest(&self, period: &str) -> Result<Option<DigestRecord>, StoreError> {
        self.get(&records::key(DIGESTS, &[period]))
    }

    /// The lost-licence requests from this address (any case) at or after `since`, oldest first.
    pub fn self_service(&self, address: &str, since: i64) -> Result<Vec<SelfServiceRecord>, StoreError> {
        let mut requests: Vec<SelfServiceRecord> =
            self.scan(&records::key(SELF_SERVICE, &[&address.to_lowercase(), ""]))?;
        requests.retain(|request| request.at >= since);
        Ok(requests)
    }

    /// Every lost-licence request at or after `since` (the digest's count).
    pub fn self_service_since(&self, since: i64) -> Result<Vec<SelfServiceRecord>, StoreError> {
        let mut requests: Vec<SelfServiceRecord> = self.scan(SELF_SERVICE.as_bytes())?;
        requests.retain(|request| request.at >= since);
        Ok(requests)
    }

    /// Every outbox entry, in Message-ID order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.scan(OUTBOX.as_bytes())
    }

    /// Since when a message (by its label `source/key`) has been left waiting for a retry, if it is.
    pub fn retrying_since(&self, label: &str) -> Result<Option<i64>, StoreError> {
        self.get(&records::key(RETRYING, &[label]))
    }

    /// The order (`provider` NUL `order id`) an email with this Message-ID or content hash already produced.
    pub fn seen_email(&self, message_id: Option<&str>, content_hash: &str) -> Result<Option<String>, StoreError> {
        let by_id = message_id.map(|id| records::key(BY_MESSAGE_ID, &[id]));
        let by_hash = (!content_hash.is_empty()).then(|| records::key(BY_HASH, &[content_hash]));
        let view = self.view()?;
        for key in by_id.into_iter().chain(by_hash) {
            if let Some(value) = view.get_vec(&key)? {
                return Ok(Some(String::from_utf8_lossy(&value).into_owned()));
            }
        }
        Ok(None)
    }

    /// Every recorded line of one order, in line order.
    pub fn order_lines(&self, provider: &str, order_id: &str) -> Result<Vec<OrderRecord>, StoreError> {
        self.scan(&order_prefix(provider, order_id))
    }

    pub fn order_line(&self, provider: &str, order_id: &str, line: u32) -> Result<Option<OrderRecord>, StoreError> {
        self.get(&order_key(provider, order_id, line))
    }

    /// Every order line recorded under this payment id (each provider's notice of the payment), in key order.
    pub fn payment_lines(&self, payment_id: &str) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        for item in self.prefix(&records::key(BY_PAYMENT, &[payment_id, ""]))? {
            let (_, order) = item?;
            if let Some(record) = self.get::<OrderRecord>(order.value())? {
                found.push(record);
            }
        }
        found.sort_by_key(OrderRecord::key);
        Ok(found)
    }

    /// Distinct orders from this provider, and from this buyer (by [`BuyerEmail::rate_key`]), recorded at or after
    /// the start of the minute `since` falls in (per-minute counters: the cost does not grow with the orders in
    /// the window, and the count is never less than the exact one).
    pub fn recent_counts(
        &self,
        provider: &str,
        buyer: Option<&BuyerEmail>,
        since: i64,
    ) -> Result<(u32, u32), StoreError> {
        let view = self.view()?;
        let provider_count = rate::count_since(&view, BY_PROVIDER_TIME, provider, since)?;
        let buyer_count = match buyer {
            Some(buyer) => rate::count_since(&view, BY_BUYER_TIME, &buyer.rate_key(), since)?,
            None => 0,
        };
        Ok((provider_count, buyer_count))
    }

    /// Outbox entries whose next try is due, oldest first.
    pub fn due_outbox(&self, now: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<OutboxEntry> = self.scan(OUTBOX.as_bytes())?;
        due.retain(|entry| entry.next_try <= now);
        due.sort_by_key(|entry| entry.next_try);
        Ok(due)
    }

    /// When the earliest outbox entry is next due, if any.
    pub fn next_outbox_try(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.scan::<OutboxEntry>(OUTBOX.as_bytes())?.iter().map(|entry| entry.next_try).min())
    }

    pub fn outbox_entry(&self, message_id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        self.get(&records::key(OUTBOX, &[message_id]))
    }

    pub fn outbox_len(&self) -> usize {
        self.prefix(OUTBOX.as_bytes()).map_or(0, Iterator::count)
    }

    /// Every order line, sorted by provider, order id and line.
    pub fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.orders_iter().collect()
    }

    /// Every order line in the same order, read one at a time: what `export` streams in constant memory.
    pub fn orders_iter(&self) -> impl Iterator<Item = Result<OrderRecord, StoreError>> + '_ {
        let (failed, entries) = match self.prefix(ORDERS.as_bytes()) {
            Ok(entries) => (None, Some(entries)),
            Err(err) => (Some(Err(err)), None),
        };
        let records = entries.into_iter().flatten().map(|item| item.and_then(|(k, v)| decode(k.value(), v.value())));
        failed.into_iter().chain(records)
    }

    /// The lines with this order id, from any provider: one seek per provider, not a read of every order.
    fn lines_with_order_id(&self, order_id: &str) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        let mut from = ORDERS.as_bytes().to_vec();
        let view = self.view()?;
        while let Some(item) = view.range(&from, None)?.next() {
            let (key, _) = item?;
            let Some(rest) = key.value().strip_prefix(ORDERS.as_bytes()) else { break };
            let provider = rest.split(|b| *b == 0).next().unwrap_or_default();
            let mut prefix = [ORDERS.as_bytes(), provider, b"\0", order_id.as_bytes(), b"\0"].concat();
            for item in view.under(&prefix)? {
                let (key, value) = item?;
                found.push(decode(key.value(), value.value())?);
            }
            // The next provider: keys of this one are `provider NUL ...`, all below `provider 0x01`.
            prefix.truncate(ORDERS.len() + provider.len());
            prefix.push(1);
            from = prefix;
        }
        Ok(found)
    }

    /// Order lines whose order id, buyer email or licensee is `query` (case-insensitive for the last two), and
    /// every line recorded under the same payment id as one found (the other notice of one purchase).
    pub fn lookup(&self, query: &str) -> Result<Vec<OrderRecord>, StoreError> {
        let needle = query.trim().to_lowercase();
        let mut found = if query.trim().is_empty() { Vec::new() } else { self.lines_with_order_id(query.trim())? };
        for prefix in [BY_BUYER, BY_LICENSEE] {
            for item in self.prefix(&records::key(prefix, &[&needle, ""]))? {
                let (_, order) = item?;
                if let Some(record) = self.get::<OrderRecord>(order.value())? {
                    found.push(record);
                }
            }
        }
        // One purchase, two notifications: the other provider's notice of each payment found is part of it.
        let payments: Vec<String> =
            found.iter().filter_map(|record| record.payment_id.as_ref().map(|p| p.as_str().to_owned())).collect();
        for payment in payments {
            found.extend(self.payment_lines(&payment)?);
        }
        found.sort_by_key(OrderRecord::key);
        found.dedup_by_key(|record| record.key());
        Ok(found)
    }

    /// The audit trail, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.scan(AUDIT.as_bytes())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.view()?.get(key)?.map(|raw| decode(key, raw.value())).transpose()
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.prefix(prefix)?.map(|item| item.and_then(|(k, v)| decode(k.value(), v.value()))).collect()
    }
}

impl Store {
    fn assemble(db: engine::Db, ids: engine::Ids, journal: Option<Arc<journal::Journal>>) -> Self {
        let db = Arc::new(db);
        let ids = Arc::new(ids);
        let buffer = Arc::new(overlay::Buffer::default());
        let flush = FlushOnDrop { db: db.clone(), ids: ids.clone(), buffer: buffer.clone() };
        Self { db, ids, buffer, _flush: Arc::new(flush), journal }
    }
}

/// See [`Store::write`]; a free function so that [`FlushOnDrop`] can call it without a `Store`.
fn write_buffered(
    db: &engine::Db,
    ids: &engine::Ids,
    buffer: &overlay::Buffer,
    changes: Vec<Change>,
) -> Result<(), StoreError> {
    // One write at a time, from taking the buffer to clearing it (redb releases its own lock inside commit).
    let mut writing = buffer.writing()?;
    if changes.is_empty() && buffer.is_empty() {
        return Ok(());
    }
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    txn.set_durability(redb::Durability::Immediate)?;
    // From here a failure (or a panic) poisons the store: see `overlay.rs`.
    let taken = writing.take()?;
    let written = {
        let mut table = txn.open_table(TABLE)?;
        overlay::write_ops(&mut table, taken.iter())?;
        for change in changes {
            let ops = change.ops(&table, ids)?;
            overlay::write_ops(&mut table, ops.iter().map(|(key, value)| (key, value)))?;
        }
        ids.write(&mut table)?
    };
    txn.commit()?;
    writing.written();
    ids.stored(written);
    Ok(())
}

/// Writes the changes still buffered when the last handle on the store goes (a clean stop, a tool that ends):
/// nothing applied is dropped by a clean close.
#[derive(Debug)]
struct FlushOnDrop {
    db: Arc<engine::Db>,
    ids: Arc<engine::Ids>,
    buffer: Arc<overlay::Buffer>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if let Err(err) = write_buffered(&self.db, &self.ids, &self.buffer, Vec::new()) {
            tracing::warn!("Cannot write the state's last changes at close: {err}");
        }
    }
}

fn check_schema(table: &engine::ReadTable, path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt { path: path.to_owned(), detail: detail.to_owned() };
    match table.get(META_SCHEMA)? {
        Some(raw) => {
            let bytes: [u8; 4] = raw.value().try_into().map_err(|_| corrupt("unreadable schema version"))?;
            let found = u32::from_be_bytes(bytes);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema { path: path.to_owned(), found });
            }
            Ok(())
        }
        None => Err(corrupt("no schema version")),
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, StoreError> {
    // UTF-8 checked once for the whole value, so serde_json does not check every string again (a tenth of an
    // export's time); a value that is not UTF-8 gets serde_json's own error.
    let parsed = match std::str::from_utf8(raw) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(raw),
    };
    parsed.map_err(|source| StoreError::Decode { key: String::from_utf8_lossy(key).replace('\0', "/"), source })
}

#[cfg(test)]
mod tests;
