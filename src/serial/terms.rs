//! Editions and terms: which edition bits and expiry a product's serial carries, per SKU. Pure.
//! `editions` names the bits of the `block` layout 2 edition byte (bit 0 first); `terms` maps a SKU to an edition
//! and a term. A SKU not listed gets the first edition (if the product has editions) and a perpetual licence.
use std::collections::BTreeMap;

use keypost_serial::Licence;
use serde::Deserialize;
use time::Date;

/// At most one edition per bit of the edition byte.
pub const MAX_EDITIONS: usize = 8;

/// `"ACME-PRO-1Y" = { edition = "pro", term = "365d" }` under `[product.serial.terms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuTerms {
    /// One of the product's `editions` (default: its first).
    #[serde(default)]
    pub edition: Option<String>,
    /// `"perpetual"` (default) or `"<N>d"`: the licence is valid through the N-th day after its issue date.
    #[serde(default)]
    pub term: Option<String>,
    /// An upgrade SKU: the edition a buyer must already hold (e.g. `"standard"` on a SKU of edition `pro`).
    /// Its sale issues this SKU's edition and marks the held licence superseded; with none on file for the
    /// buyer it goes to review.
    #[serde(default)]
    pub upgrade_from: Option<String>,
}

/// How long a licence lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Perpetual,
    /// Valid through `issued + days`.
    Days(u16),
}

impl Term {
    /// What a term must look like, for error messages.
    pub const FORMAT: &str = "\"perpetual\" or a number of days like \"365d\" (1 to 65535)";

    pub fn parse(text: &str) -> Option<Term> {
        if text == "perpetual" {
            return Some(Term::Perpetual);
        }
        let days: u16 = text.strip_suffix('d')?.parse().ok()?;
        (days > 0 && text.bytes().next().is_some_and(|b| b.is_ascii_digit())).then_some(Term::Days(days))
    }

    /// The last valid day of a licence issued on `issued`; `None` when perpetual (or past any date).
    pub fn expiry(self, issued: Date) -> Option<Date> {
        match self {
            Term::Perpetual => None,
            Term::Days(days) => issued.checked_add(time::Duration::days(i64::from(days))),
        }
    }
}

/// A product's edition names and per-SKU terms, checked (see `SerialConfig::terms`).
#[derive(Debug, Clone, Default)]
pub struct Terms {
    editions: Vec<String>,
    /// Keyed by lower-cased SKU: SKUs are compared case-insensitively everywhere.
    skus: BTreeMap<String, (u8, Term)>,
    /// Upgrade SKUs (lower-cased) and the edition bits their buyer must hold.
    upgrades: BTreeMap<String, u8>,
}

impl Terms {
    pub(super) fn new(editions: Vec<String>, skus: BTreeMap<String, (u8, Term)>) -> Terms {
        Terms { editions, skus, upgrades: BTreeMap::new() }
    }

    pub(super) fn with_upgrades(self, upgrades: BTreeMap<String, u8>) -> Terms {
        Terms { upgrades, ..self }
    }

    /// The edition bits and term a sale of `sku` gets (the first edition, perpetual, when it is not listed).
    pub fn of(&self, sku: Option<&str>) -> (u8, Term) {
        let listed = sku.and_then(|sku| self.skus.get(&sku.trim().to_lowercase()));
        listed.copied().unwrap_or((self.default_bits(), Term::Perpetual))
    }

    /// For an upgrade SKU, the edition bits its buyer must already hold.
    pub fn upgrade_from(&self, sku: Option<&str>) -> Option<u8> {
        sku.and_then(|sku| self.upgrades.get(&sku.trim().to_lowercase())).copied()
    }

    /// The licence a sale of `sku` gets: the SKU's edition and term, else the first edition, perpetual.
    pub fn licence(&self, sku: Option<&str>, seats: u32, issued: Date) -> Licence {
        let (bits, term) = self.of(sku);
        let licence = Licence::new(seats, issued).with_edition(bits);
        match term.expiry(issued) {
            Some(last_day) => licence.with_expiry(last_day),
            None => licence,
        }
    }

    fn default_bits(&self) -> u8 {
        if self.editions.is_empty() { 0 } else { 1 }
    }

    /// Edition bits from names joined by `,` or `+` (e.g. `pro` or `pro+team`); an error names the known ones.
    pub fn bits(&self, names: &str) -> Result<u8, String> {
        let mut bits = 0u8;
        for name in names.split([',', '+']).map(str::trim) {
            let Some(bit) = self.editions.iter().position(|e| e.eq_ignore_ascii_case(name)) else {
                let known = if self.editions.is_empty() { "none".to_owned() } else { self.editions.join(", ") };
                return Err(format!("unknown edition {name:?}; this product's editions: {known}"));
            };
            bits |= 1u8.checked_shl(u32::try_from(bit).unwrap_or(u32::MAX)).unwrap_or(0);
        }
        Ok(bits)
    }

    /// The names of the set bits joined by `+`; an unnamed bit shows as `bit N`, no bits as `none`.
    pub fn names(&self, bits: u8) -> String {
        let names: Vec<String> = (0..8usize)
            .filter(|bit| bits & (1 << bit) != 0)
            .map(|bit| self.editions.get(bit).cloned().unwrap_or_else(|| format!("bit {bit}")))
            .collect();
        if names.is_empty() { "none".to_owned() } else { names.join("+") }
    }
}

/// True when `name` can name an edition: 1 to 32 ASCII letters, digits, `-` or `_`.
pub(super) fn is_edition_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn terms() -> Terms {
        let editions = ["standard", "pro", "team"].map(String::from).to_vec();
        let skus =
            BTreeMap::from([("pro-1y".to_owned(), (2, Term::Days(365))), ("team".to_owned(), (4, Term::Perpetual))]);
        Terms::new(editions, skus)
    }

    #[test]
    fn terms_parse_perpetual_and_days_and_refuse_the_rest() {
        assert_eq!(Term::parse("perpetual"), Some(Term::Perpetual));
        assert_eq!(Term::parse("365d"), Some(Term::Days(365)));
        for bad in ["0d", "d", "-1d", "+5d", "365", "1y", "70000d", "Perpetual"] {
            assert_eq!(Term::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_listed_sku_gets_its_edition_and_expiry_and_others_the_first_edition_forever() {
        let issued = date!(2026 - 11 - 22);
        let yearly = terms().licence(Some(" PRO-1Y "), 3, issued);
        assert_eq!((yearly.edition, yearly.expires, yearly.seats), (2, Some(date!(2027 - 11 - 22)), 3));
        let other = terms().licence(Some("unlisted"), 1, issued);
        assert_eq!((other.edition, other.expires), (1, None));
        assert_eq!(Terms::default().licence(None, 1, issued), Licence::new(1, issued));
    }

    #[test]
    fn edition_names_and_bits_convert_both_ways() {
        assert_eq!(terms().bits("pro+Team"), Ok(6));
        assert_eq!(terms().names(6), "pro+team");
        assert_eq!(terms().names(0b1000_0001), "standard+bit 7");
        assert_eq!(terms().names(0), "none");
        let err = terms().bits("gold").unwrap_err();
        assert_eq!(err, "unknown edition \"gold\"; this product's editions: standard, pro, team");
    }
}
