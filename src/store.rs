//! The state: the only module that touches sled. It records, it does not decide.
//!
//! # Layout
//! One sled tree; keys carry a prefix (see `records.rs`): orders by provider + order id + line; indexes by
//! Message-ID and content hash (the same email seen twice), by buyer email and by licensee (lookup), by
//! provider and buyer with time (rate limits) with per-minute counters over them (`rate.rs`); one record per
//! source message with its final disposition; the outbox of rendered replies not yet sent; the audit trail; the
//! code pools and the orders waiting for codes (`store/pool.rs`); the schema version. A [`Change`] is applied as one
//! sled batch, so every transition is atomic, and [`Store::flush`] makes it durable.
//!
//! # Protocol (what a crash at each point leads to)
//! Per message, the daemon does, in order (for a batch of fetched messages each step covers the whole batch:
//! step 2's changes are applied one message after another and flushed once with [`Store::pending`]; then the
//! sends of step 3 run concurrently, each recorded durably as soon as the server answered it; then step 4 moves
//! the batch):
//! 1. *Nothing recorded yet* (parse, classify, trust, decide, make serials, render): a crash leaves the message
//!    waiting in its source; it is handed out again and processed from scratch. Nothing was sent.
//! 2. *Commit one batch durably* ([`Store::commit_durable`]) — order lines with their decision and licenses, the Message-ID and content-hash
//!    indexes, the outbox entries (fully rendered bytes with their deterministic Message-ID), the source
//!    message's disposition, the audit lines — *then flush*; only then does it hand out what was queued. A crash before the flush completes loses the whole
//!    batch (case 1). A crash after it: the message comes back, its source record says it is settled, so it is
//!    only moved again; the outbox entries are sent on start-up. No decision is made twice.
//! 3. *Send each outbox entry*, then commit "sent" durably (entry removed, order's reply state `sent`, audit).
//!    A crash after the server accepted the message but before that flush is the one accepted duplicate: the
//!    entry is still queued and is sent again, with identical bytes and the same Message-ID.
//!    A failure is committed (attempts, next try, or `failed` plus a vendor alert) before anything else.
//! 4. *Settle the source message* (move it to its folder). A crash before: see 2. Never deleted.
//!
//! So no order is lost (a message leaves the queue only after its outcome is durable) and no reply is sent
//! twice except in the window of step 3. A revocation committed while an order's reply still waits in the
//! outbox takes the reply out in the same batch. The vendor's tools (`resend`, `revoke`, `issue`) follow the
//! same order: a durable commit, then send. The one write not flushed is a message's note that it waits for a
//! later pass ([`Store::commit_waiting`]): nothing external follows it. sled's file lock allows one process: while `keypost run` holds it, the
//! tools ask it over its control socket and its loop carries them out between passes (`control.rs`).
//! The database itself is created in `sled.creating` and renamed to `sled` only with its schema flushed, so a crash
//! on the very first start is rebuilt rather than mistaken for damage.
//! Corruption found at open stops start-up with an error; keypost never starts over with an empty database
//! when one was there.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::order::BuyerEmail;
use crate::problems::Problems;

mod chain;
mod change;
mod pool;
mod rate;
mod records;
mod watch;

pub use change::Change;
pub use pool::{Available, CodeCounts, CodeState, PoolCode, WaitingOrder};
pub use watch::SilenceRecord;

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
    /// Folder of the sled database; relative to the config file's folder.
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
    Open { path: PathBuf, source: sled::Error },
    #[error("the state database {path} is damaged ({detail}); keypost will not start over empty: restore a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the state database {path} has schema {found}, newer than this keypost ({SCHEMA_VERSION}); upgrade")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("state database failure")]
    Db(#[from] sled::Error),
    #[error("state record {key} cannot be read")]
    Decode { key: String, source: serde_json::Error },
}

/// The state folder holds every buyer's name and address and every serial: it is created 0700 (parents too), and
/// an existing one with any group or other bit is narrowed to 0700, with a warning.
fn make_private(state_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |source: std::io::Error| StoreError::Open { path: state_dir.to_owned(), source: sled::Error::Io(source) };
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

/// sled creates its files with the process umask (often 0644); inside the 0700 state folder no one else can reach
/// them, and they are narrowed to 0600 (folders 0700) as well, so a copy made with their modes stays private.
fn keep_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let mode = if kind.is_dir() {
            0o700
        } else if kind.is_file() {
            0o600
        } else {
            continue;
        };
        if let Err(err) = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(file = %entry.path().display(), "Cannot make a state file private: {err}");
        }
        if kind.is_dir() {
            keep_private(&entry.path());
        }
    }
}

/// Builds a new database with its schema version in a staging folder, then renames it to `dir`.
fn create(state_dir: &Path, dir: &Path) -> Result<(), StoreError> {
    let io = |source: std::io::Error| StoreError::Open { path: dir.to_owned(), source: sled::Error::Io(source) };
    let staging = state_dir.join("sled.creating");
    if staging.exists() {
        // Left by a crash during an earlier first start: it never held an order.
        std::fs::remove_dir_all(&staging).map_err(io)?;
    }
    {
        let db = open_sled(&staging)?;
        db.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        db.insert(rate::META_COUNTED, b"1")?;
        db.flush()?;
    }
    std::fs::rename(&staging, dir).map_err(io)
}

/// sled's page cache. Its default (1 GiB) lets a large state fill the daemon's memory with pages it rarely reads
/// again; the hot records (outbox, recent orders, counters) fit in far less.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens sled at `dir`, mapping its failures to what the vendor needs to know. sled releases its file lock from
/// a background thread, so a database this process (or a process that just exited) closed a moment ago may still
/// read as locked: that is retried for up to two seconds before it counts as another process holding it.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let mut attempts = 0;
    loop {
        // sled 0.34 can panic on some damaged files; that must become an error, not a crash loop.
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open());
        return match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(err @ sled::Error::Corruption { .. })) => {
                Err(StoreError::Corrupt { path: dir.to_owned(), detail: format!("sled could not recover it: {err}") })
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(StoreError::Corrupt { path: dir.to_owned(), detail: format!("sled could not recover it: {what}") })
            }
            // sled 0.34 reports its file lock only as an `Other` I/O error with this text.
            Ok(Err(sled::Error::Io(err))) if err.to_string().contains("could not acquire lock") => {
                attempts += 1;
                if attempts < 40 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                Err(StoreError::Locked { path: dir.to_owned() })
            }
            Ok(Err(source)) => Err(StoreError::Open { path: dir.to_owned(), source }),
        };
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
}

impl Pending<'_> {
    /// Applies one message's change atomically (visible to reads at once, not yet durable).
    pub fn apply(&mut self, change: Change) -> Result<(), StoreError> {
        self.queued.extend_from_slice(change.queued());
        self.store.commit(change)
    }

    /// Whether anything applied so far queued mail (not sendable before [`Pending::durable`]).
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Flushes everything applied; returns what the batch put into the outbox, which may be sent now.
    pub async fn durable(self) -> Result<Queued, StoreError> {
        self.store.flush_durable().await?;
        Ok(Queued(self.queued))
    }
}

/// The open state database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// Held while a commit raises rate counters (see `rate.rs`).
    counting: std::sync::Arc<std::sync::Mutex<()>>,
    /// One flush at a time: sled 0.34's concurrent `flush_async` calls can wait on each other for ever (seen with
    /// twenty replies sent at once, each recording its send durably).
    flushing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens (or creates) the database in `state_dir/sled` and checks its schema.
    ///
    /// A new database is built in `state_dir/sled.creating` and renamed into place only once its schema version
    /// is flushed, so a crash during the very first start leaves a staging folder that is simply rebuilt, never
    /// a database without a schema (which every later start would have to refuse as damaged).
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let dir = state_dir.join("sled");
        make_private(state_dir)?;
        if !dir.exists() {
            create(state_dir, &dir)?;
        }
        let store = Self { db: open_sled(&dir)?, counting: Default::default(), flushing: Default::default() };
        store.check_schema(&dir)?;
        rate::build_once(&store.db)?;
        keep_private(&dir);
        Ok(store)
    }

    fn check_schema(&self, dir: &Path) -> Result<(), StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt { path: dir.to_owned(), detail: detail.to_owned() };
        match self.db.get(META_SCHEMA)? {
            Some(raw) => {
                let bytes: [u8; 4] = raw.as_ref().try_into().map_err(|_| corrupt("unreadable schema version"))?;
                let found = u32::from_be_bytes(bytes);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: dir.to_owned(), found });
                }
                Ok(())
            }
            None => Err(corrupt("no schema version")),
        }
    }

    /// Protocol step 2 (and step 3's record of each send): applies `change` atomically, then waits until it is
    /// on disk. Returns what it put into the outbox, which may be sent now and not before. Every write that an
    /// external effect (a send, a move in the mailbox) follows goes through here.
    pub async fn commit_durable(&self, change: Change) -> Result<Queued, StoreError> {
        self.commit_durable_all([change]).await
    }

    /// The same for several changes (a batch of messages) at the cost of one flush: each change is applied as
    /// its own atomic batch, in order, and none of their queued messages may be sent until all are durable. A
    /// crash before the flush completes may lose some of them, each whole, never part of one.
    pub async fn commit_durable_all(&self, changes: impl IntoIterator<Item = Change>) -> Result<Queued, StoreError> {
        let mut queued = Vec::new();
        for change in changes {
            queued.extend_from_slice(change.queued());
            self.commit(change)?;
        }
        self.flush_durable().await?;
        Ok(Queued(queued))
    }

    /// Protocol step 2 for a batch of messages decided one after another: each change is applied at once, so the
    /// next message's decision reads it (the same order twice in one batch is seen as such), but nothing it
    /// queued may be sent until [`Pending::durable`] has flushed them all, with one flush.
    pub fn pending(&self) -> Pending<'_> {
        Pending { store: self, queued: Vec::new() }
    }

    /// The one write that is not flushed: a message left waiting for a later pass (its trust check could not
    /// finish) notes since when, with its audit line. No external effect follows it; a crash that loses it only
    /// restarts that message's retry clock. It must not queue anything.
    pub fn commit_waiting(&self, change: Change) -> Result<(), StoreError> {
        debug_assert!(change.queued().is_empty(), "a change that queues mail must be committed durably");
        self.commit(change)
    }

    /// Waits until everything applied so far is on disk. Flushes queue behind each other; one that starts after a
    /// write was applied covers it, so waiting for the lock never weakens durability.
    async fn flush_durable(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Applies a change atomically; not yet durable. Private: see [`Store::commit_durable`].
    fn commit(&self, change: Change) -> Result<(), StoreError> {
        if change.counted().is_empty() {
            let batch = change.into_batch(|| self.db.generate_id())?;
            self.db.apply_batch(batch)?;
            return Ok(());
        }
        // Read-count-write of the rate counters must not interleave with another commit's.
        let _counting = self.counting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = rate::increments(&self.db, change.counted())?;
        let mut batch = change.into_batch(|| self.db.generate_id())?;
        for (key, value) in counters {
            batch.insert(key, value);
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Waits until everything committed is on disk (tests without a runtime).
    #[cfg(test)]
    fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn source_record(&self, source: &str, key: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.get(&records::key(SOURCES, &[source, key]))
    }

    /// Every message set aside and not released or dropped since, as (source, key, record), in key order.
    pub fn set_aside(&self) -> Result<Vec<(String, String, SourceRecord)>, StoreError> {
        let mut found = Vec::new();
        for item in self.db.scan_prefix(SOURCES) {
            let (key, value) = item?;
            let record: SourceRecord = decode(&key, &value)?;
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
        for key in by_id.into_iter().chain(by_hash) {
            if let Some(value) = self.db.get(&key)? {
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
        for item in self.db.scan_prefix(records::key(BY_PAYMENT, &[payment_id, ""])) {
            let (_, order) = item?;
            if let Some(record) = self.get::<OrderRecord>(&order)? {
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
        let provider_count = rate::count_since(&self.db, BY_PROVIDER_TIME, provider, since)?;
        let buyer_count = match buyer {
            Some(buyer) => rate::count_since(&self.db, BY_BUYER_TIME, &buyer.rate_key(), since)?,
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
        self.db.scan_prefix(OUTBOX).count()
    }

    /// Every order line, sorted by provider, order id and line.
    pub fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.orders_iter().collect()
    }

    /// Every order line in the same order, read one at a time: what `export` streams in constant memory.
    pub fn orders_iter(&self) -> impl Iterator<Item = Result<OrderRecord, StoreError>> + '_ {
        self.db.scan_prefix(ORDERS).map(|item| item.map_err(StoreError::from).and_then(|(k, v)| decode(&k, &v)))
    }

    /// The lines with this order id, from any provider: one seek per provider, not a read of every order.
    fn lines_with_order_id(&self, order_id: &str) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        let mut from = ORDERS.as_bytes().to_vec();
        while let Some(item) = self.db.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(ORDERS.as_bytes()) else { break };
            let provider = rest.split(|b| *b == 0).next().unwrap_or_default();
            let mut prefix = [ORDERS.as_bytes(), provider, b"\0", order_id.as_bytes(), b"\0"].concat();
            found.extend(self.scan::<OrderRecord>(&prefix)?);
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
            for item in self.db.scan_prefix(records::key(prefix, &[&needle, ""])) {
                let (_, order) = item?;
                if let Some(record) = self.get::<OrderRecord>(&order)? {
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
        self.db.get(key)?.map(|raw| decode(key, &raw)).transpose()
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|item| item.map_err(StoreError::from).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(raw)
        .map_err(|source| StoreError::Decode { key: String::from_utf8_lossy(key).replace('\0', "/"), source })
}

#[cfg(test)]
mod tests;
