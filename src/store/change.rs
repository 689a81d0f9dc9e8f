//! [`Change`]: one state transition, collected and then applied within one write transaction (atomic).
use serde::Serialize;

use super::StoreError;
use super::engine::Ids;
use super::overlay::Op;
use super::rate::{Counted, Records};
use super::records::*;
use crate::fulfil::FollowKind;
use crate::mailbox::Disposition;

/// Writes that belong together. Nothing is written until [`super::Store::commit_durable`].
#[derive(Debug, Default)]
pub struct Change {
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    removes: Vec<Vec<u8>>,
    audit: Vec<AuditEntry>,
    queued: Vec<String>,
    /// Rate-limit time-index entries; each new one raises its minute's counter (`rate.rs`).
    counted: Vec<Counted>,
}

impl Change {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or updates an order line, with its buyer, licensee, chain and rate-limit indexes. Only a sale is
    /// an order placed: a refund remembered before its sale, a renewal or an extension does not count towards
    /// the rate limits.
    pub fn put_order(&mut self, record: &OrderRecord) {
        let order_key = record.key();
        let label = String::from_utf8_lossy(&order_key).into_owned();
        let order_ref = [record.provider.as_str(), record.order_id.as_str()].join("\0");
        let placed = record.kind == crate::order::OrderKind::Sale;
        if placed {
            self.count(Counted::new(BY_PROVIDER_TIME, &record.provider, record.received_at, record.order_id.as_str()));
        }
        if let Some(buyer) = &record.buyer_email {
            self.put(key(BY_BUYER, &[&buyer.as_str().to_lowercase(), &label]), order_key.clone());
            if placed {
                self.count(Counted::new(BY_BUYER_TIME, &buyer.rate_key(), record.received_at, &order_ref));
            }
        }
        if let Some(license) = &record.license {
            let licensee = license.grant.licensee.as_str().to_lowercase();
            self.put(key(BY_LICENSEE, &[&licensee, &label]), order_key.clone());
            if let Some(follows) = license.grant.follows.as_ref().filter(|f| f.how != FollowKind::Upgrade) {
                let root =
                    super::records::order_key(&follows.of.provider, follows.of.order_id.as_str(), follows.of.line);
                self.put(key(BY_CHAIN, &[&String::from_utf8_lossy(&root), &label]), order_key.clone());
            }
        }
        if let Some(subscription) = &record.chain.subscription {
            self.put(key(BY_SUBSCRIPTION, &[&record.provider, subscription.as_str()]), order_key.clone());
        }
        if let Some(payment) = &record.payment_id {
            self.put(key(BY_PAYMENT, &[payment.as_str(), &label]), order_key.clone());
        }
        self.put_json(order_key, record);
    }

    /// Rewrites an order line's record whose reply state alone changed (sent, failed): its buyer, licensee,
    /// chain and rate-limit index entries stay as they are. Writing them again with the same values would still
    /// dirty their B-tree pages, several per order, in every group of sends' commit.
    pub fn put_reply_state(&mut self, record: &OrderRecord) {
        self.put_json(record.key(), record);
    }

    /// Remembers an order email by Message-ID and content hash, pointing at its order.
    pub fn index_email(&mut self, message_id: Option<&str>, content_hash: &str, provider: &str, order_id: &str) {
        let order_ref = [provider, order_id].join("\0").into_bytes();
        if let Some(id) = message_id {
            self.put(key(BY_MESSAGE_ID, &[id]), order_ref.clone());
        }
        if !content_hash.is_empty() {
            self.put(key(BY_HASH, &[content_hash]), order_ref);
        }
    }

    /// Records a source message's final disposition (and forgets that it was waiting for a retry).
    pub fn settle_source(&mut self, source: &str, message_key: &str, disposition: Disposition, at: i64, note: &str) {
        self.put_source(source, message_key, &SourceRecord { disposition, at, note: note.to_owned(), sha256: None });
    }

    /// Records a source message's final disposition with the digest of its bytes (set-aside mail).
    pub fn put_source(&mut self, source: &str, message_key: &str, record: &SourceRecord) {
        self.put_json(key(SOURCES, &[source, message_key]), record);
        self.removes.push(key(RETRYING, &[&format!("{source}/{message_key}")]));
    }

    /// Forgets a source message (`keypost aside release`): when it comes round again it is read as new.
    pub fn forget_source(&mut self, source: &str, message_key: &str) {
        self.removes.push(key(SOURCES, &[source, message_key]));
    }

    /// Notes when a message (by its label `source/key`) was first left waiting for a later pass. Not final:
    /// no source record is written, so the message is handed out and checked again.
    /// The highest number seen in a provider's sequence.
    pub fn put_sequence(&mut self, scope: &str, number: u64) {
        self.put_json(key(SEQUENCES, &[scope]), &number);
    }

    pub fn retrying_since(&mut self, label: &str, since: i64) {
        self.put_json(key(RETRYING, &[label]), &since);
    }

    /// Puts a message into the outbox (or updates its attempts).
    pub fn queue(&mut self, entry: &OutboxEntry) {
        self.queued.push(entry.outgoing.message_id.clone());
        self.put_json(key(OUTBOX, &[&entry.outgoing.message_id]), entry);
    }

    pub fn unqueue(&mut self, message_id: &str) {
        self.removes.push(key(OUTBOX, &[message_id]));
    }

    /// Records a period's digest as queued (with its outbox entry, in the same change).
    pub fn digest(&mut self, period: &str, record: &DigestRecord) {
        self.put_json(key(DIGESTS, &[period]), record);
    }

    /// Records a buyer's lost-licence request.
    pub fn self_service(&mut self, record: &SelfServiceRecord) {
        let address = record.address.to_lowercase();
        self.put_json(key(SELF_SERVICE, &[&address, &time_part(record.at), &record.origin]), record);
    }

    pub fn audit(&mut self, at: i64, event: &str, subject: &str, detail: impl Into<String>) {
        self.audit.push(AuditEntry { at, event: event.to_owned(), subject: subject.to_owned(), detail: detail.into() });
    }

    /// Whether this change puts any mail into the outbox.
    pub fn queues_mail(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The Message-IDs this change puts into the outbox, in order; handed out by a durable commit only.
    pub(super) fn queued(&self) -> &[String] {
        &self.queued
    }

    fn count(&mut self, entry: Counted) {
        self.put(entry.index_key.clone(), Vec::new());
        self.counted.push(entry);
    }

    pub(super) fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        // Records are plain data (strings, numbers, enums): serialising them cannot fail.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.put(key, bytes);
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((key, value));
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        self.removes.push(key);
    }

    /// The change's writes, resolved against `db` as it is before them: removals, then puts, then audit lines
    /// under fresh numbers, then the rate counters its new time-index entries raise. Applied in this order (to a
    /// write transaction, or to the buffer of changes not yet written), a later write of a key wins.
    pub(super) fn ops(self, db: &impl Records, ids: &Ids) -> Result<Vec<Op>, StoreError> {
        let counters = super::rate::increments(db, &self.counted)?;
        let mut ops = Vec::with_capacity(self.removes.len() + self.puts.len() + self.audit.len() + counters.len());
        ops.extend(self.removes.into_iter().map(|key| (key, None)));
        ops.extend(self.puts.into_iter().map(|(key, value)| (key, Some(value))));
        for entry in self.audit {
            let bytes = serde_json::to_vec(&entry).unwrap_or_default();
            ops.push((key(AUDIT, &[&format!("{:020}", ids.take())]), Some(bytes)));
        }
        ops.extend(counters.into_iter().map(|(key, value)| (key, Some(value))));
        Ok(ops)
    }

    /// What the sled store before redb wrote for this change, as it wrote it (one sled batch: removals, puts,
    /// audit lines under `generate_id`, rate counters read from the database): the migration tests build an old
    /// state with it.
    #[cfg(test)]
    pub(super) fn into_sled_batch(self, db: &sled::Db) -> sled::Batch {
        let mut batch = sled::Batch::default();
        let mut counters: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        for entry in &self.counted {
            if db.contains_key(&entry.index_key).unwrap() {
                continue;
            }
            let stored = db.get(&entry.counter_key).unwrap().map_or(0, |raw| serde_json::from_slice(&raw).unwrap());
            *counters.entry(entry.counter_key.clone()).or_insert(stored) += 1;
        }
        for key in self.removes {
            batch.remove(key);
        }
        for (key, value) in self.puts {
            batch.insert(key, value);
        }
        for entry in self.audit {
            let id = db.generate_id().unwrap();
            batch.insert(key(AUDIT, &[&format!("{id:020}")]), serde_json::to_vec(&entry).unwrap());
        }
        for (key, n) in counters {
            batch.insert(key, n.to_string().into_bytes());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_state_change_rewrites_the_order_record_alone() {
        let record = crate::store::tests::record("8AB12345", 0, "asa@example.com", 1_796_000_000);
        let mut full = Change::new();
        full.put_order(&record);
        assert!(full.puts.len() > 1 && !full.counted.is_empty(), "a placed order writes its indexes too");
        let mut state = Change::new();
        state.put_reply_state(&record);
        assert_eq!(state.puts.len(), 1);
        assert!(state.counted.is_empty());
        let (order_key, order_bytes) = full.puts.last().unwrap();
        assert_eq!(&state.puts[0], &(order_key.clone(), order_bytes.clone()));
    }
}
