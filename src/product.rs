//! `[[product]]`: what the vendor sells, how its serials are made and what its reply says. Pure: no I/O.
//! Products are matched to order lines by [`crate::fulfil::find_product`]; ids and SKUs are unique (checked here).
use serde::Deserialize;

use crate::problems::Problems;
use crate::reply::{ProductReply, ReplyTemplateConfig};
use crate::serial;

/// One product: `[[product]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductConfig {
    /// Short stable id used in the CLI and the state, e.g. `acme-pro`.
    pub id: String,
    /// Name shown to buyers, e.g. `Acme Pro`.
    pub name: String,
    /// Every SKU, product code or product name under which providers sell it (compared case-insensitively).
    #[serde(default)]
    pub skus: Vec<String>,
    /// How serials for this product are made. A product has this or `pool`, not both.
    #[serde(default)]
    pub serial: Option<serial::SerialConfig>,
    /// Hand out pre-made codes from a pool (`keypost pool import`) instead of computed serials.
    #[serde(default)]
    pub pool: Option<crate::pool::PoolConfig>,
    /// Lowest unit price accepted per currency; an order below it goes to review.
    #[serde(default)]
    pub min_price: Vec<PriceFloor>,
    /// Where the buyer downloads the product (available to reply templates as `{download_url}`).
    #[serde(default)]
    pub download_url: Option<String>,
    /// Sign `download_url` so it expires, as nginx's `secure_link` module checks it:
    /// `{ secret = { file = "..." }, days = 3 }` (see `reply::link`).
    #[serde(default)]
    pub download_link: Option<crate::reply::link::DownloadLinkConfig>,
    /// An activation link template, e.g. `myapp://register?name={licensee_url}&serial={serial_url}`.
    #[serde(default)]
    pub activation_url: Option<String>,
    /// A reply template for this product instead of `[reply.template]`.
    #[serde(default)]
    pub reply: Option<ReplyTemplateConfig>,
}

/// `{ currency = "USD", amount = "9.00" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFloor {
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Decimal amount with a dot, e.g. `"9.00"`.
    pub amount: String,
}

impl PriceFloor {
    /// The floor in hundredths, or `None` when `amount` is not a plain decimal.
    pub fn hundredths(&self) -> Option<i64> {
        let (units, fraction) = self.amount.trim().split_once('.').unwrap_or((self.amount.trim(), "0"));
        if fraction.len() > 2 || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let units: i64 = units.parse().ok()?;
        let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
        units.checked_mul(100)?.checked_add(fraction)
    }
}

impl ProductConfig {
    /// Whether its licences are codes from a pool rather than computed serials.
    pub fn is_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// What the reply renderer needs of this product.
    pub fn reply_view(&self) -> ProductReply<'_> {
        ProductReply {
            id: &self.id,
            name: &self.name,
            download_url: self.download_url.as_deref(),
            download_link: self.download_link.as_ref(),
            activation_url: self.activation_url.as_deref(),
            template: self.reply.as_ref(),
        }
    }
}

/// Checks every `[[product]]` and that ids and SKUs are unique across them.
pub fn validate_all(products: &[ProductConfig], problems: &mut Problems) {
    let mut seen_ids = std::collections::BTreeSet::new();
    let mut seen_skus = std::collections::BTreeMap::new();
    for (index, product) in products.iter().enumerate() {
        let key = format!("product[{index}]");
        if product.id.trim().is_empty() {
            problems.error(format!("{key}.id"), "must not be empty");
        } else if !seen_ids.insert(product.id.as_str()) {
            problems.error(format!("{key}.id"), format!("duplicate product id {:?}", product.id));
        }
        for sku in &product.skus {
            if let Some(other) = seen_skus.insert(sku.to_lowercase(), product.id.as_str()) {
                problems.error(
                    format!("{key}.skus"),
                    format!("SKU {sku:?} is also listed for product {other:?}; each SKU maps to one product"),
                );
            }
        }
        for (i, floor) in product.min_price.iter().enumerate() {
            if floor.hundredths().is_none() {
                problems.error(format!("{key}.min_price[{i}].amount"), "must be a decimal like \"9.00\"");
            }
        }
        match (&product.serial, &product.pool) {
            (Some(serial), None) => {
                serial.validate(&format!("{key}.serial"), problems);
                serial.validate_term_skus(&format!("{key}.serial"), &product.skus, problems);
            }
            (None, Some(pool)) => pool.validate(&format!("{key}.pool"), problems),
            (None, None) => problems.error(
                format!("{key}.serial"),
                "is required: how the product's serials are made (or [product.pool] for pre-made codes)",
            ),
            (Some(_), Some(_)) => problems.error(
                format!("{key}.pool"),
                "a product hands out serials ([product.serial]) or pool codes ([product.pool]), not both",
            ),
        }
        if let Some(reply) = &product.reply {
            reply.validate(&format!("{key}.reply"), problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_floor_parses_plain_decimals_only() {
        let floor = |amount: &str| PriceFloor { currency: "EUR".into(), amount: amount.into() }.hundredths();
        assert_eq!(floor("9.5"), Some(950));
        assert_eq!(floor("12"), Some(1200));
        assert_eq!(floor("1,50"), None);
        assert_eq!(floor("1.505"), None);
    }
}
