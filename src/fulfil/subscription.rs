//! Subscriptions and upgrades: renewals extend a licence, cancellations end it at the end of its paid period,
//! upgrade SKUs replace a held licence with another edition's. Pure, like the rest of `fulfil`: the daemon finds
//! the subscription's licence chain ([`ChainView`]) and the buyer's licences ([`HeldLicence`]) in the state.
//!
//! Invariants:
//! - A renewal is an order of its own (its own provider + order id), so it goes through the same exactly-once
//!   path as a sale: the same renewal seen twice extends once.
//! - A licence chain is its first order's line plus every renewal and extension that names it: each new
//!   serial carries the new expiry, the earlier serials keep theirs.
//! - Nothing here issues a licence to anyone but the chain's own licensee (renewals, extensions) or the held
//!   licence's licensee (upgrades): the name in a serial never changes along a chain.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Decision, Grant, History, LimitsConfig};
use crate::order::{BuyerEmail, Licensee, Order, OrderId, OrderKind, parse_iso_date};
use crate::product::ProductConfig;
use crate::serial::{Term, Terms};

/// One order line, by its key in the state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineRef {
    pub provider: String,
    pub order_id: OrderId,
    pub line: u32,
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.provider, self.order_id, self.line)
    }
}

/// How a licence follows an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowKind {
    /// A provider's renewal of the subscription.
    Renewal,
    /// `keypost extend` by the vendor.
    Extension,
    /// An upgrade SKU: the earlier licence is superseded.
    Upgrade,
}

impl FollowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowKind::Renewal => "renewal",
            FollowKind::Extension => "extension",
            FollowKind::Upgrade => "upgrade",
        }
    }
}

/// What a licence follows: for renewals and extensions the chain's first order, for an upgrade the licence it
/// replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follows {
    pub how: FollowKind,
    pub of: LineRef,
}

/// A subscription's licence chain as the state has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainView {
    /// The first order's line.
    pub root: LineRef,
    pub product: String,
    pub sku: Option<String>,
    pub seats: u32,
    pub licensee: Licensee,
    /// The first order's buyer: a renewal that names none is mailed there.
    pub buyer_email: Option<BuyerEmail>,
    /// The latest expiry of the chain's licences that are not revoked; `None`: perpetual (or nothing active).
    pub expires: Option<time::Date>,
    /// Every licence of the chain is revoked.
    pub revoked: bool,
    /// Its cancellation is recorded.
    pub cancelled: bool,
}

impl ChainView {
    /// The grant that continues this chain through `expires`: same product, SKU, seats and licensee.
    pub fn follow_up(&self, expires: time::Date, how: FollowKind) -> Grant {
        Grant {
            line: 0,
            product: self.product.clone(),
            seats: self.seats,
            licensee: self.licensee.clone(),
            sku: self.sku.clone(),
            expires: Some(expires.to_string()),
            follows: Some(Follows { how, of: self.root.clone() }),
        }
    }
}

/// One of the buyer's active licences (not revoked, not superseded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLicence {
    pub line: LineRef,
    pub product: String,
    pub sku: Option<String>,
    pub licensee: Licensee,
}

/// The decision for a renewal, and for a cancellation of a licence with a term; `None` for everything else.
pub fn decide(order: &Order, history: &History, products: &[ProductConfig], limits: &LimitsConfig) -> Option<Decision> {
    match order.kind {
        OrderKind::Renewal => Some(renewal(order, history, products, limits)),
        OrderKind::Cancellation => cancellation(history),
        OrderKind::Sale | OrderKind::Refund | OrderKind::Chargeback => None,
    }
}

fn renewal(order: &Order, history: &History, products: &[ProductConfig], limits: &LimitsConfig) -> Decision {
    let review = |reason: String| Decision::Review { reason };
    if !history.lines.is_empty() {
        return Decision::Skip { reason: format!("renewal {} is already recorded", order.id) };
    }
    let Some(chain) = &history.chain else {
        // Not issued as a new licence: a renewal mail names no licensee reliably, and a subscription keypost
        // never saw the first order of may be one it must not serve (its sale went to review or was refunded).
        let why = history.chain_problem.clone().unwrap_or_else(|| "keypost has no first order of it".to_owned());
        return review(format!("renewal {} of a subscription keypost cannot tie to a licence: {why}", order.id));
    };
    if chain.revoked {
        return review(format!("renewal of {}, whose licence is revoked", chain.root));
    }
    let Some(paid_through) = chain.expires else {
        return review(format!("renewal of {}, whose licence has no expiry (perpetual)", chain.root));
    };
    let new_expiry = match order.period_end.as_deref() {
        Some(text) => match parse_iso_date(text) {
            Some(date) => date,
            None => return review(format!("renewal period end {text:?} is not a date")),
        },
        None => match term_of(products, &chain.product, chain.sku.as_deref()) {
            Some(Term::Days(days)) => match paid_through.checked_add(time::Duration::days(i64::from(days))) {
                Some(date) => date,
                None => return review("the renewed expiry is past any date".to_owned()),
            },
            _ => return review(format!("renewal of {}: its SKU has no term in [product.serial.terms]", chain.root)),
        },
    };
    if new_expiry <= paid_through {
        return Decision::Skip { reason: format!("the licence of {} already runs through {paid_through}", chain.root) };
    }
    let grant = chain.follow_up(new_expiry, FollowKind::Renewal);
    Decision::Issue { grants: vec![grant], recipient: limits.test_orders.recipient(order.test) }
}

/// A cancellation ends a licence with a term at the end of its paid period; one without (an order cancelled,
/// a perpetual licence) is revoked at once as before (`None`: the caller's revocation path).
fn cancellation(history: &History) -> Option<Decision> {
    let chain = history.chain.as_ref().filter(|chain| !chain.revoked)?;
    let ends = chain.expires?;
    if chain.cancelled {
        return Some(Decision::Skip { reason: format!("subscription of {} is already cancelled", chain.root) });
    }
    Some(Decision::Cancel { of: chain.root.clone(), ends: ends.to_string() })
}

/// Ties each grant of an upgrade SKU to the buyer's licence it replaces, and gives it that licence's
/// licensee. An upgrade with no licence of the edition it upgrades from on file is a review reason.
pub fn upgrades(mut grants: Vec<Grant>, history: &History, products: &[ProductConfig]) -> Result<Vec<Grant>, String> {
    let mut used: Vec<&LineRef> = Vec::new();
    for grant in &mut grants {
        let Some(terms) = terms_of(products, &grant.product) else { continue };
        let Some(from) = terms.upgrade_from(grant.sku.as_deref()) else { continue };
        // The latest fitting licence; one licence is upgraded once per order.
        let held = history.held.iter().rev().find(|held| {
            held.product == grant.product && terms.of(held.sku.as_deref()).0 & from != 0 && !used.contains(&&held.line)
        });
        let Some(held) = held else {
            return Err(format!(
                "upgrade from {} of {}: the buyer has no such licence on file",
                terms.names(from),
                grant.product
            ));
        };
        used.push(&held.line);
        grant.licensee = held.licensee.clone();
        grant.follows = Some(Follows { how: FollowKind::Upgrade, of: held.line.clone() });
    }
    Ok(grants)
}

/// A sale whose mail names the end of its paid period (a subscription's first payment with its next billing
/// date) is valid through that day rather than for the SKU's term counted from today, so its renewal, which
/// names the next period's end, follows on; a perpetual SKU ignores it.
pub fn paid_period(mut grants: Vec<Grant>, order: &Order, products: &[ProductConfig]) -> Vec<Grant> {
    let Some(end) = order.period_end.as_deref().and_then(parse_iso_date) else { return grants };
    for grant in grants.iter_mut().filter(|grant| grant.expires.is_none()) {
        if matches!(term_of(products, &grant.product, grant.sku.as_deref()), Some(Term::Days(_))) {
            grant.expires = Some(end.to_string());
        }
    }
    grants
}

fn terms_of(products: &[ProductConfig], product: &str) -> Option<Terms> {
    products.iter().find(|p| p.id == product).and_then(|p| p.serial.as_ref()?.terms().ok())
}

fn term_of(products: &[ProductConfig], product: &str, sku: Option<&str>) -> Option<Term> {
    terms_of(products, product).map(|terms| terms.of(sku).1)
}

#[cfg(test)]
mod tests;
