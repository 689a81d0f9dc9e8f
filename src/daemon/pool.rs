//! Code pools in the pipeline (what a pool is: `pool.rs`): a sale of a pool product takes its codes in the same
//! change that records the order line and queues the reply, so one durable commit decides both (a crash before
//! it leaves the codes in the pool, after it the outbox resends the same code). A sale that finds its pool short
//! is recorded for review and waits (`pw/` in the store); after an import, and at the start of every pass, the
//! waiting orders are answered oldest first, each with its own durable commit before its reply is sent.
//! A refund marks a handed-out code revoked (never back into the pool: its reply may have reached the buyer),
//! and takes a waiting order out of the queue (also when it names only another provider's notice of the same
//! payment: `linked.rs`).
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::Outcome;
use super::core::{Core, Effect, Origin};
use crate::fulfil::{Grant, Recipient};
use crate::order::Order;
use crate::pool::{Imported, check_code, fell_below};
use crate::reply::{Alert, Mailer};
use crate::store::{Available, Change, CodeState, License, OrderRecord, Revocation, WaitingOrder};

/// The codes a decision's pool grants would take, by line.
pub(super) type Codes = BTreeMap<u32, Available>;

/// Whether a decision's pool grants can have their codes now.
pub(super) enum Pick {
    /// Every pool grant has a code (none for a decision without pool products).
    Codes(Codes),
    /// This product's pool has fewer codes than the decision needs: the order waits.
    Short { product: String, needed: usize, available: usize },
}

/// What became of a sale's licences.
pub(super) enum Issued {
    /// Licences made (pool codes taken), replies queued.
    Fulfilled,
    /// Recorded for review, waiting for codes, for this reason.
    Waiting(String),
    /// Not issued, for this review reason.
    Refused(String),
}

impl Core {
    fn pool_config(&self, product: &str) -> Option<&crate::pool::PoolConfig> {
        self.config.products.iter().find(|p| p.id == product)?.pool.as_ref()
    }

    /// The codes for the pool grants among `grants`, oldest import first, from the state as applied so far (a
    /// code taken by an earlier change is out of the queue, so two orders never pick the same one).
    pub(super) fn pick_codes(&self, grants: &[Grant]) -> anyhow::Result<Pick> {
        let mut lines: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        // One code per line, whatever its seats: like a serial, the code is the line's licence (its seats are
        // recorded with it).
        for grant in grants.iter().filter(|g| self.pool_config(&g.product).is_some()) {
            lines.entry(&grant.product).or_default().push(grant.line);
        }
        let mut codes = Codes::new();
        for (product, lines) in lines {
            let available = self.store.pool_available(product, lines.len()).context("Failed to read a pool")?;
            if available.len() < lines.len() {
                let (needed, available) = (lines.len(), available.len());
                return Ok(Pick::Short { product: product.to_owned(), needed, available });
            }
            codes.extend(lines.into_iter().zip(available));
        }
        Ok(Pick::Codes(codes))
    }

    /// `Decision::Issue`: the licences with their pool codes, or the order waits for codes.
    pub(super) fn issue_or_wait(
        &self,
        origin: &Origin,
        order: &Order,
        grants: Vec<Grant>,
        recipient: Recipient,
        change: &mut Change,
    ) -> anyhow::Result<Issued> {
        let codes = match self.pick_codes(&grants)? {
            Pick::Codes(codes) => codes,
            Pick::Short { product, needed, available } => {
                let reason = format!(
                    "the code pool of {product} has {available} code(s), the order needs {needed}; it is answered \
                     automatically once codes are imported (keypost pool import {product} FILE)"
                );
                self.review(origin, order, &reason, change)?;
                let waiting = WaitingOrder {
                    provider: order.provider.clone(),
                    order_id: order.id.clone(),
                    grants,
                    recipient,
                    since: self.now().unix_timestamp(),
                    seq: self.store.pool_next_seq()?,
                };
                change.wait_for_codes(&waiting);
                return Ok(Issued::Waiting(reason));
            }
        };
        let received_at = self.now().unix_timestamp();
        if let Err(reason) = self.issue(origin, order, &grants, recipient, &codes, received_at, change) {
            return Ok(Issued::Refused(reason));
        }
        self.alert_low_pools(&codes, &grants, order, change)?;
        Ok(Issued::Fulfilled)
    }

    /// One alert per product whose pool this sale took below its low-water mark (or emptied).
    fn alert_low_pools(
        &self,
        codes: &Codes,
        grants: &[Grant],
        order: &Order,
        change: &mut Change,
    ) -> anyhow::Result<()> {
        let mut taken: BTreeMap<&str, (usize, u32)> = BTreeMap::new();
        for grant in grants.iter().filter(|g| codes.contains_key(&g.line)) {
            taken.entry(&grant.product).or_insert((0, grant.line)).0 += 1;
        }
        for (product, (count, line)) in taken {
            let Some(pool) = self.pool_config(product) else { continue };
            let before = self.store.pool_available_count(product);
            let after = before.saturating_sub(count);
            if fell_below(before, after, pool.low_water) {
                tracing::warn!(product, available = after, low_water = pool.low_water, "Code pool is low.");
                let order = format!("{}/{}#{line}", order.provider, order.id);
                let alert =
                    Alert::PoolLow { product: product.to_owned(), available: after, low_water: pool.low_water, order };
                self.queue_alert(&alert, change)?;
            }
        }
        Ok(())
    }

    /// Marks a revoked licence's pool code revoked (a licence of a serial product has none).
    pub(super) fn revoke_pool_code(
        &self,
        license: &License,
        order: &str,
        reason: &str,
        change: &mut Change,
    ) -> anyhow::Result<()> {
        let product = &license.grant.product;
        let Some(code) = self.store.pool_code(product, &license.serial)? else { return Ok(()) };
        if let CodeState::HandedOut { .. } = code.state {
            change.pool_revoke(product, &license.serial, code.seq, order, self.now().unix_timestamp(), reason);
        }
        Ok(())
    }

    /// A refund, chargeback or cancellation (or the vendor's revoke) for an order waiting for codes: it waits no
    /// more, its review line is marked revoked, the vendor is told. `None` when the order does not wait.
    pub(super) fn stop_waiting(
        &self,
        provider: &str,
        order_id: &str,
        reason: &str,
        change: &mut Change,
    ) -> anyhow::Result<Option<Effect>> {
        let Some(waiting) = self.store.waiting_order(provider, order_id)? else { return Ok(None) };
        let now = self.now().unix_timestamp();
        change.stop_waiting(provider, order_id);
        if let Some(mut record) = self.store.order_line(provider, order_id, 0)? {
            record.revoked = Some(Revocation { at: now, reason: reason.to_owned() });
            change.put_order(&record);
        }
        change.audit(now, "revoked", &waiting.label(), format!("{reason}: the order no longer waits for codes"));
        tracing::info!(order = %waiting.label(), reason, "Order waiting for codes revoked.");
        self.queue_alert(
            &Alert::Revoked { order: waiting.label(), reason: reason.to_owned(), lines: Vec::new() },
            change,
        )?;
        Ok(Some(Effect::Revoked))
    }

    /// Adds new codes to a product's pool, durably. Codes already there, handed out or revoked are counted and
    /// left alone, so importing the same file again adds nothing.
    pub async fn pool_import(&self, product: &str, codes: &[String]) -> anyhow::Result<Imported> {
        anyhow::ensure!(
            self.pool_config(product).is_some(),
            "product {product:?} is not a pool product in the configuration (it needs [product.pool])"
        );
        let mut imported = Imported::default();
        let mut change = Change::new();
        let mut seen = BTreeSet::new();
        for code in codes {
            check_code(code).map_err(|reason| anyhow::anyhow!("code {:?}: {reason}", code))?;
            match self.store.pool_code(product, code)? {
                _ if !seen.insert(code) => imported.in_pool += 1,
                Some(known) if known.state == CodeState::Available => imported.in_pool += 1,
                Some(_) => imported.used += 1,
                None => {
                    change.pool_add(product, code, self.store.pool_next_seq()?);
                    imported.added += 1;
                }
            }
        }
        let detail = format!(
            "{} code(s) added, {} already in the pool, {} already handed out",
            imported.added, imported.in_pool, imported.used
        );
        change.audit(self.now().unix_timestamp(), "pool-import", product, detail);
        self.store.commit_durable(change).await.context("Failed to record the imported codes")?;
        tracing::info!(product, added = imported.added, "Codes imported.");
        Ok(imported)
    }

    /// Answers the orders waiting for codes that the pools can serve now, oldest first (an order that cannot
    /// be served keeps the later ones for the same product waiting too, so stock goes in order of arrival).
    /// Each is committed durably, then its reply is sent. Cheap when nothing waits: called every pass.
    pub async fn answer_waiting<M: Mailer>(&self, mailer: &M) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome::default();
        if !self.store.has_waiting_orders() {
            return Ok(outcome);
        }
        let mut blocked = BTreeSet::new();
        for waiting in self.store.waiting_orders()? {
            if waiting.grants.iter().any(|g| blocked.contains(&g.product)) {
                continue;
            }
            let codes = match self.pick_codes(&waiting.grants)? {
                Pick::Codes(codes) => codes,
                Pick::Short { product, .. } => {
                    blocked.insert(product);
                    continue;
                }
            };
            let Some(change) = self.answer_one(&waiting, &codes)? else { continue };
            let queued =
                self.store.commit_durable(change).await.context("Failed to record a waiting order's answer")?;
            outcome.fulfilled += 1;
            outcome.add(&self.send_queued(mailer, &queued).await?);
        }
        Ok(outcome)
    }

    /// The change that answers one waiting order with these codes, from its recorded review line.
    fn answer_one(&self, waiting: &WaitingOrder, codes: &Codes) -> anyhow::Result<Option<Change>> {
        let label = waiting.label();
        let mut change = Change::new();
        change.stop_waiting(&waiting.provider, waiting.order_id.as_str());
        let now = self.now().unix_timestamp();
        let Some(record) = self.store.order_line(&waiting.provider, waiting.order_id.as_str(), 0)? else {
            change.audit(now, "pool-wait-dropped", &label, "its order record is gone");
            return Ok(Some(change));
        };
        let (order, origin) = recorded_order(&record);
        match self.issue(&origin, &order, &waiting.grants, waiting.recipient, codes, record.received_at, &mut change) {
            Ok(()) => {
                self.alert_low_pools(codes, &waiting.grants, &order, &mut change)?;
                change.audit(now, "answered", &label, "codes were imported for the order that waited for them");
                tracing::info!(order = %label, "Order that waited for codes answered.");
                Ok(Some(change))
            }
            Err(reason) => {
                // Not a pool problem (a reply that cannot be rendered): leave it for the vendor, once.
                let mut change = Change::new();
                change.stop_waiting(&waiting.provider, waiting.order_id.as_str());
                self.review(&origin, &order, &reason, &mut change)?;
                Ok(Some(change))
            }
        }
    }
}

/// The order and origin a recorded line was made from, as far as issuing its licences needs them.
fn recorded_order(record: &OrderRecord) -> (Order, Origin) {
    let order = Order {
        provider: record.provider.clone(),
        kind: record.kind,
        id: record.order_id.clone(),
        test: record.test,
        licensee: None,
        buyer_name: record.buyer_name.clone(),
        buyer_email: record.buyer_email.clone(),
        items: Vec::new(),
        total: None,
        subscription: record.chain.subscription.clone(),
        period_end: None,
        payment_id: record.payment_id.clone(),
        sequence: None,
    };
    let origin =
        Origin { label: record.origin.clone(), message_id: record.message_id.clone(), content_hash: String::new() };
    (order, origin)
}
