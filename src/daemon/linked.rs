//! Finds the order another provider recorded for the same payment, for [`crate::fulfil::History::answered_by`]:
//! the order this one is recorded as linked to, or, for an order not recorded yet, the order recorded first under
//! its payment id. The link itself is an ordinary decision, committed durably with the message's outcome, so a
//! crash between the two notices cannot answer both.
use anyhow::Context as _;

use super::message::known_line;
use crate::fulfil::{OrderRef, Related};
use crate::order::Order;
use crate::store::{OrderRecord, Store, WaitingOrder};

pub(super) fn answered_by(store: &Store, order: &Order, own: &[OrderRecord]) -> anyhow::Result<Option<Related>> {
    if let Some(to) = own.iter().find_map(|record| record.linked_to.clone()) {
        return related(store, to).map(Some);
    }
    let Some(payment) = order.payment_id.as_ref().filter(|_| own.is_empty()) else { return Ok(None) };
    let lines = store.payment_lines(payment.as_str()).context("Failed to read the orders of a payment")?;
    // The order that answers the payment: another provider's, not itself a link, the first recorded.
    let first = lines
        .iter()
        .filter(|r| r.provider != order.provider && r.linked_to.is_none())
        .min_by_key(|r| (r.received_at, r.key()));
    match first {
        Some(r) => related(store, OrderRef { provider: r.provider.clone(), order_id: r.order_id.clone() }).map(Some),
        None => Ok(None),
    }
}

fn related(store: &Store, order: OrderRef) -> anyhow::Result<Related> {
    let lines = store
        .order_lines(&order.provider, order.order_id.as_str())
        .context("Failed to read the history of a linked order")?;
    Ok(Related {
        revoked_ahead: lines.iter().map(|r| r.kind).find(|kind| kind.revokes()),
        lines: lines.iter().map(known_line).collect(),
        order,
    })
}

impl super::core::Core {
    /// The order waiting for pool codes that a refund, chargeback or cancellation `order` takes back, with the
    /// revocation's reason: its own order, or (when it names only the other provider's notice of the payment)
    /// the order that notice is linked to or that was recorded under the same payment id.
    pub(super) fn waiting_to_revoke(&self, order: &Order) -> anyhow::Result<Option<(WaitingOrder, String)>> {
        let kind = order.kind.as_str();
        if let Some(waiting) = self.store.waiting_order(&order.provider, order.id.as_str())? {
            return Ok(Some((waiting, kind.to_owned())));
        }
        let (provider, order_id) = self.answering(&order.provider, order.id.as_str())?;
        let mut candidates = vec![(provider, order_id)];
        if let Some(payment) = &order.payment_id {
            let lines = self.store.payment_lines(payment.as_str()).context("Failed to read the orders of a payment")?;
            let others = lines.into_iter().filter(|r| r.provider != order.provider);
            candidates.extend(others.map(|r| (r.provider, r.order_id.as_str().to_owned())));
        }
        for (provider, order_id) in candidates {
            if let Some(waiting) = self.store.waiting_order(&provider, &order_id)? {
                let reason = format!("{kind} through {}/{}, the same payment", order.provider, order.id);
                return Ok(Some((waiting, reason)));
            }
        }
        Ok(None)
    }

    /// The order that answers `provider/order_id`: the order it is linked to, if it is another provider's notice
    /// of a payment answered there, else itself. `keypost resend` and `revoke` act on that one.
    pub(super) fn answering(&self, provider: &str, order_id: &str) -> anyhow::Result<(String, String)> {
        let lines = self.store.order_lines(provider, order_id)?;
        Ok(match lines.iter().find_map(|record| record.linked_to.as_ref()) {
            Some(to) => (to.provider.clone(), to.order_id.as_str().to_owned()),
            None => (provider.to_owned(), order_id.to_owned()),
        })
    }
}
