//! The upgrade from the sled state (earlier keypost kept `state/sled`): every key and value is copied into a
//! new redb database built in staging, made durable and renamed into place; only then is `sled` renamed to
//! `sled.migrated`, which is kept, never deleted. The `sled` crate stays a dependency for this alone.
//!
//! A crash at any point is safe: before the rename of the new database, `sled` is untouched and the next start
//! migrates again from scratch; after it, the next start finds the new database and only renames `sled` away.
use std::path::{Path, PathBuf};

use super::StoreError;
use super::engine::{self, TABLE};

/// The old database's folder in the state folder.
pub(super) const LEGACY: &str = "sled";
/// What it is renamed to once its contents are in the new database.
const MIGRATED: &str = "sled.migrated";
/// Entries per transaction while copying: bounds the memory a large state needs.
const CHUNK: usize = 20_000;

/// Copies the sled database `legacy` into a new database at `path` (built at `staging`), then renames `legacy` to
/// `sled.migrated`.
pub(super) fn from_sled(legacy: &Path, staging: &Path, path: &Path) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let copied = {
        let sled = open_sled(legacy)?;
        // sled reads some damaged files as empty: without its schema version it is not a state to move over.
        if !sled.contains_key(super::records::META_SCHEMA).map_err(|err| open_error(legacy, err))? {
            return Err(StoreError::Corrupt { path: legacy.to_owned(), detail: "no schema version".into() });
        }
        let db = engine::create_file(staging)?;
        let copied = copy(&sled, &db, legacy)?;
        // Numbers sled handed out (audit keys, pool sequence) continue above the last one.
        let next = sled.generate_id().map_err(|err| open_error(legacy, err))?.saturating_add(1);
        let mut txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            table.insert(super::records::META_NEXT_ID, next.to_be_bytes().as_slice())?;
        }
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        copied
    };
    engine::publish(staging, path)?;
    let moved_to = set_aside(legacy)?;
    tracing::info!(
        entries = copied,
        seconds = started.elapsed().as_secs_f64(),
        kept = %moved_to.display(),
        "Moved the state from sled to redb; the old database is kept."
    );
    Ok(())
}

/// A start that finds both databases: an earlier migration completed but crashed before renaming `sled` away.
pub(super) fn finish(legacy: &Path) -> Result<(), StoreError> {
    let moved_to = set_aside(legacy)?;
    tracing::warn!(kept = %moved_to.display(), "An old sled state was left beside the state; it is not read, and kept.");
    Ok(())
}

fn copy(sled: &sled::Db, db: &redb::Database, legacy: &Path) -> Result<u64, StoreError> {
    let mut entries = sled.iter().peekable();
    let mut copied = 0u64;
    while entries.peek().is_some() {
        let mut txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for item in entries.by_ref().take(CHUNK) {
                let (key, value) = item.map_err(|err| open_error(legacy, err))?;
                table.insert(key.as_ref(), value.as_ref())?;
                copied += 1;
            }
        }
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
    }
    Ok(copied)
}

/// Renames `legacy` to `sled.migrated` (or `sled.migrated.N` when an earlier one is there) and makes it durable.
fn set_aside(legacy: &Path) -> Result<PathBuf, StoreError> {
    let io = |source: std::io::Error| StoreError::Open { path: legacy.to_owned(), source: Box::new(source) };
    let mut target = legacy.with_file_name(MIGRATED);
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = legacy.with_file_name(format!("{MIGRATED}.{n}"));
    }
    std::fs::rename(legacy, &target).map_err(io)?;
    engine::sync_dir(&target).map_err(io)?;
    Ok(target)
}

fn open_error(path: &Path, err: sled::Error) -> StoreError {
    StoreError::Open { path: path.to_owned(), source: Box::new(err) }
}

/// Opens sled at `dir`, mapping its failures to what the vendor needs to know. sled releases its file lock from
/// a background thread, so a database a process closed a moment ago may still read as locked: that is retried for
/// up to two seconds before it counts as another process (an older keypost still running) holding it.
pub(super) fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let mut attempts = 0;
    loop {
        // sled 0.34 can panic on some damaged files; that must become an error, not a crash loop.
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open());
        let detail = |what: String| StoreError::Corrupt {
            path: dir.to_owned(),
            detail: format!("sled could not recover it: {what}"),
        };
        return match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(err @ sled::Error::Corruption { .. })) => Err(detail(err.to_string())),
            Err(panic) => Err(detail(engine::panic_text(panic.as_ref()))),
            // sled 0.34 reports its file lock only as an `Other` I/O error with this text.
            Ok(Err(sled::Error::Io(err))) if err.to_string().contains("could not acquire lock") => {
                attempts += 1;
                if attempts < 40 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                Err(StoreError::Locked { path: dir.to_owned() })
            }
            Ok(Err(err)) => Err(open_error(dir, err)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{outgoing, record};
    use super::super::*;
    use super::LEGACY;
    use crate::mailbox::Disposition;

    /// A state as the sled store wrote it: created with its schema and counters marker, then changes applied as
    /// sled batches and flushed.
    fn old_state(state: &Path, changes: Vec<Change>) {
        let db = sled::Config::new().path(state.join(LEGACY)).open().unwrap();
        db.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes()).unwrap();
        db.insert(rate::META_COUNTED, b"1").unwrap();
        for change in changes {
            let batch = change.into_sled_batch(&db);
            db.apply_batch(batch).unwrap();
        }
        db.flush().unwrap();
    }

    fn old_changes() -> Vec<Change> {
        let mut sale = Change::new();
        sale.put_order(&record("A-1", 0, "asa@example.com", 6000));
        sale.index_email(Some("m1@p"), "hash1", "paypal", "A-1");
        sale.settle_source("maildir", "k1", Disposition::Done, 6000, "fulfilled");
        sale.queue(&OutboxEntry::new(outgoing("r1@v"), Purpose::Vendor, 6000));
        sale.audit(6000, "decided", "paypal/A-1#0", "issue");
        let mut second = Change::new();
        second.put_order(&record("A-2", 0, "asa@example.com", 6010));
        second.pool_add("pro", "CODE-1", 7);
        second.audit(6010, "decided", "paypal/A-2#0", "issue");
        vec![sale, second]
    }

    #[test]
    fn an_old_sled_state_is_moved_over_whole_and_kept_as_sled_migrated() {
        let dir = tempfile::tempdir().unwrap();
        old_state(dir.path(), old_changes());
        let store = Store::open(dir.path()).unwrap();
        assert!(!dir.path().join("sled").exists());
        assert!(dir.path().join("sled.migrated").is_dir(), "the old database is kept");
        assert_eq!(store.order_lines("paypal", "A-1").unwrap().len(), 1);
        assert_eq!(store.lookup("asa@example.com").unwrap().len(), 2);
        assert_eq!(store.seen_email(Some("m1@p"), "").unwrap().as_deref(), Some("paypal\0A-1"));
        assert_eq!(store.source_record("maildir", "k1").unwrap().unwrap().disposition, Disposition::Done);
        assert_eq!(store.outbox_entry("r1@v").unwrap().unwrap().outgoing.message_id, "r1@v");
        let asa = crate::order::BuyerEmail::parse("asa@example.com").unwrap();
        assert_eq!(store.recent_counts("paypal", Some(&asa), 5990).unwrap(), (2, 2), "the rate counters came along");
        assert_eq!(store.pool_available("pro", 5).unwrap().len(), 1);
        // Numbers continue above sled's: a new audit line sorts after the old ones, a new code after the old.
        assert!(store.pool_next_seq().unwrap() > 7);
        let mut change = Change::new();
        change.audit(6020, "noted", "x", "");
        store.commit(change).unwrap();
        let order: Vec<i64> = store.audit().unwrap().iter().map(|entry| entry.at).collect();
        assert_eq!(order, [6000, 6010, 6020]);
        drop(store);
        // The next start opens the new database and leaves the kept one alone.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.audit().unwrap().len(), 3);
        assert!(dir.path().join("sled.migrated").is_dir() && !dir.path().join("sled.migrated.2").exists());
    }

    #[test]
    fn a_migration_killed_before_it_published_starts_again_from_the_sled_state() {
        let dir = tempfile::tempdir().unwrap();
        old_state(dir.path(), old_changes());
        // A kill while copying leaves a half-built staging file beside the untouched sled state.
        drop(redb::Database::create(dir.path().join(super::engine::STAGING)).unwrap());
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.orders().unwrap().len(), 2);
        assert!(!dir.path().join(super::engine::STAGING).exists());
    }

    #[test]
    fn a_migration_killed_after_it_published_only_moves_the_sled_state_aside() {
        let dir = tempfile::tempdir().unwrap();
        old_state(dir.path(), old_changes());
        drop(Store::open(dir.path()).unwrap());
        // As if the kill came between publishing the new database and renaming the old one.
        std::fs::rename(dir.path().join("sled.migrated"), dir.path().join("sled")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.orders().unwrap().len(), 2);
        assert!(!dir.path().join("sled").exists() && dir.path().join("sled.migrated").is_dir());
    }

    #[test]
    fn a_damaged_sled_state_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        old_state(dir.path(), old_changes());
        let db_file = dir.path().join("sled").join("db");
        let len = std::fs::metadata(&db_file).unwrap().len() as usize;
        std::fs::write(&db_file, vec![0x5a; len]).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. } | StoreError::Open { .. }), "{err}");
        assert!(dir.path().join("sled").is_dir() && !dir.path().join("keypost.redb").exists());
    }
}
