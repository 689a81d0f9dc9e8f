//! `[product.serial]` in keypost.toml, turning it into checked settings, and (in [`SerialConfig::maker`], the
//! only I/O) loading its keys. Elsewhere an inline key's format is checked, never its value shown.
use std::collections::BTreeMap;
use std::path::Path;

use keypost_serial::{KEY_FORMAT, Key, Maker, NameEncoding, NormaliseRule, Output, Scheme};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::LoadError;
use super::terms::{self, MAX_EDITIONS, SkuTerms, Term, Terms};
use crate::problems::Problems;
use crate::secret::SecretSource;

/// `[product.serial]`: how serials for one product are made. See `docs/serial-format.md`.
#[derive(Debug, Clone, Deserialize)]
pub struct SerialConfig {
    /// `"block"` (default; fixed-length serials with seats, issue date and key id) or `"name-cbc"` (AES-128-CBC
    /// of the name, to match an app that already verifies such serials).
    #[serde(default)]
    pub scheme: Option<String>,
    /// The 16-byte AES key, as 32 hex digits or 16 ASCII characters: `{ file = ... }`, `{ env = ... }`,
    /// `{ credential = ... }` or `{ inline = ... }` (inline works, but `keypost check` warns).
    pub key: SecretSource,
    /// Name normalisation: `"rfc8266"` (default for name-cbc), `"rfc8266-casefold"` (default for block), `"none"`.
    #[serde(default)]
    pub normalise: Option<String>,
    /// block: this product's code (0-65535), inside every serial, so a serial of one product never fits another.
    #[serde(default)]
    pub product_code: Option<u16>,
    /// block: the two Crockford base32 characters that start every new serial and name the key (default `K1`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// block: earlier keys, kept only so their serials still verify; remove one to retire its serials.
    #[serde(default)]
    pub retired_keys: Vec<RetiredKey>,
    /// Characters per group in the printed serial, 0 for none (default 4 for block, 0 for name-cbc).
    #[serde(default)]
    pub group: Option<usize>,
    /// What joins the groups (default `-`).
    #[serde(default)]
    pub separator: Option<String>,
    /// name-cbc: the CBC IV, 32 hex digits or 16 ASCII characters (default all zero bytes).
    #[serde(default)]
    pub iv: Option<String>,
    /// name-cbc: the name's bytes: `"utf-8"` (default), `"utf-16le"` or `"windows-1252"`.
    #[serde(default)]
    pub name_encoding: Option<String>,
    /// name-cbc: the serial's text: `"base32"` (RFC 4648, default), `"crockford"` or `"hex"`.
    #[serde(default)]
    pub output: Option<String>,
    /// block: names of the edition bits, bit 0 first (at most 8), e.g. `["standard", "pro", "team"]`. A product
    /// with editions issues layout 2 serials, which carry them.
    #[serde(default)]
    pub editions: Vec<String>,
    /// block: per SKU (as in the product's `skus`), the edition and term its licences get:
    /// `"ACME-PRO-1Y" = { edition = "pro", term = "365d" }`. Unlisted SKUs: the first edition, perpetual.
    #[serde(default)]
    pub terms: BTreeMap<String, SkuTerms>,
}

/// `{ key_id = "K0", key = { file = "old.key" } }`: a key that no longer makes serials but still verifies them.
#[derive(Debug, Clone, Deserialize)]
pub struct RetiredKey {
    /// The id its serials start with.
    pub key_id: String,
    /// The retired key, in any form `key` accepts.
    pub key: SecretSource,
}

/// A [`SerialConfig`] whose values are all known to be well-formed (keys aside: they are read later).
#[derive(Debug, Clone)]
struct Settings {
    pub scheme: Scheme,
    pub rule: NormaliseRule,
    pub group: usize,
    pub separator: String,
    pub iv: [u8; 16],
    pub name_encoding: NameEncoding,
    pub output: Output,
    pub product_code: u16,
    pub key_id: String,
}

/// One bad field: its name under `[product.serial]` and what is wrong.
type FieldProblem = (String, String);

const BLOCK_ONLY: [&str; 4] = ["product_code", "key_id", "editions", "terms"];
const NAME_CBC_ONLY: [&str; 3] = ["iv", "name_encoding", "output"];
const DEFAULT_KEY_ID: &str = "K1";

impl SerialConfig {
    /// Reports every bad field as `{key}.field`; warns when a key is written inline.
    pub fn validate(&self, key: &str, problems: &mut Problems) {
        if let Err(found) = self.settings() {
            for (field, message) in found {
                problems.error(format!("{key}.{field}"), message);
            }
        }
        let sources = std::iter::once(("key".to_owned(), &self.key))
            .chain(self.retired_keys.iter().enumerate().map(|(i, r)| (format!("retired_keys[{i}].key"), &r.key)));
        for (field, _) in sources.filter(|(_, source)| source.is_inline()) {
            problems.warn(
                format!("{key}.{field}"),
                "the key is written in the config file; prefer { file = ... }, { env = ... } or { credential = ... }",
            );
        }
    }

    /// Checks the settings and loads every key (relative key files are taken from `base_dir`).
    pub fn maker(&self, base_dir: &Path) -> Result<Maker, LoadError> {
        let settings = self.settings().map_err(config_error)?;
        let current = load_key("key", &self.key, base_dir)?;
        let maker = match settings.scheme {
            Scheme::NameCbc => Maker::name_cbc(current, settings.iv, settings.name_encoding, settings.output),
            Scheme::Block => {
                let mut maker = Maker::block(settings.product_code, &settings.key_id, current)
                    .map_err(|err| LoadError::Config { problems: format!("serial.key_id: {err}") })?;
                for (i, retired) in self.retired_keys.iter().enumerate() {
                    let key = load_key(&format!("retired_keys[{i}].key"), &retired.key, base_dir)?;
                    maker = maker.with_retired_key(&retired.key_id, key).map_err(|err| LoadError::Config {
                        problems: format!("serial.retired_keys[{i}].key_id: {err}"),
                    })?;
                }
                maker
            }
        };
        Ok(maker.with_rule(settings.rule).with_groups(settings.group, &settings.separator))
    }

    /// Checks every field and returns the settings, or every problem found.
    fn settings(&self) -> Result<Settings, Vec<FieldProblem>> {
        let mut found = Vec::new();
        let scheme = self.checked_scheme(&mut found);
        let rule = self.checked_rule(scheme, &mut found);
        self.check_scheme_fields(scheme, &mut found);
        self.check_inline_keys(&mut found);
        let settings = Settings {
            scheme,
            rule,
            group: self.group.unwrap_or(if scheme == Scheme::Block { 4 } else { 0 }),
            separator: self.checked_separator(&mut found),
            iv: self.checked_iv(&mut found),
            name_encoding: self
                .name_encoding
                .as_deref()
                .and_then(|text| {
                    parse_enum(&mut found, "name_encoding", text, NameEncoding::parse, &NameEncoding::NAMES)
                })
                .unwrap_or(NameEncoding::Utf8),
            output: self
                .output
                .as_deref()
                .and_then(|text| parse_enum(&mut found, "output", text, Output::parse, &Output::NAMES))
                .unwrap_or(Output::Base32),
            product_code: self.product_code.unwrap_or(0),
            key_id: self.key_id.as_deref().unwrap_or(DEFAULT_KEY_ID).to_ascii_uppercase(),
        };
        if found.is_empty() { Ok(settings) } else { Err(found) }
    }

    fn checked_scheme(&self, found: &mut Vec<FieldProblem>) -> Scheme {
        match self.scheme.as_deref() {
            None | Some("block") => Scheme::Block,
            Some("name-cbc") => Scheme::NameCbc,
            Some(other) => {
                found.push(("scheme".into(), format!("unknown scheme {other:?}; expected \"block\" or \"name-cbc\"")));
                Scheme::Block
            }
        }
    }

    /// The configured rule, else the scheme's default: block compares names case-insensitively.
    fn checked_rule(&self, scheme: Scheme, found: &mut Vec<FieldProblem>) -> NormaliseRule {
        match &self.normalise {
            None if scheme == Scheme::Block => NormaliseRule::Rfc8266Casefold,
            None => NormaliseRule::Rfc8266,
            Some(text) => parse_enum(found, "normalise", text, NormaliseRule::parse, &NormaliseRule::NAMES)
                .unwrap_or(NormaliseRule::Rfc8266),
        }
    }

    fn check_scheme_fields(&self, scheme: Scheme, found: &mut Vec<FieldProblem>) {
        let present = |field: &str| match field {
            "product_code" => self.product_code.is_some(),
            "editions" => !self.editions.is_empty(),
            "terms" => !self.terms.is_empty(),
            "key_id" => self.key_id.is_some() || !self.retired_keys.is_empty(),
            "iv" => self.iv.is_some(),
            "name_encoding" => self.name_encoding.is_some(),
            _ => self.output.is_some(),
        };
        let (foreign, other) = match scheme {
            Scheme::Block => (&NAME_CBC_ONLY[..], "name-cbc"),
            Scheme::NameCbc => (&BLOCK_ONLY[..], "block"),
        };
        for field in foreign.iter().filter(|field| present(field)) {
            let field = if *field == "key_id" && self.key_id.is_none() { "retired_keys" } else { field };
            found.push((field.to_owned(), format!("only applies to scheme \"{other}\"")));
        }
        if scheme == Scheme::Block {
            self.check_block_fields(found);
            self.check_editions(found);
            self.checked_terms(found);
        }
    }

    fn check_editions(&self, found: &mut Vec<FieldProblem>) {
        if self.editions.len() > MAX_EDITIONS {
            found.push(("editions".into(), format!("has {} names; at most {MAX_EDITIONS}", self.editions.len())));
        }
        for (i, name) in self.editions.iter().enumerate() {
            if !terms::is_edition_name(name) {
                found.push((format!("editions[{i}]"), format!("{name:?} must be 1 to 32 letters, digits, - or _")));
            } else if self.editions.iter().take(i).any(|e| e.eq_ignore_ascii_case(name)) {
                found.push((format!("editions[{i}]"), format!("edition {name:?} is listed twice")));
            }
        }
    }

    /// Each SKU's edition bits and term; problems are reported as `terms."SKU".field`.
    fn checked_terms(&self, found: &mut Vec<FieldProblem>) -> BTreeMap<String, (u8, Term)> {
        let names = Terms::new(self.editions.clone(), BTreeMap::new());
        let mut checked = BTreeMap::new();
        for (sku, entry) in &self.terms {
            let field = |name: &str| format!("terms.{sku:?}.{name}");
            let bits = match (&entry.edition, self.editions.is_empty()) {
                (None, true) => Ok(0),
                (None, false) => Ok(1),
                (Some(edition), _) => names.bits(edition),
            };
            let bits = bits.unwrap_or_else(|message| {
                found.push((field("edition"), message));
                0
            });
            let term = entry.term.as_deref().map_or(Some(Term::Perpetual), Term::parse).unwrap_or_else(|| {
                found.push((field("term"), format!("must be {}", Term::FORMAT)));
                Term::Perpetual
            });
            if let Some(from) = &entry.upgrade_from {
                match names.bits(from) {
                    Ok(from_bits) if from_bits & bits != 0 => found.push((
                        field("upgrade_from"),
                        format!("{from:?} is the edition this SKU already sells; an upgrade goes to another"),
                    )),
                    Ok(_) => {}
                    Err(message) => found.push((field("upgrade_from"), message)),
                }
            }
            if checked.insert(sku.trim().to_lowercase(), (bits, term)).is_some() {
                found.push((
                    format!("terms.{sku:?}"),
                    "lists a SKU twice (SKUs are compared case-insensitively)".into(),
                ));
            }
        }
        checked
    }

    /// The product's editions and per-SKU terms (empty for `name-cbc`), or every problem found.
    pub fn terms(&self) -> Result<Terms, LoadError> {
        let mut found = Vec::new();
        let skus = self.checked_terms(&mut found);
        self.check_editions(&mut found);
        if !found.is_empty() {
            return Err(config_error(found));
        }
        let names = Terms::new(self.editions.clone(), BTreeMap::new());
        let upgrades = (self.terms.iter())
            .filter_map(|(sku, entry)| {
                Some((sku.trim().to_lowercase(), names.bits(entry.upgrade_from.as_deref()?).ok()?))
            })
            .collect();
        Ok(Terms::new(self.editions.clone(), skus).with_upgrades(upgrades))
    }

    /// Reports a `terms` SKU that is not one of the product's `skus` (it would never be used).
    pub fn validate_term_skus(&self, key: &str, skus: &[String], problems: &mut Problems) {
        for sku in self.terms.keys() {
            if !skus.iter().any(|s| s.trim().eq_ignore_ascii_case(sku.trim())) {
                problems.error(format!("{key}.terms.{sku:?}"), "is not one of the product's skus");
            }
        }
    }

    fn check_block_fields(&self, found: &mut Vec<FieldProblem>) {
        if self.product_code.is_none() {
            found.push(("product_code".into(), "is required for scheme \"block\" (a number 0-65535)".into()));
        }
        let current = self.key_id.as_deref().unwrap_or(DEFAULT_KEY_ID);
        if !keypost_serial::is_key_id(current) {
            found.push(("key_id".into(), key_id_message(current)));
        }
        let mut seen = vec![current.to_ascii_uppercase()];
        for (i, retired) in self.retired_keys.iter().enumerate() {
            let id = retired.key_id.to_ascii_uppercase();
            if !keypost_serial::is_key_id(&id) {
                found.push((format!("retired_keys[{i}].key_id"), key_id_message(&retired.key_id)));
            } else if seen.contains(&id) {
                found.push((format!("retired_keys[{i}].key_id"), format!("key id {id:?} is already in use")));
            }
            seen.push(id);
        }
    }

    fn check_inline_keys(&self, found: &mut Vec<FieldProblem>) {
        let sources = std::iter::once(("key".to_owned(), &self.key))
            .chain(self.retired_keys.iter().enumerate().map(|(i, r)| (format!("retired_keys[{i}].key"), &r.key)));
        for (field, source) in sources {
            if let SecretSource::Inline(secret) = source
                && Key::parse(secret.expose_secret()).is_none()
            {
                found.push((field, format!("must be {KEY_FORMAT}")));
            }
        }
    }

    fn checked_separator(&self, found: &mut Vec<FieldProblem>) -> String {
        let separator = self.separator.clone().unwrap_or_else(|| "-".to_owned());
        let ok = separator.chars().count() <= 3 && separator.chars().all(|c| c.is_ascii_punctuation() || c == ' ');
        if !ok || (separator.is_empty() && self.group.is_some_and(|g| g > 0)) {
            found.push(("separator".into(), "must be 1 to 3 ASCII punctuation characters or spaces".into()));
        }
        separator
    }

    fn checked_iv(&self, found: &mut Vec<FieldProblem>) -> [u8; 16] {
        let Some(text) = &self.iv else { return [0; 16] };
        keypost_serial::parse_16(text).unwrap_or_else(|| {
            found.push(("iv".into(), format!("must be {KEY_FORMAT}")));
            [0; 16]
        })
    }
}

fn config_error(found: Vec<FieldProblem>) -> LoadError {
    let problems = found.into_iter().map(|(field, message)| format!("serial.{field}: {message}"));
    LoadError::Config { problems: problems.collect::<Vec<_>>().join("; ") }
}

fn load_key(field: &str, source: &SecretSource, base_dir: &Path) -> Result<Key, LoadError> {
    let secret = source.load(base_dir).map_err(|cause| LoadError::LoadKey { field: field.to_owned(), cause })?;
    Key::parse(secret.expose_secret())
        .ok_or_else(|| LoadError::BadKey { field: field.to_owned(), origin: source.origin() })
}

fn key_id_message(id: &str) -> String {
    format!("key id {id:?} must be two Crockford base32 characters (0-9, A-Z without I, L, O, U)")
}

fn parse_enum<T: Copy>(
    found: &mut Vec<FieldProblem>,
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    names: &[&str],
) -> Option<T> {
    let value = parse(text);
    if value.is_none() {
        let expected = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        found.push((field.to_owned(), format!("unknown value {text:?}; expected one of {expected}")));
    }
    value
}
