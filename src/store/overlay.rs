//! Changes applied but not yet in redb: a batch's decisions live here, visible to every read, until the durable
//! commit that writes them all in one redb transaction. One write transaction per message cost as much CPU as
//! everything else a decision does (page copies, checksums and a `pwrite` at each commit); a batch's changes now
//! share one.
//!
//! Invariants:
//! - Every read goes through a [`View`]: this buffer's entries first, then a redb snapshot, taken in that order.
//!   A write takes the buffer ([`Writing::take`]) only once it holds redb's write lock, and the taken entries stay
//!   readable until its transaction committed, so a read never misses a change that was applied, whether it
//!   lands before, during or after the commit.
//! - A change goes into the buffer whole, under its lock, and a write takes the whole buffer: a crash loses
//!   applied changes each whole, as redb's non-durable commits did before.
//! - Writes run one at a time, from taking the buffer to clearing it ([`Buffer::writing`]): redb's own write
//!   lock is released inside its commit, before the buffer's bookkeeping is done.
//! - A write that fails once it took the buffer (or panics there) poisons the store: every later read and
//!   write fails with [`StoreError::Failed`] until keypost restarts. What the buffer held may have queued
//!   replies that are not on disk; serving them would send what a restart (redb back to its last durable
//!   commit) has never decided, so the restart's repair is the only way on: the crash protocol's case.
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;
use super::engine::{ReadTable, WriteTable};

/// Each key's latest value; `None` is a removal. Values are shared, so a read's copy of the buffer (a range over
/// a batch's outbox entries, each a rendered reply) copies no bytes.
pub(super) type Map = BTreeMap<Vec<u8>, Option<Arc<[u8]>>>;

/// One write of a change, resolved (audit numbers and rate counters fixed): a put, or a removal (`None`).
pub(super) type Op = (Vec<u8>, Option<Vec<u8>>);

/// Applied changes not yet in redb.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    layers: Mutex<Layers>,
    /// Held by a write from before it takes the buffer until it cleared it.
    writer: Mutex<()>,
    /// A write failed after taking the buffer: see the module doc.
    failed: std::sync::atomic::AtomicBool,
    /// Tests: the next write fails after taking the buffer, as a full disk would make it.
    #[cfg(test)]
    pub(super) fail_next: std::sync::atomic::AtomicBool,
}

#[derive(Default, Clone)]
struct Layers {
    /// Applied since the last write took the buffer.
    open: Arc<Map>,
    /// Taken by a write whose transaction has not committed yet.
    flushing: Option<Arc<Map>>,
    /// A redb snapshot taken since the last commit, shared by the reads until the next one: opening a read
    /// transaction and its table for every read was a few percent of a decision. Cleared by every commit
    /// ([`Writing::written`], [`Buffer::stale`]), so a read never sees a snapshot older than the last commit.
    snapshot: Option<Arc<ReadTable>>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("open", &self.open.len())
            .field("flushing", &self.flushing.as_ref().map(|taken| taken.len()))
            .finish_non_exhaustive()
    }
}

impl Buffer {
    fn lock(&self) -> MutexGuard<'_, Layers> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent maps.
        self.layers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one change's writes, in order, at once.
    pub(super) fn apply(&self, ops: Vec<Op>) {
        let mut layers = self.lock();
        let open = Arc::make_mut(&mut layers.open);
        for (key, value) in ops {
            open.insert(key, value.map(Arc::from));
        }
    }

    /// Starts a write: one at a time (see the module doc). Refused once the store is poisoned.
    pub(super) fn writing(&self) -> Result<Writing<'_>, StoreError> {
        let guard = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.check()?;
        Ok(Writing { buffer: self, _guard: guard, took: false })
    }

    /// Refuses reads and writes once a write failed after taking the buffer.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Failed);
        }
        Ok(())
    }

    /// Something was committed to redb without the buffer (a one-off write at open, a test's raw write): reads
    /// take a new snapshot.
    pub(super) fn stale(&self) {
        self.lock().snapshot = None;
    }

    pub(super) fn is_empty(&self) -> bool {
        let layers = self.lock();
        layers.open.is_empty() && layers.flushing.is_none()
    }

    /// A read view: this buffer as it is now, over a redb snapshot taken after it (or since the last commit).
    pub(super) fn view(&self, table: impl FnOnce() -> Result<ReadTable, StoreError>) -> Result<View, StoreError> {
        self.check()?;
        let mut layers = self.lock();
        let table = match &layers.snapshot {
            Some(table) => table.clone(),
            None => {
                let table = Arc::new(table()?);
                layers.snapshot = Some(table.clone());
                table
            }
        };
        Ok(View { open: layers.open.clone(), flushing: layers.flushing.clone(), table })
    }
}

/// One write in progress (see [`Buffer::writing`]). Dropped without [`Writing::written`] once it took the
/// buffer (an error, a panic), it poisons the store.
pub(super) struct Writing<'a> {
    buffer: &'a Buffer,
    _guard: MutexGuard<'a, ()>,
    /// The buffer was taken and is not written yet.
    took: bool,
}

impl Writing<'_> {
    /// Takes everything applied; it stays readable until [`Writing::written`].
    pub(super) fn take(&mut self) -> Result<Arc<Map>, StoreError> {
        let taken = {
            let mut layers = self.buffer.lock();
            let taken = std::mem::take(&mut layers.open);
            layers.flushing = Some(taken.clone());
            taken
        };
        self.took = true;
        #[cfg(test)]
        if self.buffer.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Flush("injected failure".into()));
        }
        Ok(taken)
    }

    /// The transaction that wrote what was taken committed: its entries are redb's now, and reads take a new
    /// snapshot.
    pub(super) fn written(mut self) {
        self.took = false;
        let mut layers = self.buffer.lock();
        layers.flushing = None;
        layers.snapshot = None;
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if self.took {
            self.buffer.failed.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!("A write to the state failed; keypost must restart to go on from its last durable commit.");
        }
    }
}

/// Writes resolved ops into a redb transaction's table.
pub(super) fn write_ops<'a, V: AsRef<[u8]> + 'a>(
    table: &mut WriteTable<'_>,
    ops: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<V>)>,
) -> Result<(), StoreError> {
    for (key, value) in ops {
        match value {
            Some(value) => {
                table.insert(key.as_slice(), value.as_ref())?;
            }
            None => {
                table.remove(key.as_slice())?;
            }
        }
    }
    Ok(())
}

/// Stored bytes: borrowed from redb's snapshot, or copied from the buffer.
pub(super) enum Bytes {
    Db(redb::AccessGuard<'static, &'static [u8]>),
    Mem(Arc<[u8]>),
}

impl Bytes {
    pub(super) fn value(&self) -> &[u8] {
        match self {
            Bytes::Db(guard) => guard.value(),
            Bytes::Mem(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.value()))
    }
}

/// A key and its value.
pub(super) type Entry = (Bytes, Bytes);

/// The records as a read sees them: the buffer over a redb snapshot.
pub(super) struct View {
    open: Arc<Map>,
    flushing: Option<Arc<Map>>,
    table: Arc<ReadTable>,
}

impl View {
    /// The buffer's word on `key`: `Some(None)` when it was removed.
    fn buffered(&self, key: &[u8]) -> Option<&Option<Arc<[u8]>>> {
        self.open.get(key).or_else(|| self.flushing.as_ref()?.get(key))
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(buffered) = self.buffered(key) {
            return Ok(buffered.clone().map(Bytes::Mem));
        }
        Ok(self.table.get(key)?.map(Bytes::Db))
    }

    /// The value under `key`, copied out.
    pub(super) fn get_vec(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Every entry with `from <= key < to` (`to` `None`: to the end), in key order either way.
    pub(super) fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Merged, StoreError> {
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        let db = match to {
            Some(to) => self.table.range(from..to)?,
            None => self.table.range(from..)?,
        };
        let mut mem = Map::new();
        // Older layer first, so the newer one overwrites it.
        for layer in self.flushing.iter().chain(std::iter::once(&self.open)) {
            for (key, value) in layer.range::<[u8], _>((Bound::Included(from), upper)) {
                mem.insert(key.clone(), value.clone());
            }
        }
        Ok(Merged { db, mem: mem.into_iter().collect(), front: None, back: None })
    }

    /// Every entry whose key starts with `prefix`, in key order either way.
    pub(super) fn under(&self, prefix: &[u8]) -> Result<Merged, StoreError> {
        // The first key after every one with the prefix: the prefix with its last byte below 0xff raised by one.
        let mut end = prefix.to_vec();
        while end.last() == Some(&u8::MAX) {
            end.pop();
        }
        match end.last_mut() {
            Some(last) => {
                *last += 1;
                self.range(prefix, Some(&end))
            }
            None => self.range(prefix, None),
        }
    }
}

/// A redb range merged with the buffer's entries in it: a buffered value replaces the stored one, a buffered
/// removal hides it.
pub(super) struct Merged {
    db: redb::Range<'static, &'static [u8], &'static [u8]>,
    mem: VecDeque<Buffered>,
    /// The next stored entry from each end, read but not yet returned.
    front: Option<Stored>,
    back: Option<Stored>,
}

/// A buffered key and its value (`None`: removed).
type Buffered = (Vec<u8>, Option<Arc<[u8]>>);

type Stored = (redb::AccessGuard<'static, &'static [u8]>, redb::AccessGuard<'static, &'static [u8]>);

/// Which end [`Merged`] is read from.
#[derive(Clone, Copy)]
enum End {
    Front,
    Back,
}

impl Merged {
    /// Reads the next stored entry from `end` into its slot; once the range is used up, the one the other end
    /// read ahead is the last.
    fn fill(&mut self, end: End) -> Result<(), StoreError> {
        let (slot, other) = match end {
            End::Front => (&mut self.front, &mut self.back),
            End::Back => (&mut self.back, &mut self.front),
        };
        if slot.is_none() {
            let next = match end {
                End::Front => self.db.next(),
                End::Back => self.db.next_back(),
            };
            *slot = match next {
                Some(entry) => Some(entry?),
                None => other.take(),
            };
        }
        Ok(())
    }

    fn take_db(&mut self, end: End) -> Option<Entry> {
        let (key, value) = match end {
            End::Front => self.front.take(),
            End::Back => self.back.take(),
        }?;
        Some((Bytes::Db(key), Bytes::Db(value)))
    }

    fn step(&mut self, end: End) -> Option<Result<Entry, StoreError>> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        loop {
            if let Err(err) = self.fill(end) {
                return Some(Err(err));
            }
            let (slot, mem) = match end {
                End::Front => (&self.front, self.mem.front()),
                End::Back => (&self.back, self.mem.back()),
            };
            let Some((mem_key, _)) = mem else {
                // Nothing buffered (left) in the range: the stored entries as they are.
                return self.take_db(end).map(Ok);
            };
            match (slot.as_ref().map(|(key, _)| key.value().cmp(mem_key.as_slice())), end) {
                (Some(Less), End::Front) | (Some(Greater), End::Back) => return self.take_db(end).map(Ok),
                (Some(Equal), _) => {
                    // Replaced or removed in the buffer: the stored entry is not returned.
                    self.take_db(end);
                }
                _ => {}
            }
            let (key, value) = match end {
                End::Front => self.mem.pop_front(),
                End::Back => self.mem.pop_back(),
            }?;
            if let Some(value) = value {
                return Some(Ok((Bytes::Mem(Arc::from(key)), Bytes::Mem(value))));
            }
        }
    }
}

impl Iterator for Merged {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(End::Front)
    }
}

impl DoubleEndedIterator for Merged {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(End::Back)
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::TABLE;
    use super::super::{Change, Store};

    fn put(store: &Store, pairs: &[(&str, &str)]) {
        let mut change = Change::new();
        for (key, value) in pairs {
            change.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        store.commit(change).unwrap();
    }

    fn remove(store: &Store, key: &str) {
        let mut change = Change::new();
        change.remove(key.as_bytes().to_vec());
        store.commit(change).unwrap();
    }

    fn keys(items: impl Iterator<Item = Result<super::Entry, super::StoreError>>) -> Vec<String> {
        items
            .map(|item| {
                let (key, value) = item.unwrap();
                format!("{}={}", String::from_utf8_lossy(key.value()), String::from_utf8_lossy(value.value()))
            })
            .collect()
    }

    /// What redb itself holds under `key`, without the buffer.
    fn in_redb(store: &Store, key: &str) -> Option<Vec<u8>> {
        let table = store.db.begin_read().unwrap().open_table(TABLE).unwrap();
        table.get(key.as_bytes()).unwrap().map(|value| value.value().to_vec())
    }

    #[test]
    fn a_change_applied_is_read_at_once_and_reaches_redb_only_with_the_next_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, &[("t/a", "1")]);
        assert_eq!(store.view().unwrap().get_vec(b"t/a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(in_redb(&store, "t/a"), None, "not written yet");
        store.flush_blocking().unwrap();
        assert_eq!(in_redb(&store, "t/a"), Some(b"1".to_vec()));
        assert!(store.buffer.is_empty());
        remove(&store, "t/a");
        assert_eq!(store.view().unwrap().get_vec(b"t/a").unwrap(), None, "a removal hides the stored value");
        assert_eq!(in_redb(&store, "t/a"), Some(b"1".to_vec()));
        store.flush_blocking().unwrap();
        assert_eq!(in_redb(&store, "t/a"), None);
    }

    #[test]
    fn a_range_merges_the_buffer_over_redb_in_key_order_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, &[("t/b", "old"), ("t/d", "4"), ("t/f", "6"), ("t/h", "8"), ("u/x", "other")]);
        store.flush_blocking().unwrap();
        put(&store, &[("t/a", "1"), ("t/b", "2"), ("t/e", "5"), ("t/i", "9")]);
        remove(&store, "t/f");
        let forward = keys(store.prefix(b"t/").unwrap());
        assert_eq!(forward, ["t/a=1", "t/b=2", "t/d=4", "t/e=5", "t/h=8", "t/i=9"]);
        let mut backward = keys(store.prefix(b"t/").unwrap().rev());
        backward.reverse();
        assert_eq!(backward, forward);
        // Taken from both ends in turn, every entry comes once.
        let mut merged = store.prefix(b"t/").unwrap();
        let mut seen = Vec::new();
        loop {
            let Some(front) = merged.next() else { break };
            seen.push(keys(std::iter::once(front)).remove(0));
            let Some(back) = merged.next_back() else { break };
            seen.push(keys(std::iter::once(back)).remove(0));
        }
        seen.sort();
        assert_eq!(seen, forward);
        assert_eq!(keys(store.view().unwrap().range(b"t/c", Some(b"t/i")).unwrap()), ["t/d=4", "t/e=5", "t/h=8"]);
    }

    #[test]
    fn changes_applied_and_not_written_are_written_when_the_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let clone = store.clone();
            put(&store, &[("t/a", "1")]);
            drop(store);
            assert_eq!(in_redb(&clone, "t/a"), None, "another handle still holds the store");
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(in_redb(&store, "t/a"), Some(b"1".to_vec()));
    }

    #[test]
    fn a_durable_commit_writes_the_buffer_before_its_own_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, &[("t/a", "buffered"), ("t/b", "buffered")]);
        let mut change = Change::new();
        change.put(b"t/b".to_vec(), b"durable".to_vec());
        store.write(vec![change]).unwrap();
        assert_eq!(in_redb(&store, "t/a"), Some(b"buffered".to_vec()));
        assert_eq!(in_redb(&store, "t/b"), Some(b"durable".to_vec()), "the later change wins");
        assert!(store.buffer.is_empty());
    }

    #[test]
    fn a_read_after_a_durable_commit_sees_it_though_reads_share_one_snapshot_until_then() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, &[("t/a", "1")]);
        store.flush_blocking().unwrap();
        assert_eq!(store.view().unwrap().get_vec(b"t/a").unwrap(), Some(b"1".to_vec()));
        // A change committed durably goes straight into redb's transaction, never through the buffer.
        let mut change = Change::new();
        change.put(b"t/a".to_vec(), b"2".to_vec());
        store.write(vec![change]).unwrap();
        assert_eq!(store.view().unwrap().get_vec(b"t/a").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn a_write_that_fails_after_taking_the_buffer_stops_every_later_read_and_write_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            put(&store, &[("t/a", "durable")]);
            store.flush_blocking().unwrap();
            put(&store, &[("t/b", "applied")]);
            store.buffer.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(store.flush_blocking().is_err());
            // Reads would otherwise serve what is not on disk (an outbox entry, say), and writes would build on it.
            assert!(matches!(store.view(), Err(super::StoreError::Failed)));
            assert!(matches!(store.outbox(), Err(super::StoreError::Failed)));
            let mut change = Change::new();
            change.put(b"t/c".to_vec(), b"1".to_vec());
            assert!(matches!(store.commit(change), Err(super::StoreError::Failed)));
            assert!(matches!(store.flush_blocking(), Err(super::StoreError::Failed)));
        }
        // A restart goes on from the last durable commit.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.view().unwrap().get_vec(b"t/a").unwrap(), Some(b"durable".to_vec()));
        assert_eq!(store.view().unwrap().get_vec(b"t/b").unwrap(), None);
    }
}
