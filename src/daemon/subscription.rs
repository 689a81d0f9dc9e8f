//! Subscriptions and upgrades on the daemon's side: finding a renewal's or cancellation's licence chain and a
//! buyer's licences in the state (for `fulfil::subscription` to decide on), recording a cancellation and a
//! supersession, and `keypost extend`. Each change goes into the one durable commit of its message or request.
use anyhow::Context as _;

use super::core::{Core, Effect, Origin};
use crate::fulfil::{ChainView, Decision, FollowKind, Follows, Grant, HeldLicence, LineRef, find_product};
use crate::order::{Order, OrderId, OrderKind, parse_iso_date};
use crate::reply::Alert;
use crate::store::{Cancelled, Change, OrderRecord, Queued, Superseded};

/// The provider name of licences extended by hand.
const MANUAL_PROVIDER: &str = super::manual::MANUAL_PROVIDER;

/// What a grant's order line records as its decision and reason.
pub(super) fn describe_grant(grant: &Grant) -> (&'static str, String) {
    match &grant.follows {
        None => ("issue", format!("license for {}", grant.product)),
        Some(Follows { how, of }) => {
            let until = grant.expires.as_deref().map(|d| format!(", valid through {d}")).unwrap_or_default();
            let decision = match how {
                FollowKind::Renewal => "renew",
                FollowKind::Extension => "extend",
                FollowKind::Upgrade => "upgrade",
            };
            (decision, format!("{} of {of}: license for {}{until}", how.as_str(), grant.product))
        }
    }
}

fn line_ref(record: &OrderRecord) -> LineRef {
    LineRef { provider: record.provider.clone(), order_id: record.order_id.clone(), line: record.line }
}

impl Core {
    /// The licence chain a renewal or cancellation is about: by its subscription reference, else (a
    /// cancellation) by its own order id, else by its buyer and product when exactly one of the buyer's
    /// licences with a term fits. `Err` says why none was found.
    pub(super) fn find_chain(&self, order: &Order) -> anyhow::Result<Result<ChainView, String>> {
        if let Some(subscription) = &order.subscription {
            let first = match self.store.by_subscription(&order.provider, subscription.as_str())? {
                Some(first) => Some(first),
                // Some providers' subscription reference is the first order's own id.
                None => self.store.order_line(&order.provider, subscription.as_str(), 0)?,
            };
            return match first {
                Some(first) => self.chain_view(&first),
                None => Ok(Err(format!("no first order with subscription {subscription} is recorded"))),
            };
        }
        if order.kind != OrderKind::Renewal
            && let Some(line) = self.store.order_line(&order.provider, order.id.as_str(), 0)?
        {
            return self.chain_view(&line);
        }
        self.chain_by_buyer(order)
    }

    fn chain_by_buyer(&self, order: &Order) -> anyhow::Result<Result<ChainView, String>> {
        let Some(buyer) = &order.buyer_email else {
            return Ok(Err("the mail names no subscription and no buyer".to_owned()));
        };
        let products = &self.config.products;
        let wanted: Vec<&str> =
            order.items.iter().filter_map(|item| find_product(item, products).ok()).map(|p| p.id.as_str()).collect();
        let candidates: Vec<OrderRecord> = (self.store.buyer_lines(buyer.as_str())?.into_iter())
            .filter(|r| r.provider == order.provider && r.revoked.is_none() && r.chain.superseded.is_none())
            .filter(|r| {
                r.license.as_ref().is_some_and(|l| {
                    let first = !matches!(&l.grant.follows, Some(f) if f.how != FollowKind::Upgrade);
                    first && l.expires.is_some() && (wanted.is_empty() || wanted.contains(&l.grant.product.as_str()))
                })
            })
            .collect();
        match candidates.as_slice() {
            [one] => self.chain_view(one),
            [] => Ok(Err(format!(
                "the mail names no subscription, and {buyer} holds no licence with a term from {}",
                order.provider
            ))),
            many => Ok(Err(format!(
                "the mail names no subscription, and {buyer} holds {} licences with a term it could be",
                many.len()
            ))),
        }
    }

    /// The chain that `line` belongs to (a renewal or extension leads to its first order).
    fn chain_view(&self, line: &OrderRecord) -> anyhow::Result<Result<ChainView, String>> {
        let root = match line.license.as_ref().and_then(|l| l.grant.follows.as_ref()) {
            Some(follows) if follows.how != FollowKind::Upgrade => {
                let of = &follows.of;
                match self.store.order_line(&of.provider, of.order_id.as_str(), of.line)? {
                    Some(root) => root,
                    None => return Ok(Err(format!("the first order {of} is not recorded"))),
                }
            }
            _ => line.clone(),
        };
        let Some(license) = &root.license else {
            return Ok(Err(format!("the first order {} has no licence ({})", root.label(), root.decision)));
        };
        let reference = line_ref(&root);
        let members = self.store.chain_members(&reference)?;
        let active: Vec<&OrderRecord> =
            std::iter::once(&root).chain(&members).filter(|r| r.revoked.is_none() && r.license.is_some()).collect();
        let expiries: Vec<Option<time::Date>> = active
            .iter()
            .map(|r| r.license.as_ref().and_then(|l| l.expires.as_deref()).and_then(parse_iso_date))
            .collect();
        let expires = if expiries.iter().any(Option::is_none) { None } else { expiries.into_iter().flatten().max() };
        Ok(Ok(ChainView {
            root: reference,
            product: license.grant.product.clone(),
            sku: license.grant.sku.clone(),
            seats: license.grant.seats,
            licensee: license.grant.licensee.clone(),
            buyer_email: root.buyer_email.clone(),
            expires,
            revoked: active.is_empty(),
            cancelled: root.chain.cancelled.is_some(),
        }))
    }

    /// The buyer's licences that an upgrade may replace: not revoked, not superseded, oldest first.
    pub(super) fn held(&self, order: &Order) -> anyhow::Result<Vec<HeldLicence>> {
        let Some(buyer) = &order.buyer_email else { return Ok(Vec::new()) };
        let lines = self.store.buyer_lines(buyer.as_str())?;
        Ok(lines
            .iter()
            .filter(|r| r.revoked.is_none() && r.chain.superseded.is_none())
            .filter_map(|r| {
                let license = r.license.as_ref()?;
                Some(HeldLicence {
                    line: line_ref(r),
                    product: license.grant.product.clone(),
                    sku: license.grant.sku.clone(),
                    licensee: license.grant.licensee.clone(),
                })
            })
            .collect())
    }

    /// An upgrade's grant marks the licence it replaces superseded, in the same change.
    pub(super) fn supersede(&self, grant: &Grant, by: &OrderRecord, change: &mut Change) -> Result<(), String> {
        let Some(Follows { how: FollowKind::Upgrade, of }) = &grant.follows else { return Ok(()) };
        let found = self.store.order_line(&of.provider, of.order_id.as_str(), of.line);
        let mut old =
            found.map_err(|err| format!("cannot read {of}: {err}"))?.ok_or(format!("{of} is not recorded"))?;
        let now = self.now().unix_timestamp();
        old.chain.superseded = Some(Superseded { at: now, by: by.label() });
        change.put_order(&old);
        change.audit(now, "superseded", &old.label(), format!("upgraded by {}", by.label()));
        Ok(())
    }

    /// Records a subscription's cancellation on its first order and tells the vendor; the licence runs out at
    /// `ends` by itself (its serial carries that expiry).
    pub(super) fn cancel(&self, origin: &Origin, of: &LineRef, ends: &str, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let mut first = (self.store.order_line(&of.provider, of.order_id.as_str(), of.line)?)
            .with_context(|| format!("the first order {of} is not recorded"))?;
        first.chain.cancelled = Some(Cancelled { at: now, ends: ends.to_owned() });
        change.put_order(&first);
        change.audit(
            now,
            "cancelled",
            &first.label(),
            format!("subscription cancelled; the licence ends after {ends}"),
        );
        tracing::info!(order = %of, ends, "Subscription cancelled; licence ends with its paid period.");
        let alert = Alert::Cancelled { order: of.to_string(), ends: ends.to_owned(), origin: origin.label.clone() };
        self.queue_alert(&alert, change)
    }

    /// `keypost extend`: a new serial for the chain of `provider/order_id`, valid `days` past its current
    /// expiry, mailed to the buyer and recorded as an extension of the first order. Durable before it returns
    /// what it queued.
    pub async fn extend(&self, provider: &str, order_id: &str, days: u32) -> anyhow::Result<(String, Queued)> {
        anyhow::ensure!(days > 0, "--days must be at least 1");
        let line =
            self.store.order_line(provider, order_id, 0)?.with_context(|| format!("no order {provider}/{order_id}"))?;
        let chain = self.chain_view(&line)?.map_err(anyhow::Error::msg)?;
        anyhow::ensure!(!chain.revoked, "the licence of {} is revoked", chain.root);
        let current =
            chain.expires.with_context(|| format!("the licence of {} has no expiry (perpetual)", chain.root))?;
        let expires =
            current.checked_add(time::Duration::days(i64::from(days))).context("the new expiry is past any date")?;
        let now = self.now();
        let id = OrderId::parse(&format!("X-{}-{:04x}", now.unix_timestamp(), fastrand::u16(..)))?;
        let first = self.store.order_line(&chain.root.provider, chain.root.order_id.as_str(), chain.root.line)?;
        let first = first.with_context(|| format!("the first order {} is not recorded", chain.root))?;
        let order = Order {
            provider: MANUAL_PROVIDER.to_owned(),
            kind: OrderKind::Renewal,
            id: id.clone(),
            test: first.test,
            licensee: Some(chain.licensee.clone()),
            buyer_name: first.buyer_name.clone(),
            buyer_email: first.buyer_email.clone(),
            items: Vec::new(),
            total: None,
            subscription: None,
            period_end: None,
            payment_id: None,
            sequence: None,
        };
        let grant = chain.follow_up(expires, FollowKind::Extension);
        let recipient = self.config.limits.test_orders.recipient(first.test);
        let origin = Origin { label: MANUAL_PROVIDER.to_owned(), message_id: None, content_hash: String::new() };
        let assessed = self.apply(&origin, &order, Decision::Issue { grants: vec![grant], recipient })?;
        anyhow::ensure!(assessed.effect == Effect::Fulfilled, "not extended: {}", assessed.note);
        let queued = self.store.commit_durable(assessed.change).await?;
        Ok((format!("{MANUAL_PROVIDER}/{id} (through {expires})"), queued))
    }
}
