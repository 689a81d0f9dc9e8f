//! The storage engine under [`super::Store`]: redb, one table of byte keys to byte values, in one file
//! `state/keypost.redb`. This file opens and creates it (mapping redb's failures to what a vendor needs to know),
//! reads by key and by prefix, and hands out the numbers audit lines and pool codes are keyed by.
//!
//! Invariants: a new database is built in `keypost.redb.creating` and renamed into place only once its schema is
//! durable; the file is created 0600; a file redb cannot recover is reported as damaged, never replaced.
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use redb::TableDefinition;

use super::StoreError;
use super::records::{META_NEXT_ID, META_SCHEMA};

/// Every record, under the prefix-keyed layout of `records.rs`; byte order is key order, as scans need.
pub(super) const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keypost");
/// The database file in the state folder.
pub(super) const FILE: &str = "keypost.redb";
/// Where a new database is built (first start, or a migration from sled) before it is renamed to [`FILE`].
pub(super) const STAGING: &str = "keypost.redb.creating";

/// redb's page cache. Its default (1 GiB) would let a large state fill the daemon's memory with pages it rarely
/// reads again; the hot records (outbox, recent orders, counters) fit in far less, and the kernel's page cache
/// serves the rest.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

pub(super) type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
pub(super) type WriteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// redb's errors, whichever step they come from, are the store's `Db` failure.
macro_rules! db_error {
    ($($kind:ty),*) => {$(
        impl From<$kind> for StoreError {
            fn from(err: $kind) -> Self {
                StoreError::Db(redb::Error::from(err))
            }
        }
    )*};
}
db_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Opens the database at `path`. A file left by an unclean shutdown is repaired by redb on open (it returns to
/// the last durable commit, checking every page's checksum); that is logged with how long it took.
pub(super) fn open(path: &Path) -> Result<redb::Database, StoreError> {
    let started = Instant::now();
    let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noted = repaired.clone();
    // redb may panic on a file it did not write (its own docs say so); that must become an error, not a crash loop.
    let opened = std::panic::catch_unwind(|| {
        redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |_| {
                if !noted.swap(true, Ordering::Relaxed) {
                    tracing::info!("The state was not closed cleanly; checking and repairing it.");
                }
            })
            .open(path)
    });
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => return Err(StoreError::Locked { path: path.to_owned() }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)))) => {
            return Err(corrupt(path, &what));
        }
        Ok(Err(err)) => return Err(StoreError::Open { path: path.to_owned(), source: Box::new(err) }),
        Err(panic) => return Err(corrupt(path, &panic_text(panic.as_ref()))),
    };
    if repaired.load(Ordering::Relaxed) {
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "State repaired after an unclean shutdown.");
    }
    Ok(db)
}

/// The database as a [`super::Store`] holds it: open to write (the daemon, a tool that changes the state), or
/// open only to read (a tool that reads), which writes nothing to the file: an open to write marks the header
/// and syncs it, and a close writes the allocator state and syncs again, five fsyncs that a `lookup` would
/// otherwise wait for on a busy disk.
pub(super) enum Db {
    Write(redb::Database),
    Read(redb::ReadOnlyDatabase),
}

impl Db {
    pub(super) fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        use redb::ReadableDatabase as _;
        Ok(match self {
            Db::Write(db) => db.begin_read()?,
            Db::Read(db) => db.begin_read()?,
        })
    }

    /// Refused on a database opened to read: a read-only store is a bug in its caller, never a silent no-op.
    pub(super) fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        match self {
            Db::Write(db) => Ok(db.begin_write()?),
            Db::Read(_) => Err(StoreError::ReadOnly),
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Write(_) => "Db::Write",
            Db::Read(_) => "Db::Read",
        })
    }
}

/// Opens the database at `path` only to read. `None` when it cannot be read as it is: an unclean shutdown left it
/// to repair, which only an open to write ([`open`]) does.
pub(super) fn open_read(path: &Path) -> Result<Option<redb::ReadOnlyDatabase>, StoreError> {
    let opened = std::panic::catch_unwind(|| redb::Builder::new().set_cache_size(CACHE_BYTES).open_read_only(path));
    match opened {
        Ok(Ok(db)) => Ok(Some(db)),
        Ok(Err(redb::DatabaseError::RepairAborted)) => Ok(None),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Locked { path: path.to_owned() }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)))) => Err(corrupt(path, &what)),
        Ok(Err(err)) => Err(StoreError::Open { path: path.to_owned(), source: Box::new(err) }),
        Err(panic) => Err(corrupt(path, &panic_text(panic.as_ref()))),
    }
}

/// What a caught panic said.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn corrupt(path: &Path, what: &str) -> StoreError {
    StoreError::Corrupt { path: path.to_owned(), detail: format!("redb could not recover it: {what}") }
}

/// Creates an empty database file 0600 at `path` (replacing a staging file a crash left) and opens it.
pub(super) fn create_file(path: &Path) -> Result<redb::Database, StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source: std::io::Error| StoreError::Open { path: path.to_owned(), source: Box::new(source) };
    if path.exists() {
        // Left by a crash during an earlier first start or migration: it was never the state.
        std::fs::remove_file(path).map_err(io)?;
    }
    // Made empty and 0600 first: redb initialises an empty file in place, with the mode it has.
    File::options().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    redb::Builder::new().set_cache_size(CACHE_BYTES).create(path).map_err(|err| match err {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_owned() },
        err => StoreError::Open { path: path.to_owned(), source: Box::new(err) },
    })
}

/// Builds a new database with its schema version at `staging`, durable, then renames it to `path`.
pub(super) fn create(staging: &Path, path: &Path, schema: u32) -> Result<(), StoreError> {
    {
        let db = create_file(staging)?;
        let mut txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            table.insert(META_SCHEMA, schema.to_be_bytes().as_slice())?;
            table.insert(super::rate::META_COUNTED, b"1".as_slice())?;
        }
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
    }
    publish(staging, path)
}

/// Renames a finished staging file into place and makes the rename itself durable.
pub(super) fn publish(staging: &Path, path: &Path) -> Result<(), StoreError> {
    let io = |source: std::io::Error| StoreError::Open { path: path.to_owned(), source: Box::new(source) };
    std::fs::rename(staging, path).map_err(io)?;
    sync_dir(path).map_err(io)
}

/// fsyncs the folder holding `path`, so a rename in it survives a power cut.
pub(super) fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The numbers that key audit lines and order pool codes: each higher than every one in a committed record, across
/// restarts (sled's `generate_id` did this before). The next one lives in memory and is written (`meta/next-id`)
/// in every commit after numbers were handed out, in the same transaction; one handed out but never committed
/// may come again after a restart, which nothing recorded can tell.
#[derive(Debug, Default)]
pub(super) struct Ids {
    next: AtomicU64,
    stored: AtomicU64,
}

impl Ids {
    pub(super) fn load(table: &ReadTable) -> Result<Self, StoreError> {
        let next = match table.get(META_NEXT_ID)? {
            Some(raw) => {
                let bytes: [u8; 8] = raw.value().try_into().map_err(|_| StoreError::Decode {
                    key: String::from_utf8_lossy(META_NEXT_ID).into_owned(),
                    source: serde::de::Error::custom("not an 8-byte number"),
                })?;
                u64::from_be_bytes(bytes)
            }
            None => 0,
        };
        Ok(Self { next: AtomicU64::new(next), stored: AtomicU64::new(next) })
    }

    pub(super) fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// Writes the next number into a transaction if numbers were handed out since it was last written; returns
    /// what to pass to [`Ids::stored`] once the transaction committed.
    pub(super) fn write(&self, table: &mut WriteTable<'_>) -> Result<Option<u64>, StoreError> {
        let next = self.next.load(Ordering::SeqCst);
        if next <= self.stored.load(Ordering::SeqCst) {
            return Ok(None);
        }
        table.insert(META_NEXT_ID, next.to_be_bytes().as_slice())?;
        Ok(Some(next))
    }

    pub(super) fn stored(&self, written: Option<u64>) {
        if let Some(next) = written {
            self.stored.fetch_max(next, Ordering::SeqCst);
        }
    }
}
