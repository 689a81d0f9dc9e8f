//! `keypost.toml`: the serde model and its validation. No I/O beyond reading the one file.
//!
//! Each section's struct lives in the module that uses it (`serial::SerialConfig`, `mailbox::MailboxConfig`, ...)
//! and has a `validate(&self, &mut Problems)`; this module composes them. Loading never stops at the first
//! problem: unknown keys (found with `serde_ignored`, so all of them are reported, not just the first as
//! `deny_unknown_fields` would) and every validation problem are collected and returned together.
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{fulfil, mailbox, reply, serial, store, template, trust};

/// Where the config file is looked for when `--config` is not given, in order.
pub const DEFAULT_PATHS: [&str; 2] = ["keypost.toml", "/etc/keypost/keypost.toml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong with a user's file, with the file and the dotted key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: {}: {}: {}", self.file.display(), self.key, self.message)
    }
}

/// Collects problems about one file.
#[derive(Debug)]
pub struct Problems {
    file: PathBuf,
    items: Vec<Problem>,
}

impl Problems {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into(), items: Vec::new() }
    }

    pub fn error(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.push(Severity::Error, key.into(), message.to_string());
    }

    pub fn warn(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.push(Severity::Warning, key.into(), message.to_string());
    }

    fn push(&mut self, severity: Severity, key: String, message: String) {
        self.items.push(Problem { severity, file: self.file.clone(), key, message });
    }

    /// Takes the problems of another file (a template, a key file) into this list.
    pub fn extend(&mut self, other: impl IntoIterator<Item = Problem>) {
        self.items.extend(other);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn items(&self) -> &[Problem] {
        &self.items
    }

    pub fn into_items(self) -> Vec<Problem> {
        self.items
    }
}

/// The configuration could not be used; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the configuration:\n{}", .0.len(), list(.0))]
pub struct ConfigError(pub Vec<Problem>);

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// The whole `keypost.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Where keypost keeps its state (the sled database).
    #[serde(default)]
    pub state: store::StateConfig,
    /// Where the provider templates are and how large a message may be.
    #[serde(default)]
    pub templates: template::TemplatesConfig,
    /// Where order emails arrive: a local Maildir or an IMAP folder. Needed by `keypost run`.
    #[serde(default)]
    pub mailbox: Option<mailbox::MailboxConfig>,
    /// Where replies go: an SMTP server, or a folder of `.eml` files. Needed by `keypost run`.
    #[serde(default)]
    pub outbox: Option<reply::TransportConfig>,
    /// Who replies are from, who the vendor is, and the default reply template.
    #[serde(default)]
    pub reply: reply::ReplyConfig,
    /// The products keypost sells licenses for.
    #[serde(default, rename = "product")]
    pub products: Vec<ProductConfig>,
    /// How keypost decides that an order email really came from its provider.
    #[serde(default)]
    pub trust: trust::TrustConfig,
    /// Rate limits and other checks every order must pass.
    #[serde(default)]
    pub limits: fulfil::LimitsConfig,
}

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
    /// How serials for this product are made.
    pub serial: serial::SerialConfig,
    /// Lowest unit price accepted per currency; an order below it goes to review.
    #[serde(default)]
    pub min_price: Vec<PriceFloor>,
    /// Where the buyer downloads the product (available to reply templates as `{download_url}`).
    #[serde(default)]
    pub download_url: Option<String>,
    /// An activation link template, e.g. `myapp://register?name={licensee_url}&serial={serial_url}`.
    #[serde(default)]
    pub activation_url: Option<String>,
    /// A reply template for this product instead of `[reply.template]`.
    #[serde(default)]
    pub reply: Option<reply::ReplyTemplateConfig>,
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

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain connection upgraded with STARTTLS before authenticating (IMAP 143, SMTP 587).
    Starttls,
    /// No encryption: only to a loopback host, and only with `allow_plaintext = true`.
    Plain,
}

/// Problems with a server address and its security, shared by `[mailbox.imap]` and `[outbox.smtp]`.
pub fn validate_server(key: &str, host: &str, security: Security, allow_plaintext: bool, problems: &mut Problems) {
    if host.trim().is_empty() {
        problems.error(format!("{key}.host"), "must not be empty");
    }
    if security == Security::Plain {
        if !allow_plaintext {
            problems.error(format!("{key}.security"), "\"plain\" needs allow_plaintext = true (loopback only)");
        }
        if !is_loopback_host(host) {
            problems.error(
                format!("{key}.security"),
                format!("\"plain\" is only allowed to a loopback host, not {host:?}"),
            );
        }
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A configuration that loaded and validated, with the folder its relative paths are taken from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
    pub base_dir: PathBuf,
    /// Warnings found while loading (errors stop loading).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// A path from the config, made absolute against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    pub fn product(&self, id: &str) -> Option<&ProductConfig> {
        self.config.products.iter().find(|p| p.id == id)
    }
}

/// Finds the config file: the explicit path, else the first of [`DEFAULT_PATHS`] that exists.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()).ok_or_else(|| {
        anyhow::anyhow!("no configuration found (looked for {}); pass --config PATH", DEFAULT_PATHS.join(", "))
    })
}

/// Reads, parses and validates the file, returning every problem found.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let mut problems = Problems::new(path);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            problems.error("(file)", format!("cannot read: {err}"));
            return Err(ConfigError(problems.into_items()));
        }
    };
    let Some(config) = parse(&text, &mut problems) else {
        return Err(ConfigError(problems.into_items()));
    };
    config.validate(&mut problems);
    if problems.has_errors() {
        return Err(ConfigError(problems.into_items()));
    }
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
    Ok(Loaded { config, path: path.to_owned(), base_dir, warnings: problems.into_items() })
}

/// Parses TOML into [`Config`], reporting every unknown key and the first wrong value of each section (and of
/// each `[[product]]`) with its dotted key, so one mistake does not hide the others. `None` when anything is wrong.
pub fn parse(text: &str, problems: &mut Problems) -> Option<Config> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(err) => {
            problems.error(span_key(text, err.span()), err.message());
            return None;
        }
    };
    // Unknown keys are reported but do not stop validation; a value that does not fit its type does.
    let mut fits = true;
    for (key, value) in &table {
        fits &= check_section(key, value, problems);
    }
    if !fits {
        return None;
    }
    match Config::deserialize(toml::Value::Table(table)) {
        Ok(config) => Some(config),
        Err(err) => {
            problems.error("(file)", err.message());
            None
        }
    }
}

/// False when a value in the section does not fit its type (unknown keys are only reported).
fn check_section(key: &str, value: &toml::Value, problems: &mut Problems) -> bool {
    match key {
        "state" => check_as::<store::StateConfig>(key, value, problems),
        "templates" => check_as::<template::TemplatesConfig>(key, value, problems),
        "mailbox" => check_as::<mailbox::MailboxConfig>(key, value, problems),
        "outbox" => check_as::<reply::TransportConfig>(key, value, problems),
        "reply" => check_as::<reply::ReplyConfig>(key, value, problems),
        "trust" => check_as::<trust::TrustConfig>(key, value, problems),
        "limits" => check_as::<fulfil::LimitsConfig>(key, value, problems),
        "product" => match value.as_array() {
            Some(products) => products.iter().enumerate().fold(true, |fits, (index, product)| {
                check_as::<ProductConfig>(&format!("product[{index}]"), product, problems) && fits
            }),
            None => {
                problems.error(key, "must be a list of products, written [[product]]");
                false
            }
        },
        _ => {
            problems.error(key, "unknown key");
            true
        }
    }
}

/// Deserializes one section on its own, naming each unknown key and the first bad value by its dotted key.
fn check_as<T: serde::de::DeserializeOwned>(prefix: &str, value: &toml::Value, problems: &mut Problems) -> bool {
    let mut unknown: Vec<String> = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(dotted(&path));
    let deserializer = serde_ignored::Deserializer::new(value.clone(), &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(deserializer);
    for path in unknown {
        problems.error(join_key(prefix, &path), "unknown key");
    }
    match result {
        Ok(_) => true,
        Err(err) => {
            problems.error(join_key(prefix, &dotted_error_path(err.path())), err.inner().message());
            false
        }
    }
}

/// The dotted key a person wrote (`mailbox.imap.idel`): serde's inner steps for optional and newtype values,
/// which `serde_ignored` shows as `?`, are not keys in the file.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => join_key(&dotted(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

/// The same for `serde_path_to_error`, whose unknown steps print as `?`.
fn dotted_error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter().fold(String::new(), |key, segment| match segment {
        Segment::Seq { index } => format!("{key}[{index}]"),
        Segment::Map { key: name } | Segment::Enum { variant: name } => join_key(&key, name),
        Segment::Unknown => key,
    })
}

fn join_key(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        (_, "" | "." | "?") => prefix.to_owned(),
        ("", path) => path.to_owned(),
        (prefix, path) => format!("{prefix}.{path}"),
    }
}

fn span_key(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
            format!("line {line}")
        }
        None => "(file)".to_owned(),
    }
}

impl Config {
    /// Checks every section and cross-reference; never stops at the first problem.
    pub fn validate(&self, problems: &mut Problems) {
        self.state.validate(problems);
        self.templates.validate(problems);
        if let Some(mailbox) = &self.mailbox {
            mailbox.validate(problems);
        }
        if let Some(outbox) = &self.outbox {
            outbox.validate(problems);
        }
        self.reply.validate(problems);
        self.trust.validate(problems);
        self.limits.validate(problems);
        self.validate_products(problems);
    }

    fn validate_products(&self, problems: &mut Problems) {
        let mut seen_ids = std::collections::BTreeSet::new();
        let mut seen_skus = std::collections::BTreeMap::new();
        for (index, product) in self.products.iter().enumerate() {
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
            product.serial.validate(&format!("{key}.serial"), problems);
            if let Some(reply) = &product.reply {
                reply.validate(&format!("{key}.reply"), problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_is_reported_not_just_the_first() {
        let mut problems = Problems::new("k.toml");
        parse("colour = 1\n[state]\ndir = \"s\"\nsize = 3\n", &mut problems);
        let keys: Vec<_> = problems.items().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["colour", "state.size"]);
    }

    #[test]
    fn a_wrong_value_in_one_section_does_not_hide_mistakes_in_others() {
        let mut problems = Problems::new("k.toml");
        let text = "[mailbox.maildir]\npath = \"m\"\npoll_interval_secs = \"often\"\n\n\
                    [[product]]\nid = 7\nname = \"A\"\nserial = {}\n\n[[product]]\nid = \"b\"\n";
        assert!(parse(text, &mut problems).is_none());
        let keys: Vec<_> = problems.items().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["mailbox.maildir.poll_interval_secs", "product[0].id", "product[1]"], "{problems:?}");
    }

    #[test]
    fn an_unknown_key_in_an_optional_table_is_named_as_written() {
        let mut problems = Problems::new("k.toml");
        let text =
            "[mailbox.imap]\nhost = \"mail.example.com\"\nuser = \"u\"\npassword = { env = \"P\" }\nidel = true\n";
        parse(text, &mut problems);
        let keys: Vec<_> = problems.items().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["mailbox.imap.idel"], "{problems:?}");
    }

    #[test]
    fn syntax_error_names_its_line() {
        let mut problems = Problems::new("k.toml");
        assert!(parse("[state]\ndir = \n", &mut problems).is_none());
        assert_eq!(problems.items()[0].key, "line 2");
    }

    #[test]
    fn price_floor_parses_plain_decimals_only() {
        let floor = |amount: &str| PriceFloor { currency: "EUR".into(), amount: amount.into() }.hundredths();
        assert_eq!(floor("9.5"), Some(950));
        assert_eq!(floor("12"), Some(1200));
        assert_eq!(floor("1,50"), None);
        assert_eq!(floor("1.505"), None);
    }
}
