//! Decisions: what to do with an order given what the state already knows. Pure functions, table-tested.
//! Nothing here reads the clock, the store or a file: the caller gathers a [`History`] and acts on the
//! [`Decision`]. A failed check never reaches the buyer: it goes to review (a vendor alert).
use serde::{Deserialize, Serialize};

pub use crate::order::Recipient;
use crate::order::{Licensee, LineItem, Order, OrderId, OrderKind};
use crate::problems::Problems;
use crate::product::ProductConfig;

pub mod subscription;

pub use subscription::{ChainView, FollowKind, Follows, HeldLicence, LineRef};

/// `[limits]`: checks every order must pass. Above a rate limit an order goes to review instead of being
/// fulfilled, so a leaked or looping provider account cannot mint licenses unattended.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Orders from one buyer address in the last hour before further ones go to review (default 5).
    pub per_buyer_per_hour: u32,
    /// Orders from one provider in the last hour before further ones go to review (default 100).
    pub per_provider_per_hour: u32,
    /// Most seats one line item may carry before it goes to review (default 100).
    pub max_seats: u32,
    /// Most seats one order may carry, all its line items together, before it goes to review (default 100).
    pub max_order_seats: u32,
    /// Who receives the license of a provider's test order: `vendor` (default) or `buyer`.
    pub test_orders: TestOrders,
    /// Vendor alerts sent one by one per hour; past it they are merged into one digest per hour (default 20).
    /// Every message is still recorded. Anyone can send mail that is set aside with an alert.
    pub alerts_per_hour: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_buyer_per_hour: 5,
            per_provider_per_hour: 100,
            max_seats: 100,
            max_order_seats: 100,
            test_orders: TestOrders::Vendor,
            alerts_per_hour: 20,
        }
    }
}

/// Where a test order's reply goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOrders {
    /// Only the vendor sees it (the default: a provider's sandbox must not mail real people).
    #[default]
    Vendor,
    /// The buyer gets it like a real order.
    Buyer,
}

impl TestOrders {
    /// Who receives the license of an order (`test`: the provider marked it a test order). The one rule for a
    /// fulfilled order and for a resend.
    pub fn recipient(self, test: bool) -> Recipient {
        if test && self == TestOrders::Vendor { Recipient::Vendor } else { Recipient::Buyer }
    }
}

impl LimitsConfig {
    pub fn validate(&self, problems: &mut Problems) {
        for (key, value) in [
            ("limits.per_buyer_per_hour", self.per_buyer_per_hour),
            ("limits.per_provider_per_hour", self.per_provider_per_hour),
            ("limits.max_seats", self.max_seats),
            ("limits.max_order_seats", self.max_order_seats),
            ("limits.alerts_per_hour", self.alerts_per_hour),
        ] {
            if value == 0 {
                problems.error(key, "must be at least 1");
            }
        }
    }
}

/// What the state knows that bears on an order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The lines already recorded for this provider + order id.
    pub lines: Vec<KnownLine>,
    /// Distinct orders recorded from this buyer address in the last hour.
    pub buyer_orders_last_hour: u32,
    /// Distinct orders recorded from this provider in the last hour.
    pub provider_orders_last_hour: u32,
    /// A refund or chargeback (or cancellation) recorded for this order before any sale: its sale must never
    /// be fulfilled.
    pub revoked_ahead: Option<OrderKind>,
    /// A renewal's or cancellation's subscription: the licence chain of its first order, when keypost has it.
    pub chain: Option<ChainView>,
    /// Why no chain was found when one was looked for (e.g. two subscriptions of the buyer could be meant).
    pub chain_problem: Option<String>,
    /// The buyer's active licences, for an upgrade SKU (`upgrade_from`) to find the one it replaces.
    pub held: Vec<HeldLicence>,
    /// Another provider's order that answers the same payment: the one this order is recorded as linked to,
    /// or, for an order not recorded yet, the one recorded under its payment id (a shop's notice and its
    /// processor's notice of one sale). See `link.rs`.
    pub answered_by: Option<Related>,
}

/// Another provider's order for the same payment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub order: OrderRef,
    pub lines: Vec<KnownLine>,
    /// Only a refund, chargeback or cancellation is recorded for it, before any sale.
    pub revoked_ahead: Option<OrderKind>,
}

/// One order: provider + order id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderRef {
    pub provider: String,
    pub order_id: OrderId,
}

impl std::fmt::Display for OrderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.order_id)
    }
}

/// One recorded line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLine {
    pub line: u32,
    /// A license was issued for it.
    pub licensed: bool,
    /// That license was revoked since.
    pub revoked: bool,
}

/// A license to make for one line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Index of the line item in the order (0 for a manual order).
    pub line: u32,
    /// `ProductConfig::id`.
    pub product: String,
    pub seats: u32,
    pub licensee: Licensee,
    /// The SKU the line was sold under: its edition and term come from `[product.serial.terms]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The last valid day (`YYYY-MM-DD`) instead of the one the SKU's term gives: a renewal or an extension.
    /// Stored as `paid_through`: a [`crate::store::License`] flattens its grant next to its own `expires`.
    #[serde(default, rename = "paid_through", skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The licence this one renews, extends or upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<Follows>,
}

impl Grant {
    /// Whether this licence continues an earlier one's term (a renewal or an extension; not an upgrade).
    pub fn continues_earlier(&self) -> bool {
        self.follows.as_ref().is_some_and(|f| f.how != FollowKind::Upgrade)
    }
}

/// What to do with an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Decision {
    /// Make a license per grant and reply.
    Issue { grants: Vec<Grant>, recipient: Recipient },
    /// Take back these lines' licenses and tell the vendor. The lines are `linked`'s when the mail is another
    /// provider's notice of the payment that order answered, else the mail's own order's.
    Revoke {
        lines: Vec<u32>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        linked: Option<OrderRef>,
    },
    /// Another provider's notice of a payment already answered under `to`: recorded as linked to it, with no
    /// license and no reply of its own.
    Link { to: OrderRef, reason: String },
    /// A refund or chargeback for an order not recorded (yet): remember it and tell the vendor, so that its
    /// sale, should its mail come later, is never fulfilled.
    RevokeAhead { reason: String },
    /// A sale whose refund or chargeback came first: record it revoked, make no serial, send the buyer nothing.
    SaleRevoked { reason: String },
    /// A subscription was cancelled: its licence (the chain of `of`) ends at the end of the paid period,
    /// `ends`; no new serial, nothing to the buyer, the vendor is told.
    Cancel { of: LineRef, ends: String },
    /// Nothing to do (a duplicate); no reply.
    Skip { reason: String },
    /// A person must look: vendor alert, no reply to the buyer.
    Review { reason: String },
}

impl Decision {
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Issue { .. } => "issue",
            Decision::Revoke { .. } => "revoke",
            Decision::Link { .. } => "link",
            Decision::RevokeAhead { .. } => "revoke-ahead",
            Decision::SaleRevoked { .. } => "sale-revoked",
            Decision::Cancel { .. } => "cancel",
            Decision::Skip { .. } => "skip",
            Decision::Review { .. } => "review",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Decision::Issue { grants, recipient } => {
                format!(
                    "{} license(s) for the {}",
                    grants.len(),
                    if *recipient == Recipient::Buyer { "buyer" } else { "vendor (test order)" }
                )
            }
            Decision::Cancel { of, ends } => format!("subscription of {of} cancelled; its licence ends after {ends}"),
            Decision::Revoke { reason, .. }
            | Decision::Link { reason, .. }
            | Decision::RevokeAhead { reason }
            | Decision::SaleRevoked { reason }
            | Decision::Skip { reason }
            | Decision::Review { reason } => reason.clone(),
        }
    }
}

/// Decides what an order email asks for, against the vendor's products and limits.
pub fn decide(order: &Order, history: &History, products: &[ProductConfig], limits: &LimitsConfig) -> Decision {
    if let Some(decision) = subscription::decide(order, history, products, limits) {
        return decision;
    }
    if order.kind.revokes() {
        return decide_revocation(order.kind, history);
    }
    if let Some(kind) = history.revoked_ahead {
        return Decision::SaleRevoked { reason: format!("{} received before the sale", kind.as_str()) };
    }
    if !history.lines.is_empty() {
        return Decision::Skip { reason: format!("order {} is already recorded", order.id) };
    }
    if let Some(related) = &history.answered_by {
        return link::sale(related);
    }
    match check_sale(order, history, products, limits)
        .and_then(|grants| subscription::upgrades(grants, history, products))
        .map(|grants| subscription::paid_period(grants, order, products))
    {
        Ok(grants) => Decision::Issue { grants, recipient: limits.test_orders.recipient(order.test) },
        Err(reason) => Decision::Review { reason },
    }
}

fn decide_revocation(kind: OrderKind, history: &History) -> Decision {
    if let Some(related) = &history.answered_by {
        return link::revocation(kind, related);
    }
    if history.lines.is_empty() {
        return Decision::RevokeAhead { reason: format!("{} for an order keypost has not recorded", kind.as_str()) };
    }
    let lines: Vec<u32> = history.lines.iter().filter(|l| l.licensed && !l.revoked).map(|l| l.line).collect();
    if lines.is_empty() {
        return Decision::Skip { reason: format!("{}: no active license left to revoke", kind.as_str()) };
    }
    Decision::Revoke { lines, reason: kind.as_str().to_owned(), linked: None }
}

/// Every check a sale must pass; the first failure is the review reason.
fn check_sale(
    order: &Order,
    history: &History,
    products: &[ProductConfig],
    limits: &LimitsConfig,
) -> Result<Vec<Grant>, String> {
    if history.buyer_orders_last_hour >= limits.per_buyer_per_hour {
        return Err(format!(
            "buyer placed {} orders in the last hour (limit {})",
            history.buyer_orders_last_hour, limits.per_buyer_per_hour
        ));
    }
    if history.provider_orders_last_hour >= limits.per_provider_per_hour {
        return Err(format!(
            "provider {} sent {} orders in the last hour (limit {})",
            order.provider, history.provider_orders_last_hour, limits.per_provider_per_hour
        ));
    }
    if order.buyer_email.is_none() {
        return Err("no valid buyer email address in the order".to_owned());
    }
    let name = order.license_name().ok_or("no licensee or buyer name in the order")?;
    let licensee = Licensee::parse(name).map_err(|err| format!("licensee name refused: {err}"))?;
    if order.items.is_empty() {
        return Err("the order has no line items".to_owned());
    }
    let mut grants = Vec::new();
    let mut floors = Vec::new();
    for (index, item) in order.items.iter().enumerate() {
        let line = u32::try_from(index).map_err(|_| "too many line items")?;
        let product = find_product(item, products)?;
        check_item(item, product, limits)?;
        floors.push((product, item.quantity));
        let sku = sold_under(item, product);
        grants.push(Grant {
            line,
            product: product.id.clone(),
            seats: item.quantity,
            licensee: licensee.clone(),
            sku,
            expires: None,
            follows: None,
        });
    }
    let seats = order.items.iter().fold(0u64, |sum, item| sum.saturating_add(u64::from(item.quantity)));
    if seats > u64::from(limits.max_order_seats) {
        return Err(format!("{seats} seats in one order (limit {})", limits.max_order_seats));
    }
    check_floor_on_total(order, &floors)?;
    Ok(grants)
}

/// The SKU a line was sold under: the mail's SKU, else (a provider that names only the product, such as
/// Gumroad) the product name when the vendor listed it in the product's `skus`, so `[product.serial.terms]`
/// can give it an edition and a term.
fn sold_under(item: &LineItem, product: &ProductConfig) -> Option<String> {
    if let Some(sku) = &item.sku {
        return Some(sku.as_str().to_owned());
    }
    let name = item.product_name.as_deref()?.trim().to_lowercase();
    product.skus.iter().find(|sku| sku.trim().to_lowercase() == name).cloned()
}

fn check_item(item: &LineItem, product: &ProductConfig, limits: &LimitsConfig) -> Result<(), String> {
    if item.quantity == 0 {
        return Err(format!("quantity 0 for {}", product.id));
    }
    if item.quantity > limits.max_seats {
        return Err(format!("{} seats of {} (limit {})", item.quantity, product.id, limits.max_seats));
    }
    Ok(())
}

/// Price floors are checked on the total the provider computed, never on a unit price: item lines can sit next
/// to text the buyer wrote. The total must reach the sum of each line's floor times its quantity, in the total's
/// currency. No floor on any product: nothing to check.
fn check_floor_on_total(order: &Order, lines: &[(&ProductConfig, u32)]) -> Result<(), String> {
    let floored: Vec<_> = lines.iter().filter(|(product, _)| !product.min_price.is_empty()).collect();
    let Some((first, _)) = floored.first() else { return Ok(()) };
    let total = order
        .total
        .as_ref()
        .ok_or_else(|| format!("no order total (the minimum price of {} is checked on it)", first.id))?;
    let currency = total.currency.as_deref().ok_or("no currency on the order total")?;
    let mut minimum = 0i64;
    for (product, quantity) in floored {
        let floor = product
            .min_price
            .iter()
            .find(|floor| floor.currency.eq_ignore_ascii_case(currency))
            .ok_or_else(|| format!("no minimum price for {} in {currency}", product.id))?;
        let each = floor.hundredths().ok_or_else(|| format!("minimum price of {} is not a number", product.id))?;
        minimum = minimum.saturating_add(each.saturating_mul(i64::from(*quantity)));
    }
    if total.hundredths < minimum {
        let minimum = crate::order::Money { hundredths: minimum, currency: Some(currency.to_owned()) };
        return Err(format!("order total {total} is below the minimum {minimum} for its items"));
    }
    Ok(())
}

/// The product a line item is for: its SKU or product name against each product's SKUs, name and id,
/// case-insensitively. A SKU and a name that are two different products is an error, never the first product
/// listed: a template may read the SKU from the provider's cell and the name from a line a buyer typed above it.
pub fn find_product<'a>(item: &LineItem, products: &'a [ProductConfig]) -> Result<&'a ProductConfig, String> {
    let by = |wanted: &str| {
        let wanted = wanted.trim().to_lowercase();
        let names = |product: &&ProductConfig| {
            product.skus.iter().chain([&product.name, &product.id]).any(|n| n.trim().to_lowercase() == wanted)
        };
        products.iter().find(|product| !wanted.is_empty() && names(product))
    };
    let by_sku = item.sku.as_ref().and_then(|sku| by(sku.as_str()));
    let by_name = item.product_name.as_deref().and_then(by);
    match (by_sku, by_name) {
        (Some(sku), Some(name)) if sku.id != name.id => Err(format!(
            "{} is product {:?} but the line's name {:?} is product {:?}: cannot tell which was sold",
            describe(item),
            sku.id,
            item.product_name.as_deref().unwrap_or_default(),
            name.id
        )),
        (Some(product), _) | (None, Some(product)) => Ok(product),
        (None, None) => Err(format!("unknown product {}", describe(item))),
    }
}

fn describe(item: &LineItem) -> String {
    match (&item.sku, &item.product_name) {
        (Some(sku), _) => format!("SKU {:?}", sku.as_str()),
        (None, Some(name)) => format!("{name:?}"),
        (None, None) => "(no SKU or product name)".to_owned(),
    }
}

mod link;
#[cfg(test)]
pub(crate) mod tests;
