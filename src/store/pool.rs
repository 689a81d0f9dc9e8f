//! The code pools' records (see `pool.rs` for what a pool is): every code under its product, the queue of codes
//! still available in import order, and the orders waiting for codes. The store records; taking a code is
//! decided by the daemon (`daemon/pool.rs`) and written in the same [`Change`] as the order line holding it.
//!
//! # Keys
//! - `pc/PRODUCT NUL CODE` -> [`PoolCode`]: every code ever imported, with its state (the duplicate check).
//! - `pa/PRODUCT NUL SEQ` -> [`Available`]: the available queue, oldest import first; a code leaves it when taken.
//! - `pw/PROVIDER NUL ORDER` -> [`WaitingOrder`]: a sale that found its pool short, answered after an import.
use serde::{Deserialize, Serialize};

use super::records::key;
use super::{Change, Store, StoreError};
use crate::fulfil::{Grant, Recipient};
use crate::order::OrderId;

const POOL_CODES: &str = "pc/";
const POOL_AVAILABLE: &str = "pa/";
const POOL_WAITING: &str = "pw/";

/// One imported code and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCode {
    /// Its place in the available queue (import order).
    pub seq: u64,
    #[serde(flatten)]
    pub state: CodeState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CodeState {
    Available,
    /// Handed out for this order line (`provider/order#line`).
    HandedOut {
        order: String,
        at: i64,
    },
    /// Handed out, then revoked: never handed out again.
    Revoked {
        order: String,
        at: i64,
        reason: String,
    },
}

/// A code in the available queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Available {
    pub seq: u64,
    pub code: String,
}

/// A sale whose pool had too few codes: recorded for review, answered once codes are imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingOrder {
    pub provider: String,
    pub order_id: OrderId,
    /// What the sale was decided to get; pool grants wait for codes, any others are issued with them.
    pub grants: Vec<Grant>,
    pub recipient: Recipient,
    /// Unix seconds since when it waits; waiting orders are answered oldest first.
    pub since: i64,
    pub seq: u64,
}

impl WaitingOrder {
    /// `provider/order_id`, for logs and the audit trail.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider, self.order_id)
    }
}

/// How many codes of one product are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeCounts {
    pub available: usize,
    pub handed_out: usize,
    pub revoked: usize,
}

fn seq_part(seq: u64) -> String {
    format!("{seq:020}")
}

impl Change {
    /// Adds a new code to the end of its product's available queue.
    pub fn pool_add(&mut self, product: &str, code: &str, seq: u64) {
        self.put_json(key(POOL_CODES, &[product, code]), &PoolCode { seq, state: CodeState::Available });
        self.put_json(key(POOL_AVAILABLE, &[product, &seq_part(seq)]), &Available { seq, code: code.to_owned() });
    }

    /// Takes a code out of the available queue for an order line (`provider/order#line`). Must be in the same
    /// change as the order line that holds it and the reply that carries it.
    pub fn pool_take(&mut self, product: &str, taken: &Available, order: &str, at: i64) {
        self.remove(key(POOL_AVAILABLE, &[product, &seq_part(taken.seq)]));
        let state = CodeState::HandedOut { order: order.to_owned(), at };
        self.put_json(key(POOL_CODES, &[product, &taken.code]), &PoolCode { seq: taken.seq, state });
    }

    /// Marks a handed-out code revoked; it stays out of the pool.
    pub fn pool_revoke(&mut self, product: &str, code: &str, seq: u64, order: &str, at: i64, reason: &str) {
        let state = CodeState::Revoked { order: order.to_owned(), at, reason: reason.to_owned() };
        self.put_json(key(POOL_CODES, &[product, code]), &PoolCode { seq, state });
    }

    pub fn wait_for_codes(&mut self, waiting: &WaitingOrder) {
        self.put_json(key(POOL_WAITING, &[&waiting.provider, waiting.order_id.as_str()]), waiting);
    }

    pub fn stop_waiting(&mut self, provider: &str, order_id: &str) {
        self.remove(key(POOL_WAITING, &[provider, order_id]));
    }
}

impl Store {
    /// A fresh number for the available queue, higher than every earlier one.
    pub fn pool_next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.ids.take())
    }

    pub fn pool_code(&self, product: &str, code: &str) -> Result<Option<PoolCode>, StoreError> {
        self.get(&key(POOL_CODES, &[product, code]))
    }

    /// The first `count` available codes of a product, oldest import first (fewer when the pool has fewer).
    pub fn pool_available(&self, product: &str, count: usize) -> Result<Vec<Available>, StoreError> {
        let prefix = key(POOL_AVAILABLE, &[product, ""]);
        self.prefix(&prefix)?
            .take(count)
            .map(|item| item.and_then(|(k, v)| super::decode(k.value(), v.value())))
            .collect()
    }

    /// How many codes of a product are available right now.
    pub fn pool_available_count(&self, product: &str) -> usize {
        self.prefix(&key(POOL_AVAILABLE, &[product, ""])).map_or(0, Iterator::count)
    }

    /// Every code of a product by state.
    pub fn pool_counts(&self, product: &str) -> Result<CodeCounts, StoreError> {
        let mut counts = CodeCounts::default();
        for code in self.scan::<PoolCode>(&key(POOL_CODES, &[product, ""]))? {
            match code.state {
                CodeState::Available => counts.available += 1,
                CodeState::HandedOut { .. } => counts.handed_out += 1,
                CodeState::Revoked { .. } => counts.revoked += 1,
            }
        }
        Ok(counts)
    }

    /// Every product that has codes in the state, in order.
    pub fn pool_products(&self) -> Result<Vec<String>, StoreError> {
        let mut products = Vec::new();
        for item in self.prefix(POOL_CODES.as_bytes())? {
            let (key, _) = item?;
            let name = key.value().get(POOL_CODES.len()..).unwrap_or_default();
            let product = name.split(|b| *b == 0).next().unwrap_or_default();
            let product = String::from_utf8_lossy(product).into_owned();
            if products.last() != Some(&product) {
                products.push(product);
            }
        }
        Ok(products)
    }

    /// Every order waiting for codes, oldest first.
    pub fn waiting_orders(&self) -> Result<Vec<WaitingOrder>, StoreError> {
        let mut waiting: Vec<WaitingOrder> = self.scan(POOL_WAITING.as_bytes())?;
        waiting.sort_by_key(|w| w.seq);
        Ok(waiting)
    }

    pub fn waiting_order(&self, provider: &str, order_id: &str) -> Result<Option<WaitingOrder>, StoreError> {
        self.get(&key(POOL_WAITING, &[provider, order_id]))
    }

    pub fn has_waiting_orders(&self) -> bool {
        self.prefix(POOL_WAITING.as_bytes()).is_ok_and(|mut entries| entries.next().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn add(store: &Store, product: &str, codes: &[&str]) {
        let mut change = Change::new();
        for code in codes {
            change.pool_add(product, code, store.pool_next_seq().unwrap());
        }
        store.commit(change).unwrap();
    }

    #[test]
    fn codes_come_out_in_import_order_and_a_taken_code_leaves_the_queue_for_good() {
        let (_dir, store) = store();
        add(&store, "game", &["C-3", "A-1"]);
        add(&store, "game", &["B-2"]);
        add(&store, "other", &["Z-9"]);
        let first = store.pool_available("game", 2).unwrap();
        assert_eq!(first.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["C-3", "A-1"]);
        let mut change = Change::new();
        change.pool_take("game", &first[0], "paypal/1#0", 100);
        store.commit(change).unwrap();
        assert_eq!(
            store.pool_available("game", 5).unwrap().iter().map(|a| &a.code).collect::<Vec<_>>(),
            ["A-1", "B-2"]
        );
        assert_eq!(store.pool_available_count("game"), 2);
        let taken = store.pool_code("game", "C-3").unwrap().unwrap();
        assert_eq!(taken.state, CodeState::HandedOut { order: "paypal/1#0".into(), at: 100 });
        let mut change = Change::new();
        change.pool_revoke("game", "C-3", taken.seq, "paypal/1#0", 200, "refund");
        store.commit(change).unwrap();
        assert_eq!(store.pool_counts("game").unwrap(), CodeCounts { available: 2, handed_out: 0, revoked: 1 });
        assert_eq!(store.pool_available_count("game"), 2, "a revoked code does not come back");
        assert_eq!(store.pool_products().unwrap(), ["game", "other"]);
    }

    #[test]
    fn waiting_orders_are_listed_oldest_first_and_forgotten_when_done() {
        let (_dir, store) = store();
        let waiting = |order: &str, seq| WaitingOrder {
            provider: "paypal".into(),
            order_id: OrderId::parse(order).unwrap(),
            grants: Vec::new(),
            recipient: Recipient::Buyer,
            since: 0,
            seq,
        };
        let mut change = Change::new();
        change.wait_for_codes(&waiting("B", 2));
        change.wait_for_codes(&waiting("A", 5));
        store.commit(change).unwrap();
        let order: Vec<_> = store.waiting_orders().unwrap().into_iter().map(|w| w.order_id.to_string()).collect();
        assert_eq!(order, ["B", "A"]);
        assert!(store.waiting_order("paypal", "A").unwrap().is_some());
        let mut change = Change::new();
        change.stop_waiting("paypal", "B");
        change.stop_waiting("paypal", "A");
        store.commit(change).unwrap();
        assert!(!store.has_waiting_orders());
    }
}
