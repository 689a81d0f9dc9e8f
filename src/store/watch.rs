//! What the provider-silence watch (`watch.rs` decides, `daemon/watch.rs` acts) reads and keeps: the times of
//! each provider's last orders, from the rate-limit index of placed orders (`tp/`, sales only), and one record
//! per provider whose silence was alerted, so a restart does not alert the same silence again.
//!
//! # Keys
//! - `ws/PROVIDER` -> [`SilenceRecord`]: the silence alerted last; it ends when the provider records an order
//!   after `since` (the daemon then removes it; until it has, [`Store::silent_providers`] leaves it out).
use serde::{Deserialize, Serialize};

use super::records::{BY_PROVIDER_TIME, key};
use super::{Change, Store, StoreError};

const SILENCES: &str = "ws/";

/// A provider's silence the vendor was alerted about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRecord {
    /// When its last order before the silence was recorded (Unix seconds): names the silence.
    pub since: i64,
    /// The median gap between its recent orders, in seconds.
    pub usual_gap: i64,
    /// How long it was allowed to be silent, in seconds.
    pub threshold: i64,
    /// When the alert was queued.
    pub alerted_at: i64,
}

impl Change {
    /// Records the silence alerted for `provider` (replacing an earlier one).
    pub fn put_silence(&mut self, provider: &str, record: &SilenceRecord) {
        self.put_json(key(SILENCES, &[provider]), record);
    }

    /// Forgets `provider`'s silence: its orders came again.
    pub fn end_silence(&mut self, provider: &str) {
        self.remove(key(SILENCES, &[provider]));
    }
}

impl Store {
    /// Every provider that placed an order (sales recorded in the rate index), in order: one seek per provider.
    pub fn order_providers(&self) -> Result<Vec<String>, StoreError> {
        let mut providers = Vec::new();
        let mut from = BY_PROVIDER_TIME.as_bytes().to_vec();
        let view = self.view()?;
        while let Some(item) = view.range(&from, None)?.next() {
            let (found, _) = item?;
            let Some(rest) = found.value().strip_prefix(BY_PROVIDER_TIME.as_bytes()) else { break };
            let provider = rest.split(|b| *b == 0).next().unwrap_or_default();
            providers.push(String::from_utf8_lossy(provider).into_owned());
            // The next provider: this one's keys are `provider NUL ...`, all below `provider 0x01`.
            from = [BY_PROVIDER_TIME.as_bytes(), provider, &[1]].concat();
        }
        Ok(providers)
    }

    /// When `provider`'s last `count` orders (sales) were recorded, oldest first (Unix seconds).
    pub fn order_times(&self, provider: &str, count: usize) -> Result<Vec<i64>, StoreError> {
        let prefix = key(BY_PROVIDER_TIME, &[provider, ""]);
        let mut times = Vec::with_capacity(count);
        for item in self.view()?.under(&prefix)?.rev().take(count) {
            let (found, _) = item?;
            // `tp/` provider NUL time (20 digits) NUL order id.
            let time =
                found.value().get(prefix.len()..).unwrap_or_default().split(|b| *b == 0).next().unwrap_or_default();
            if let Some(at) = std::str::from_utf8(time).ok().and_then(|t| t.parse::<i64>().ok()) {
                times.push(at);
            }
        }
        times.reverse();
        Ok(times)
    }

    /// The silence alerted last for `provider`, ended or not.
    pub fn silence(&self, provider: &str) -> Result<Option<SilenceRecord>, StoreError> {
        self.get(&key(SILENCES, &[provider]))
    }

    /// The providers silent now: alerted, and no order recorded since. In provider order.
    pub fn silent_providers(&self) -> Result<Vec<(String, SilenceRecord)>, StoreError> {
        let mut silent = Vec::new();
        for item in self.prefix(SILENCES.as_bytes())? {
            let (found, value) = item?;
            let found = found.value();
            let record: SilenceRecord = super::decode(found, value.value())?;
            let provider = String::from_utf8_lossy(found.get(SILENCES.len()..).unwrap_or_default()).into_owned();
            if self.order_times(&provider, 1)?.last().is_none_or(|last| *last <= record.since) {
                silent.push((provider, record));
            }
        }
        Ok(silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderKind;
    use crate::store::OrderRecord;

    fn sale(provider: &str, id: &str, at: i64) -> OrderRecord {
        OrderRecord { provider: provider.into(), ..crate::store::tests::record(id, 0, "asa@example.com", at) }
    }

    #[tokio::test]
    async fn the_last_order_times_per_provider_and_the_silences_not_ended_by_a_later_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        for (n, at) in [300, 100, 200, 400].into_iter().enumerate() {
            change.put_order(&sale("paddle", &format!("P-{n}"), at));
        }
        change.put_order(&sale("kagi", "K-1", 50));
        let mut refund = sale("gumroad", "G-1", 60);
        refund.kind = OrderKind::Refund;
        change.put_order(&refund);
        let alerted = SilenceRecord { since: 50, usual_gap: 10, threshold: 100, alerted_at: 500 };
        change.put_silence("kagi", &alerted);
        change.put_silence("paddle", &SilenceRecord { since: 300, ..alerted.clone() });
        store.commit_durable(change).await.unwrap();

        assert_eq!(store.order_providers().unwrap(), ["kagi", "paddle"], "a refund is no order placed");
        assert_eq!(store.order_times("paddle", 3).unwrap(), [200, 300, 400]);
        assert_eq!(store.order_times("paddle", 10).unwrap(), [100, 200, 300, 400]);
        assert_eq!(store.order_times("pad", 10).unwrap(), Vec::<i64>::new(), "a provider is matched whole");
        assert_eq!(store.silent_providers().unwrap(), [("kagi".to_owned(), alerted)], "paddle sold at 400");
        let mut change = Change::new();
        change.end_silence("kagi");
        store.commit_durable(change).await.unwrap();
        assert_eq!(store.silence("kagi").unwrap(), None);
    }
}
