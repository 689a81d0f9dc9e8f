//! Rate-limit counters: distinct orders per provider and per buyer, per minute. "How many since" sums at most the
//! ~61 counters of the window instead of reading every order recorded in it (a backlog drain puts thousands of
//! orders into one hour, and every decision asks).
//!
//! Invariants: a counter counts the time-index entries (`tp/`, `tb/`) of its minute, each once: it is raised in
//! the same write transaction that writes a new entry (never for a rewrite of an existing one), and write
//! transactions run one at a time, so two commits cannot both count one entry or lose an increment. Entries are never removed,
//! so counters only grow. A database from before the counters gets them built once from the indexes at open.
use std::collections::{BTreeMap, HashSet};

use redb::ReadableTable;

use super::engine::{TABLE, WriteTable};
use super::overlay::View;
use super::records::{BY_BUYER_TIME, BY_PROVIDER_TIME, key, time_part};
use super::{Store, StoreError, decode};

/// Per-minute counters, keyed by index prefix, provider or buyer, and the minute's first second.
pub(super) const COUNTS: &str = "c/";
/// Present once the counters cover every time-index entry (set at creation, or after the one-off rebuild).
pub(super) const META_COUNTED: &[u8] = b"meta/rate-counters";
const MINUTE: i64 = 60;

/// A key and its value, to write in the same transaction.
type Put = (Vec<u8>, Vec<u8>);

/// A time-index entry a change writes, and the counter it adds one to if it is new.
#[derive(Debug)]
pub(super) struct Counted {
    pub index_key: Vec<u8>,
    pub counter_key: Vec<u8>,
}

impl Counted {
    /// `index` is [`BY_PROVIDER_TIME`] or [`BY_BUYER_TIME`]; `ident` the provider or the buyer's rate key.
    pub fn new(index: &str, ident: &str, at: i64, rest: &str) -> Self {
        Self { index_key: key(index, &[ident, &time_part(at), rest]), counter_key: counter_key(index, ident, at) }
    }
}

fn counter_key(index: &str, ident: &str, at: i64) -> Vec<u8> {
    key(COUNTS, &[index, ident, &time_part(at.div_euclid(MINUTE) * MINUTE)])
}

/// The counter values to write with a batch that puts `entries`: each entry not yet in the database, and not
/// repeated earlier in `entries`, adds one to its minute. Call in the transaction, before it writes `entries`.
pub(super) fn increments(db: &impl Records, entries: &[Counted]) -> Result<Vec<Put>, StoreError> {
    let mut seen = HashSet::new();
    let mut counters: BTreeMap<&[u8], u64> = BTreeMap::new();
    for entry in entries {
        if !seen.insert(entry.index_key.as_slice()) || db.bytes(entry.index_key.as_slice())?.is_some() {
            continue;
        }
        let count = match counters.get_mut(entry.counter_key.as_slice()) {
            Some(count) => count,
            None => {
                let stored = read(db, &entry.counter_key)?;
                counters.entry(entry.counter_key.as_slice()).or_insert(stored)
            }
        };
        *count = count.saturating_add(1);
    }
    Ok(counters.into_iter().map(|(k, n)| (k.to_vec(), n.to_string().into_bytes())).collect())
}

/// The records, as a write transaction or a read view sees them.
pub(super) trait Records {
    fn bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

impl Records for WriteTable<'_> {
    fn bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key)?.map(|value| value.value().to_vec()))
    }
}

impl Records for View {
    fn bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_vec(key)
    }
}

fn read(db: &impl Records, counter_key: &[u8]) -> Result<u64, StoreError> {
    db.bytes(counter_key)?.map_or(Ok(0), |raw| decode(counter_key, &raw))
}

/// Distinct orders in `index` for `ident` from the start of the minute `since` falls in: up to 59 s more than
/// asked for, never less, so a limit checked against it is never exceeded.
pub(super) fn count_since(db: &View, index: &str, ident: &str, since: i64) -> Result<u32, StoreError> {
    let start = counter_key(index, ident, since);
    let mut end = key(COUNTS, &[index, ident, ""]);
    end.push(0xff);
    let mut total = 0u64;
    for item in db.range(&start, Some(&end))? {
        let (k, v) = item?;
        total = total.saturating_add(decode::<u64>(k.value(), v.value())?);
    }
    Ok(u32::try_from(total).unwrap_or(u32::MAX))
}

/// Builds the counters from the time indexes once, for a database written before they existed.
pub(super) fn build_once(store: &Store) -> Result<(), StoreError> {
    if store.view()?.get(META_COUNTED)?.is_some() {
        return Ok(());
    }
    let mut counters: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for index in [BY_PROVIDER_TIME, BY_BUYER_TIME] {
        for item in store.prefix(index.as_bytes())? {
            let (k, _) = item?;
            // `index` + ident NUL time NUL rest; neither a provider nor a rate key contains NUL.
            let Some(rest) = k.value().get(index.len()..) else { continue };
            let mut parts = rest.splitn(3, |b| *b == 0);
            let (Some(ident), Some(time)) = (parts.next(), parts.next()) else { continue };
            let Some(at) = std::str::from_utf8(time).ok().and_then(|t| t.parse::<i64>().ok()) else { continue };
            let counter = counter_key(index, &String::from_utf8_lossy(ident), at);
            *counters.entry(counter).or_default() += 1;
        }
    }
    let built = counters.len();
    let mut txn = store.db.begin_write()?;
    {
        let mut table = txn.open_table(TABLE)?;
        for (k, n) in counters {
            table.insert(k.as_slice(), n.to_string().into_bytes().as_slice())?;
        }
        table.insert(META_COUNTED, b"1".as_slice())?;
    }
    txn.set_durability(redb::Durability::Immediate)?;
    txn.commit()?;
    store.buffer.stale();
    tracing::info!(counters = built, "Built the rate-limit counters from the order history (once).");
    Ok(())
}
