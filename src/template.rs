//! Provider templates (`parsers/*.toml`): recognise a provider's email, classify it, extract the order. No I/O
//! beyond reading the template files at load time.
//!
//! The templates in `parsers/` are built into the binary (build.rs lists them); `[templates] dir` adds more or
//! overrides one by id. docs/templates.md describes the file format.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::order::Order;
use crate::problems::{Problem, Problems};
use crate::trust::ProviderTrust;

mod compile;
mod extract;
pub mod golden;
mod model;
pub mod money;
mod report;

pub use compile::{REGEX_SIZE_LIMIT, Template};
pub use extract::Evidence;
pub use report::{EmailSummary, TestReport, test_message};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_templates.rs"));
}

/// `[templates]`.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplatesConfig {
    /// A folder of extra or overriding templates; relative to the config file's folder. The templates shipped
    /// in `parsers/` are built into the binary.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Messages larger than this many bytes are set aside unread.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self { dir: None, max_message_bytes: default_max_message_bytes() }
    }
}

fn default_max_message_bytes() -> u64 {
    5 * 1024 * 1024
}

impl TemplatesConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.max_message_bytes < 1024 {
            problems.error("templates.max_message_bytes", "must be at least 1024");
        }
    }
}

/// What a message is, according to the templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// An order (sale, refund, chargeback or cancellation) to act on.
    Order { template: String, order: Order },
    /// Mail from a provider that is not an order: payouts, newsletters, receipts, shipping notices.
    NotAnOrder { template: String, reason: String },
    /// No template claims the message; why the closest ones did not.
    Unrecognised { near_misses: Vec<String> },
    /// A template claims the message but cannot extract it: the provider probably changed its layout.
    Broken { template: String, problems: Vec<String> },
}

/// Every loaded template, in id order.
#[derive(Debug, Clone)]
pub struct Templates {
    templates: Vec<Template>,
    max_message_bytes: u64,
}

impl Templates {
    /// The built-in templates plus those in `config.dir` (relative to `base_dir`), which override built-in ones
    /// with the same id. Returns every problem of every template, with its file and key.
    pub fn load(config: &TemplatesConfig, base_dir: &Path) -> Result<Templates, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut loaded = BTreeMap::new();
        for (name, text) in builtin::BUILTIN {
            add(&mut loaded, compile::compile(&Path::new("parsers").join(name), text), &mut problems, false);
        }
        if let Some(dir) = &config.dir {
            for (file, text) in read_dir(&base_dir.join(dir), &mut problems) {
                add(&mut loaded, compile::compile(&file, &text), &mut problems, true);
            }
        }
        if problems.iter().any(|p| p.severity == crate::problems::Severity::Error) {
            return Err(problems);
        }
        let templates = loaded.into_values().map(|(template, _)| template).collect();
        Ok(Templates { templates, max_message_bytes: config.max_message_bytes })
    }

    /// Only the templates built into the binary.
    pub fn builtin() -> Result<Templates, Vec<Problem>> {
        Self::load(&TemplatesConfig::default(), Path::new("."))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// The size limit [`crate::email::parse`] is given.
    pub fn max_message_bytes(&self) -> u64 {
        self.max_message_bytes
    }

    /// Who may send a provider's mail, from its template's `[trust]` and `[match]` tables.
    pub fn provider_trust(&self, provider: &str) -> Option<ProviderTrust> {
        let t = self.get(provider)?;
        Some(ProviderTrust { provider: t.id.clone(), dkim_domains: t.dkim_domains.clone(), senders: t.senders.clone() })
    }

    /// What the message is. The first template (in id order) whose senders, body markers and a rule match
    /// decides.
    pub fn classify(&self, email: &Email) -> Outcome {
        self.classify_with_evidence(email, None).0
    }

    /// [`Templates::classify`], limited to one template when `only` is given, with what each field extracted.
    pub fn classify_with_evidence(&self, email: &Email, only: Option<&str>) -> (Outcome, Vec<Evidence>) {
        let mut near_misses = Vec::new();
        let mut evidence = Vec::new();
        if let Some(only) = only.filter(|id| self.get(id).is_none()) {
            near_misses.push(format!("{only}: no template has this id"));
        }
        for t in self.templates.iter().filter(|t| only.is_none_or(|id| id == t.id)) {
            let rule = t.rules.iter().find(|rule| rule_matches(rule, email));
            if let Err(why) = recognises(t, email) {
                if only.is_some() || rule.is_some() {
                    near_misses.push(format!("{}: {why}", t.id));
                }
                continue;
            }
            let Some(rule) = rule else {
                near_misses
                    .push(format!("{}: sender matches but no [[rule]] matches subject {:?}", t.id, email.subject));
                continue;
            };
            let template = t.id.clone();
            let outcome = match &rule.kind {
                compile::RuleKind::NotOrder(reason) => Outcome::NotAnOrder { template, reason: reason.clone() },
                compile::RuleKind::Order(_) => match extract::order(t, rule, email, &mut evidence) {
                    Ok(order) => Outcome::Order { template, order },
                    Err(problems) => Outcome::Broken { template, problems },
                },
            };
            return (outcome, evidence);
        }
        (Outcome::Unrecognised { near_misses }, evidence)
    }
}

/// Keeps the first template of each id, except that one from `config.dir` replaces a built-in one.
fn add(
    loaded: &mut BTreeMap<String, (Template, bool)>,
    compiled: Result<Template, Vec<Problem>>,
    problems: &mut Vec<Problem>,
    from_dir: bool,
) {
    let template = match compiled {
        Ok(template) => template,
        Err(found) => return problems.extend(found),
    };
    match loaded.get(&template.id) {
        Some((existing, existing_from_dir)) if *existing_from_dir || !from_dir => {
            let mut p = Problems::new(&template.file);
            p.error("id", format!("{:?} is already used by {}", template.id, existing.file.display()));
            problems.extend(p.into_items());
        }
        Some((existing, _)) => {
            tracing::info!(provider = %template.id, file = %template.file.display(), replaces = %existing.file.display(), "Template overrides the built-in one.");
            loaded.insert(template.id.clone(), (template, from_dir));
        }
        None => {
            loaded.insert(template.id.clone(), (template, from_dir));
        }
    }
}

/// The `*.toml` files of a folder, sorted by name.
fn read_dir(dir: &Path, problems: &mut Vec<Problem>) -> Vec<(PathBuf, String)> {
    let mut p = Problems::new(dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect(),
        Err(err) => {
            p.error("templates.dir", format!("cannot read the folder: {err}"));
            problems.extend(p.into_items());
            return Vec::new();
        }
    };
    files.sort();
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file, text)),
            Err(err) => {
                let mut p = Problems::new(&file);
                p.error("(file)", format!("cannot read: {err}"));
                problems.extend(p.into_items());
            }
        }
    }
    texts
}

/// The template's senders and body markers accept the message, or why not.
fn recognises(t: &Template, email: &Email) -> Result<(), String> {
    let Some(from) = &email.from else {
        return Err("the message has no From address".to_owned());
    };
    let address = from.address.to_lowercase();
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    let sender_ok = t.senders.iter().any(|s| match s.strip_prefix('@') {
        Some(wanted) => domain == wanted || domain.ends_with(&format!(".{wanted}")),
        None => *s == address,
    });
    if !sender_ok {
        return Err(format!("sender {address} is not one of {}", t.senders.join(", ")));
    }
    if !t.body_markers.is_empty() && !t.body_markers.iter().any(|m| m.is_match(&email.text)) {
        return Err("sender matches but none of the [match] body markers is in the text".to_owned());
    }
    Ok(())
}

fn rule_matches(rule: &compile::Rule, email: &Email) -> bool {
    rule.subject.as_ref().is_none_or(|p| p.is_match(&email.subject))
        && rule.body.as_ref().is_none_or(|p| p.is_match(&email.text))
}

#[cfg(test)]
mod tests;
