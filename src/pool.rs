//! Code pools: a product that hands out pre-made codes (an app with its own key scheme, codes bought from a
//! platform) instead of computed serials. Pure: the `[product.pool]` section, reading an import file into codes,
//! the low-water rule and the status table. The codes themselves live in the store (`store/pool.rs`); taking
//! one is part of the order's durable commit (`daemon/pool.rs`).
//!
//! # Invariants
//! - A code is handed out at most once: it leaves the available queue in the same atomic change that records
//!   the order line holding it and queues its reply. A crash before that commit leaves it in the pool; after it,
//!   the outbox resends the same code.
//! - A code is never returned to the pool: a refund marks it revoked (its reply may have reached the buyer, even
//!   one cancelled after an SMTP server accepted it just before a crash).
//! - A code is compared exactly (after trimming the line it came on): case matters.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::problems::Problems;

/// Longest code accepted, in bytes (serials and platform keys are far shorter; a longer line is a wrong file).
pub const MAX_CODE_BYTES: usize = 256;

/// `[product.pool]`: the product's licences are codes from a pool filled with `keypost pool import`.
/// Unknown keys are reported by the config loader (with the others), not refused here.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolConfig {
    /// The vendor is alerted when a sale leaves fewer than this many codes (default 10; 0: only when empty).
    #[serde(default = "default_low_water")]
    pub low_water: u32,
}

fn default_low_water() -> u32 {
    10
}

impl PoolConfig {
    pub fn validate(&self, key: &str, problems: &mut Problems) {
        if self.low_water > 1_000_000 {
            problems.error(format!("{key}.low_water"), "must be at most 1000000");
        }
    }
}

/// What an import file holds: its codes in file order, and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportFile {
    pub codes: Vec<String>,
    /// Lines empty after trimming.
    pub blank: usize,
    /// Lines repeating a code earlier in the file.
    pub repeated: usize,
}

/// A line that cannot be a code: the whole file is refused, nothing imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

/// Reads an import file: one code per line, trimmed; blank and repeated lines are counted and skipped. A line
/// with control characters or longer than [`MAX_CODE_BYTES`] refuses the whole file (a wrong file, most
/// likely), with every such line listed.
pub fn read_import(text: &str) -> Result<ImportFile, Vec<BadLine>> {
    let mut file = ImportFile::default();
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    // A byte-order mark from a spreadsheet export is not part of the first code.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let code = line.trim();
        if code.is_empty() {
            file.blank += 1;
        } else if let Err(reason) = check_code(code) {
            bad.push(BadLine { line: index + 1, reason });
        } else if !seen.insert(code) {
            file.repeated += 1;
        } else {
            file.codes.push(code.to_owned());
        }
    }
    if bad.is_empty() { Ok(file) } else { Err(bad) }
}

/// Why `code` cannot be a code, if it cannot.
pub fn check_code(code: &str) -> Result<(), String> {
    if code.len() > MAX_CODE_BYTES {
        return Err(format!("longer than {MAX_CODE_BYTES} bytes"));
    }
    if code.chars().any(char::is_control) {
        return Err("contains a control character".to_owned());
    }
    Ok(())
}

/// Whether taking codes from `before` down to `after` left the pool below its low-water mark for the first
/// time since it was last filled above it (or emptied it): the one alert per fall, not one per sale.
pub fn fell_below(before: usize, after: usize, low_water: u32) -> bool {
    let mark = usize::try_from(low_water).unwrap_or(usize::MAX);
    (before >= mark && after < mark) || (before > 0 && after == 0)
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// New codes, now available.
    pub added: usize,
    /// Codes already in the pool, not yet handed out.
    pub in_pool: usize,
    /// Codes handed out (or revoked) before: never handed out again.
    pub used: usize,
    /// Orders that waited for codes and were answered after the import.
    pub answered: usize,
}

/// One product's stock, as `keypost pool status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub product: String,
    pub available: usize,
    pub handed_out: usize,
    /// Handed out, then revoked by a refund or the vendor (never handed out again).
    pub revoked: usize,
    /// `None` for codes of a product the configuration no longer lists as a pool.
    pub low_water: Option<u32>,
    /// Orders waiting for a code of this product.
    pub waiting: usize,
}

impl Stock {
    pub fn is_low(&self) -> bool {
        self.low_water.is_some_and(|mark| self.available < usize::try_from(mark).unwrap_or(usize::MAX))
    }
}

/// The status table (or JSON array) of every pool.
pub fn render_status(stocks: &[Stock], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(stocks).unwrap_or_default() + "\n";
    }
    if stocks.is_empty() {
        return "no product hands out pool codes\n".to_owned();
    }
    let mut out = String::new();
    for stock in stocks {
        let mark = stock
            .low_water
            .map_or_else(|| "not a pool product in the configuration".to_owned(), |m| format!("low-water mark {m}"));
        let _ = write!(
            out,
            "{}: {} available, {} handed out, {} revoked; {mark}",
            stock.product, stock.available, stock.handed_out, stock.revoked
        );
        if stock.waiting > 0 {
            let _ = write!(out, "; {} order(s) waiting for codes", stock.waiting);
        }
        if stock.is_low() {
            out.push_str(if stock.available == 0 { " (EMPTY)" } else { " (LOW)" });
        }
        out.push('\n');
    }
    out
}

/// What `pool import` prints.
pub fn render_imported(product: &str, file: &ImportFile, imported: &Imported, available: usize) -> String {
    let mut out = format!(
        "{product}: {} code(s) added; skipped: {} already in the pool, {} already handed out, {} repeated in the \
         file, {} blank line(s); {available} available now\n",
        imported.added, imported.in_pool, imported.used, file.repeated, file.blank
    );
    if imported.answered > 0 {
        let _ = writeln!(out, "{} order(s) that waited for codes answered", imported.answered);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_file_is_trimmed_and_blank_and_repeated_lines_are_skipped_and_counted() {
        let file = read_import("\u{feff}AAAA-1\r\n  BBBB-2  \n\n   \nAAAA-1\naaaa-1\n").unwrap();
        assert_eq!(file.codes, ["AAAA-1", "BBBB-2", "aaaa-1"]);
        assert_eq!((file.blank, file.repeated), (2, 1));
    }

    #[test]
    fn a_line_with_a_control_character_or_too_long_refuses_the_whole_file_listing_each_line() {
        let long = "x".repeat(MAX_CODE_BYTES + 1);
        let bad = read_import(&format!("OK-1\nBAD\u{7}2\n{long}\n")).unwrap_err();
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(bad[0].to_string(), "line 2: contains a control character");
    }

    #[test]
    fn the_low_water_alert_fires_once_per_fall_below_the_mark_and_when_the_pool_empties() {
        assert!(fell_below(10, 9, 10));
        assert!(!fell_below(9, 8, 10), "already below: no second alert");
        assert!(fell_below(12, 3, 10), "several codes in one order");
        assert!(fell_below(1, 0, 0), "mark 0: only when empty");
        assert!(fell_below(3, 0, 10), "emptied: alert again");
        assert!(!fell_below(11, 10, 10));
    }

    #[test]
    fn the_status_names_each_pool_and_flags_low_and_empty_stock() {
        let stock = |product: &str, available, low_water| Stock {
            product: product.into(),
            available,
            handed_out: 2,
            revoked: 1,
            low_water,
            waiting: 0,
        };
        let text = render_status(&[stock("a", 0, Some(5)), stock("b", 7, Some(5)), stock("c", 3, None)], false);
        assert_eq!(
            text,
            "a: 0 available, 2 handed out, 1 revoked; low-water mark 5 (EMPTY)\n\
             b: 7 available, 2 handed out, 1 revoked; low-water mark 5\n\
             c: 3 available, 2 handed out, 1 revoked; not a pool product in the configuration\n"
        );
        let json: Vec<Stock> = serde_json::from_str(&render_status(&[stock("a", 4, Some(5))], true)).unwrap();
        assert_eq!(json[0].available, 4);
    }
}
