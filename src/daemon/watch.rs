//! Missed orders, as the daemon sees them: each order's sequence number (template `fields.sequence`) against the
//! highest one seen in its sequence; [`crate::watch`] decides, the number is kept in the store with the order's
//! own change, so a crash loses both or neither.
use super::core::Core;
use crate::order::Order;
use crate::reply::Alert;
use crate::store::Change;
use crate::watch::{SequenceCheck, sequence_gap};

impl Core {
    /// Adds to `change` the order's sequence number and, when numbers were skipped, an alert.
    pub(super) fn watch_sequence(&self, order: &Order, origin: &str, change: &mut Change) -> anyhow::Result<()> {
        let Some(sequence) = &order.sequence else { return Ok(()) };
        if order.test || !self.config.watch.sequence_gaps(&order.provider) {
            return Ok(());
        }
        let last = self.store.sequence_last(&sequence.scope)?;
        if let SequenceCheck::Gap { first_missing, last_missing } = sequence_gap(last, sequence.number) {
            tracing::warn!(scope = %sequence.scope, first_missing, last_missing, "Numbers skipped in a provider's sequence; vendor alerted.");
            let alert = Alert::MissedOrders {
                scope: sequence.scope.clone(),
                first_missing,
                last_missing,
                seen: sequence.number,
                origin: origin.to_owned(),
            };
            self.queue_alert(&alert, change)?;
        }
        if last.is_none_or(|last| sequence.number > last) {
            change.put_sequence(&sequence.scope, sequence.number);
        }
        Ok(())
    }
}
