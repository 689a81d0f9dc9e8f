//! `keypost.toml`: the serde model and its validation. No I/O beyond reading the one file.
//!
//! Each section's struct lives in the module that uses it (`serial::SerialConfig`, `mailbox::MailboxConfig`, ...)
//! and has a `validate(&self, &mut Problems)`; this module composes them. Loading never stops at the first
//! problem: unknown keys (found with `serde_ignored`, so all of them are reported, not just the first as
//! `deny_unknown_fields` would) and every validation problem are collected and returned together.
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::problems::{ConfigError, Problem, Problems, Severity};
use crate::product::{self, ProductConfig};
use crate::{digest, fulfil, mailbox, reply, selfservice, store, template, trust};

/// Where the config file is looked for when `--config` is not given, in order.
pub const DEFAULT_PATHS: [&str; 2] = ["keypost.toml", "/etc/keypost/keypost.toml"];

/// The whole `keypost.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Where keypost keeps its state (one redb database file, `keypost.redb`).
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
    /// The periodic summary mail to the vendor; off unless the section is present.
    #[serde(default)]
    pub digest: Option<digest::DigestConfig>,
    /// Buyers' lost-license requests answered from the state (on by default).
    #[serde(default)]
    pub self_service: selfservice::SelfServiceConfig,
    /// When keypost alerts about orders it may have missed.
    #[serde(default)]
    pub watch: crate::watch::WatchConfig,
    /// The Prometheus endpoint (off by default).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
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
        "digest" => check_as::<digest::DigestConfig>(key, value, problems),
        "self_service" => check_as::<selfservice::SelfServiceConfig>(key, value, problems),
        "metrics" => check_as::<crate::metrics::MetricsConfig>(key, value, problems),
        "watch" => check_as::<crate::watch::WatchConfig>(key, value, problems),
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
            problems.error(key, crate::keys::unknown_key_message::<Config>(&[crate::keys::Step::Key(key.to_owned())]));
            true
        }
    }
}

/// Deserializes one section on its own, naming each unknown key and the first bad value by its dotted key.
fn check_as<T: serde::de::DeserializeOwned>(prefix: &str, value: &toml::Value, problems: &mut Problems) -> bool {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(crate::keys::steps(&path));
    let deserializer = serde_ignored::Deserializer::new(value.clone(), &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(deserializer);
    for steps in unknown {
        problems.error(join_key(prefix, &crate::keys::dotted(&steps)), crate::keys::unknown_key_message::<T>(&steps));
    }
    match result {
        Ok(_) => true,
        Err(err) => {
            problems.error(join_key(prefix, &dotted_error_path(err.path())), err.inner().message());
            false
        }
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
        self.trust.validate_recipients(self.mailbox.is_some(), problems);
        self.limits.validate(problems);
        if let Some(digest) = &self.digest {
            digest.validate(problems);
        }
        self.self_service.validate(problems);
        self.metrics.validate(problems);
        self.watch.validate(problems);
        product::validate_all(&self.products, problems);
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
    fn an_unknown_key_suggests_the_closest_known_key_in_its_table() {
        let mut problems = Problems::new("k.toml");
        let text = "stat = 1\n[mailbox.imap]\nhost = \"h\"\nuser = \"u\"\npassword = { env = \"P\" }\nidel = true\n\n\
                    [[product]]\nid = \"a\"\nname = \"A\"\nskus = [\"A\"]\nserial = { scheme = \"block\", produkt_code = 1 }\n";
        parse(text, &mut problems);
        let found: Vec<_> = problems.items().iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        for expected in [
            "stat: unknown key; did you mean `state`?",
            "mailbox.imap.idel: unknown key; did you mean `idle`?",
            "product[0].serial.produkt_code: unknown key; did you mean `product_code`?",
        ] {
            assert!(found.iter().any(|f| f == expected), "{expected:?} not in {found:?}");
        }
        assert!(found.iter().all(|f| !f.contains('?') || f.ends_with("`?")), "no `?` segment in a key: {found:?}");
        assert_eq!(found.iter().filter(|f| f.contains("unknown key")).count(), 3, "{problems:?}");
    }

    #[test]
    fn syntax_error_names_its_line() {
        let mut problems = Problems::new("k.toml");
        assert!(parse("[state]\ndir = \n", &mut problems).is_none());
        assert_eq!(problems.items()[0].key, "line 2");
    }
}
