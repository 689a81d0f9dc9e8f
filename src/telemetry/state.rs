//! What the state says about the daemon's work, read for `keypost status` and the metrics: these facts survive
//! a restart, so they are read from the store rather than counted in memory. Reads only.
use serde::Serialize;

use crate::store::{Store, StoreError};

/// Counts read from the state at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    /// Messages in the outbox (replies, copies, alerts) not yet accepted by the server.
    pub outbox_waiting: u64,
    /// Of those, the ones that failed at least once and wait for their next attempt.
    pub outbox_retrying: u64,
    /// Unix seconds of the earliest next attempt in the outbox.
    #[serde(skip)]
    pub next_attempt: Option<i64>,
    /// Messages set aside and not released or dropped since.
    pub set_aside: u64,
    /// Order lines recorded for review (all time: the state does not know which the vendor dealt with).
    pub review: u64,
    /// Messages ignored because no template knows their sender (all time).
    pub unknown_senders: u64,
}

impl StateSummary {
    pub fn read(store: &Store) -> Result<Self, StoreError> {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let outbox = store.outbox()?;
        let sources = store.source_records()?;
        Ok(Self {
            outbox_waiting: count(outbox.len()),
            outbox_retrying: count(outbox.iter().filter(|entry| entry.attempts > 0).count()),
            next_attempt: outbox.iter().map(|entry| entry.next_try).min(),
            set_aside: count(sources.iter().filter(|r| r.disposition == crate::mailbox::Disposition::SetAside).count()),
            review: count(store.orders()?.iter().filter(|order| order.decision == "review").count()),
            unknown_senders: count(sources.iter().filter(|r| r.is_unknown_sender()).count()),
        })
    }
}
