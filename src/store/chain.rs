//! Reading licence chains: a subscription's first order with its renewals and extensions, a subscription
//! reference's first order, a buyer's licences. Written by [`super::Change::put_order`]'s indexes.
use super::records::{self, BY_BUYER, BY_CHAIN, BY_SUBSCRIPTION, OrderRecord, order_key};
use super::{Store, StoreError};
use crate::fulfil::LineRef;

impl Store {
    /// The renewals and extensions of the chain that starts at `root`, oldest first (not the root itself).
    pub fn chain_members(&self, root: &LineRef) -> Result<Vec<OrderRecord>, StoreError> {
        let root_key = order_key(&root.provider, root.order_id.as_str(), root.line);
        let prefix = records::key(BY_CHAIN, &[&String::from_utf8_lossy(&root_key), ""]);
        let mut members = self.indexed(&prefix)?;
        members.sort_by_key(|record| (record.received_at, record.key()));
        Ok(members)
    }

    /// The first order line that carried this subscription reference.
    pub fn by_subscription(&self, provider: &str, subscription: &str) -> Result<Option<OrderRecord>, StoreError> {
        let order = self.view()?.get_vec(&records::key(BY_SUBSCRIPTION, &[provider, subscription]))?;
        match order {
            Some(order) => self.get(&order),
            None => Ok(None),
        }
    }

    /// Every order line with this buyer address (compared case-insensitively), oldest first.
    pub fn buyer_lines(&self, email: &str) -> Result<Vec<OrderRecord>, StoreError> {
        let mut lines = self.indexed(&records::key(BY_BUYER, &[&email.trim().to_lowercase(), ""]))?;
        lines.sort_by_key(|record| (record.received_at, record.key()));
        Ok(lines)
    }

    /// The order lines an index prefix points at.
    fn indexed(&self, prefix: &[u8]) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        for item in self.prefix(prefix)? {
            let (_, order) = item?;
            if let Some(record) = self.get::<OrderRecord>(order.value())? {
                found.push(record);
            }
        }
        Ok(found)
    }
}
