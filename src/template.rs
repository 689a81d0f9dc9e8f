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
pub mod date;
mod extract;
pub mod golden;
mod model;
pub mod money;
pub mod orderlike;
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
    /// Ids of templates (built-in or from `dir`) not to load, e.g. `["paypal"]` when a shop platform's
    /// notification already announces each PayPal sale.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Mail from a sender no template knows that still looks like an order notification (a sale subject or an
    /// order id, with an amount): `"set-aside"` (default) escalates it to the vendor, `"ignore"` files it with
    /// the other unknown mail (counted).
    #[serde(default)]
    pub unknown_order_like: UnknownOrderLike,
}

/// `[templates] unknown_order_like`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownOrderLike {
    #[default]
    SetAside,
    Ignore,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_message_bytes: default_max_message_bytes(),
            disable: Vec::new(),
            unknown_order_like: UnknownOrderLike::default(),
        }
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
    /// Mail from a provider that a `not_order` rule says is not an order: payouts, newsletters, receipts.
    NotAnOrder { template: String, reason: String },
    /// Mail from a known provider (its sender, or the domain that signed it, belongs to a template) that no rule
    /// classifies: set aside with an alert, never ignored, since it may be a sale in a layout not yet known.
    Unclassified {
        /// The first template whose provider sent it.
        template: String,
        /// That provider's name, e.g. `PayPal`.
        provider: String,
        /// The closest template and the rule that failed.
        closest: String,
        near_misses: Vec<String>,
    },
    /// No template's provider sent it: ignored (and counted), unless it looks like an order notification.
    Unrecognised {
        /// The closest template and what failed, when any rule of any template comes close.
        #[serde(skip_serializing_if = "Option::is_none")]
        closest: Option<String>,
        near_misses: Vec<String>,
        /// Why it still looks like an order notification ([`orderlike::signs`]): the daemon sets it aside.
        #[serde(skip_serializing_if = "Option::is_none")]
        order_like: Option<String>,
    },
    /// A template claims the message but cannot extract it: the provider probably changed its layout.
    Broken { template: String, problems: Vec<String> },
}

/// Every loaded template, in the order they are tried: higher `priority` first, then the vendor's own
/// (from `[templates] dir`) before built-in ones, then by id.
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
        let mut templates: Vec<Template> = loaded
            .into_values()
            .filter(|(template, _)| !config.disable.contains(&template.id))
            .map(|(mut template, from_dir)| {
                template.vendor = from_dir;
                template
            })
            .collect();
        templates.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        Ok(Templates { templates, max_message_bytes: config.max_message_bytes })
    }

    /// Only the templates built into the binary.
    pub fn builtin() -> Result<Templates, Vec<Problem>> {
        Self::load(&TemplatesConfig::default(), Path::new("."))
    }

    /// In the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// Vendor templates that can never win: a template tried before one of them takes all of its senders' mail
    /// with a rule that matches any message. (`template check` also warns when a template's fixtures are taken
    /// by another one.)
    pub fn shadowing_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (position, v) in self.templates.iter().enumerate().filter(|(_, t)| t.vendor) {
            for earlier in self.templates.iter().take(position) {
                let covers = v.senders.iter().all(|s| earlier.senders.iter().any(|e| sender_covers(e, s)));
                let catch_all = earlier.body_markers.is_empty() && earlier.rules.iter().any(matches_anything);
                if covers && catch_all {
                    warnings.push(format!(
                        "{}: template {:?} can never win: {:?} ({}) is tried first, takes mail from all of its \
                         senders and has a rule that matches any message; give {:?} a higher priority",
                        v.file.display(),
                        v.id,
                        earlier.id,
                        earlier.file.display(),
                        v.id
                    ));
                }
            }
        }
        warnings
    }

    /// Pairs of enabled templates that both announce one sale: a shop platform and a processor it can be paid
    /// through (its `paid_through`). Both would be answered, so one purchase would get two serials, unless both
    /// read the payment's id (`fields.payment_id`, for the same processor): then the second notice is linked to
    /// the first and not answered again.
    pub fn double_notice_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for shop in &self.templates {
            for processor in shop.paid_through.iter().filter_map(|id| self.get(id)) {
                let linked = shop.payment_id.is_some()
                    && processor.payment_id.is_some()
                    && shop.payment_processor == processor.payment_processor;
                if linked {
                    continue;
                }
                warnings.push(format!(
                    "{}: templates {:?} and {:?} are both enabled, and {} can take {}'s payments, but the two \
                     cannot be linked (one reads no payment id): each such sale arrives twice (two serials for \
                     one purchase); keep {:?} (it names the product) and add \
                     {:?} to `disable` in [templates] of the config, or remove {:?} from `paid_through` if \
                     {} never pays through {}",
                    shop.file.display(),
                    shop.id,
                    processor.id,
                    processor.name,
                    shop.name,
                    shop.id,
                    processor.id,
                    processor.id,
                    shop.name,
                    processor.name
                ));
            }
        }
        warnings
    }

    /// Your own templates whose sender is WordPress's default address (`wordpress@` your domain): contact forms
    /// and other plugins send from it too, with a subject and text a visitor writes, signed by your domain like
    /// the shop's own mail, so such a message could be written to read as an order.
    pub fn shared_sender_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for t in self.templates.iter().filter(|t| t.vendor) {
            for sender in t.senders.iter().filter(|s| s.trim().to_ascii_lowercase().starts_with("wordpress@")) {
                warnings.push(format!(
                    "{}: template {:?} reads mail from {sender:?}, WordPress's default address, which contact forms \
                     and other plugins send from too, with a subject and text a visitor writes (signed by your \
                     domain like the shop's own mail): give {}'s notifications an address of its own that nothing \
                     else on the site sends from, and list that one",
                    t.file.display(),
                    t.id,
                    t.name
                ));
            }
        }
        warnings
    }

    /// The size limit [`crate::email::parse`] is given.
    pub fn max_message_bytes(&self) -> u64 {
        self.max_message_bytes
    }

    /// Who may send a provider's mail, from its template's `[trust]` and `[match]` tables.
    pub fn provider_trust(&self, provider: &str) -> Option<ProviderTrust> {
        let t = self.get(provider)?;
        Some(ProviderTrust {
            provider: t.id.clone(),
            dkim_domains: t.dkim_domains.clone(),
            senders: t.senders.clone(),
            read_headers: t.read_headers(),
        })
    }

    /// What the message is. Templates are tried in their order ([`Templates::iter`]); the first whose sender,
    /// body markers and a rule match decides.
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
        let candidates: Vec<&Template> = self.templates.iter().filter(|t| only.is_none_or(|id| id == t.id)).collect();
        let mut provider: Option<&Template> = None;
        for t in &candidates {
            let rule = t.rules.iter().find(|rule| rule_matches(rule, email));
            let sender = sends_for(t, email);
            if sender != Sender::No {
                provider = provider.or(Some(t));
            }
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
        let outcome = match provider {
            Some(t) => {
                let of_provider: Vec<&Template> =
                    candidates.iter().copied().filter(|c| sends_for(c, email) != Sender::No).collect();
                let closest = closest(&of_provider, email).unwrap_or_else(|| t.id.clone());
                Outcome::Unclassified { template: t.id.clone(), provider: t.name.clone(), closest, near_misses }
            }
            None => Outcome::Unrecognised {
                closest: closest(&candidates, email),
                near_misses,
                order_like: orderlike::signs(email),
            },
        };
        (outcome, evidence)
    }
}

/// How a message's origin relates to a template's provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// Its From is one of the template's senders.
    Listed,
    /// A DKIM-Signature names one of the template's domains (not verified here: enough to escalate the
    /// message, never to fulfil it).
    Signed,
    No,
}

fn sends_for(t: &Template, email: &Email) -> Sender {
    if email.from.as_ref().is_some_and(|from| sender_listed(t, &from.address)) {
        return Sender::Listed;
    }
    let signed = email.signing_domains.iter().any(|d| {
        let d = d.to_ascii_lowercase();
        t.dkim_domains.iter().any(|wanted| d == *wanted || d.ends_with(&format!(".{wanted}")))
    });
    if signed { Sender::Signed } else { Sender::No }
}

fn sender_listed(t: &Template, address: &str) -> bool {
    let address = address.to_lowercase();
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    t.senders.iter().any(|s| match s.strip_prefix('@') {
        Some(wanted) => domain == wanted || domain.ends_with(&format!(".{wanted}")),
        None => *s == address,
    })
}

/// The template (of `among`) and rule that came closest to classifying the message, and what failed: the
/// sender counts most, then how many of a rule's patterns match. None when nothing comes close at all.
fn closest(among: &[&Template], email: &Email) -> Option<String> {
    let mut best: Option<(u32, String)> = None;
    for t in among {
        let sender = sends_for(t, email);
        let mut score = match sender {
            Sender::Listed => 8,
            Sender::Signed => 6,
            Sender::No => 0,
        };
        let markers_ok = t.body_markers.is_empty() || t.body_markers.iter().any(|m| m.is_match(&email.text));
        score += u32::from(markers_ok);
        let (rule_score, rule_note) = t
            .rules
            .iter()
            .map(|rule| rule_closeness(rule, email))
            .enumerate()
            .max_by_key(|(i, (score, _))| (*score, usize::MAX - i))
            .map(|(_, found)| found)
            .unwrap_or((0, "no rules".to_owned()));
        score += rule_score;
        if score == 0 || best.as_ref().is_some_and(|(b, _)| *b >= score) {
            continue;
        }
        let mut why = Vec::new();
        if sender == Sender::No {
            let from = email.from.as_ref().map_or("(none)", |a| a.address.as_str());
            why.push(format!("sender {from} is not one of {}", t.senders.join(", ")));
        }
        if !markers_ok {
            why.push("none of the [match] body markers is in the text".to_owned());
        }
        why.push(rule_note);
        best = Some((score, format!("{}: {}", t.id, why.join("; "))));
    }
    best.map(|(_, note)| note)
}

/// How many of a rule's patterns match (times two, so a rule matching in part beats no markers), and a note
/// naming the rule and the pattern that failed.
fn rule_closeness(rule: &compile::Rule, email: &Email) -> (u32, String) {
    let kind = match &rule.kind {
        compile::RuleKind::Order(kind) => kind.as_str().to_owned(),
        compile::RuleKind::NotOrder(_) => "not_order".to_owned(),
    };
    let name = format!("rule[{}] ({kind})", rule.index);
    let mut score = 0;
    let mut failed = Vec::new();
    if let Some(p) = &rule.subject {
        if p.is_match(&email.subject) {
            score += 2;
        } else {
            failed.push(format!("subject {:?} does not match '{}'", email.subject, p.as_str()));
        }
    }
    if let Some(p) = &rule.body {
        if p.is_match(&email.text) {
            score += 2;
        } else {
            failed.push(format!("the text does not match '{}'", p.as_str()));
        }
    }
    let note = match failed.is_empty() {
        true => format!("{name} matches"),
        false => format!("{name}: {}", failed.join(", ")),
    };
    (score, note)
}

/// The order templates are tried in: higher priority, then the vendor's own, then by id.
fn order_key(t: &Template) -> (std::cmp::Reverse<i32>, bool, &str) {
    (std::cmp::Reverse(t.priority), !t.vendor, t.id.as_str())
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
    if !sender_listed(t, &from.address) {
        return Err(format!("sender {} is not one of {}", from.address.to_lowercase(), t.senders.join(", ")));
    }
    if !t.body_markers.is_empty() && !t.body_markers.iter().any(|m| m.is_match(&email.text)) {
        return Err("sender matches but none of the [match] body markers is in the text".to_owned());
    }
    Ok(())
}

/// Every address `covered` may be is also one `by` accepts.
fn sender_covers(by: &str, covered: &str) -> bool {
    let domain_of = |s: &str| s.rsplit_once('@').map_or(String::new(), |(_, d)| d.to_owned());
    match by.strip_prefix('@') {
        Some(wanted) => {
            let domain = domain_of(covered);
            domain == wanted || domain.ends_with(&format!(".{wanted}"))
        }
        None => by == covered,
    }
}

/// A rule whose patterns match any subject and text (probed with a few unlike strings).
fn matches_anything(rule: &compile::Rule) -> bool {
    let probes = ["", "zq", "Order 1\nTotal: 5"];
    let any = |p: &Option<compile::Pattern>| p.as_ref().is_none_or(|p| probes.iter().all(|probe| p.is_match(probe)));
    any(&rule.subject) && any(&rule.body)
}

fn rule_matches(rule: &compile::Rule, email: &Email) -> bool {
    rule.subject.as_ref().is_none_or(|p| p.is_match(&email.subject))
        && rule.body.as_ref().is_none_or(|p| p.is_match(&email.text))
}

#[cfg(test)]
mod tests;
