//! One template file -> a compiled [`Template`], or every problem in it with its key. No I/O.
use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use regex::{Regex, RegexBuilder};

use super::model::{FieldSpec, ItemsSpec, Patterns, RuleSpec, SectionSpec, TemplateFile};
use crate::order::OrderKind;
use crate::problems::{Problem, Problems};

/// A compiled regex may use at most this much memory, so a template cannot exhaust the daemon's.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Patterns longer than this are refused outright.
pub const MAX_PATTERN_CHARS: usize = 4000;

/// A pattern checked when its template is loaded and compiled again when first used. A daemon reads mail of
/// a few providers, and the compiled automata of every built-in template together are some 14 MiB
/// (docs/benchmarks.md); those of templates that never see a message are never kept. Clones share the one
/// compiled regex, so its search caches are shared too.
#[derive(Clone)]
pub struct Pattern {
    source: Arc<str>,
    /// Its named groups, kept from the check so that loading does not compile it again.
    groups: Arc<[Box<str>]>,
    compiled: Arc<OnceLock<Regex>>,
}

impl Pattern {
    /// The pattern, or why it cannot be compiled; the regex built to check it is dropped.
    fn checked(source: &str) -> Result<Self, regex::Error> {
        let groups = build(source)?.capture_names().flatten().map(Box::from).collect();
        Ok(Self { source: source.into(), groups, compiled: Arc::default() })
    }

    /// Whether it has a group of this name (without compiling it).
    fn has_group(&self, name: &str) -> bool {
        self.groups.iter().any(|group| &**group == name)
    }
}

impl Deref for Pattern {
    type Target = Regex;

    fn deref(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            build(&self.source).unwrap_or_else(|err| unreachable!("compiled when its template was loaded: {err}"))
        })
    }
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_SIZE_LIMIT).nest_limit(64).build()
}

/// What a rule turns a message into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    Order(OrderKind),
    NotOrder(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// Its position in the file, for reports (`rule[2]`).
    pub index: usize,
    pub subject: Option<Pattern>,
    pub body: Option<Pattern>,
    pub kind: RuleKind,
    /// Replaces the template's order id for messages this rule matches (`None`: the template's). Built once
    /// here, not per message: a cloned `Regex` starts with an empty cache and rebuilds its DFA on every search.
    pub order_id: Option<Field>,
    /// The fields this layout must have, replacing the fields' own `required` (`items` for the items).
    pub require: Option<Vec<String>>,
    /// The sections this layout has (`None`: all of them).
    pub sections: Option<Vec<String>>,
}

impl Rule {
    /// Whether a place is read for messages this rule matches: not when it is limited to a section the rule's
    /// layout does not have.
    pub fn reads(&self, place: &Place) -> bool {
        match (&self.sections, &place.section) {
            (Some(listed), Some(section)) => listed.contains(section),
            _ => true,
        }
    }
}

/// Where a field is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Body,
    Subject,
    /// The link targets (`href`s) of the message, one per line.
    Links,
    /// Every value of this header (name compared case-insensitively), one per line.
    Header(String),
    /// The order id as read (`payment_id` only: a provider whose order id is the payment's id).
    OrderId,
}

/// A clean-up applied to an extracted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clean {
    Trim,
    CollapseSpaces,
    HtmlEntities,
}

/// One place a field may be found: alternative patterns over one source, optionally one section of it.
#[derive(Debug, Clone)]
pub struct Place {
    pub patterns: Vec<Pattern>,
    pub source: Source,
    pub section: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// Every match in every place is a candidate; two different values make the reading broken.
    pub places: Vec<Place>,
    pub required: bool,
    pub clean: Vec<Clean>,
}

#[derive(Debug, Clone)]
pub struct Items {
    /// Every match in every place is an item (overlapping matches in one place count once).
    pub places: Vec<Place>,
    /// The quantity of a single item, read from the body (its first place's section); built once, like a rule's
    /// order id.
    pub quantity: Option<Field>,
    pub required: bool,
    /// Every item must have a price or amount above zero.
    pub priced: bool,
    /// At most one item: the layout prints one.
    pub single: bool,
    /// Lines printed once per item: each found in the whole body as often as items are read.
    pub once_per_item: Vec<Pattern>,
    /// An amount as the layout prints it: in a sale, each one in the items' body sections must have been read.
    pub every_amount: Option<Pattern>,
    /// The provider's rows whose amounts are not in the sum: read for `every_amount`, nothing else.
    pub not_summed: Vec<Pattern>,
    pub clean: Vec<Clean>,
}

/// The text after `start` (which must match exactly once) up to the next `end`.
#[derive(Debug, Clone)]
pub struct Section {
    pub start: Pattern,
    pub end: Option<Pattern>,
    pub after_items: bool,
}

/// An amount that, with the items, makes up the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    Tax,
    Shipping,
    Fee,
    Discount,
}

impl Adjustment {
    pub const ALL: [Adjustment; 4] = [Adjustment::Tax, Adjustment::Shipping, Adjustment::Fee, Adjustment::Discount];

    pub fn name(self) -> &'static str {
        match self {
            Adjustment::Tax => "tax",
            Adjustment::Shipping => "shipping",
            Adjustment::Fee => "fee",
            Adjustment::Discount => "discount",
        }
    }
}

/// The names a rule's `require` may list.
pub const FIELD_NAMES: &[&str] = &[
    "order_id",
    "licensee",
    "buyer_name",
    "buyer_email",
    "total",
    "tax",
    "shipping",
    "fee",
    "discount",
    "sequence",
    "items",
    "subscription",
    "period_end",
    "payment_id",
];

/// A template ready to match messages.
#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The file it came from (`parsers/x.toml` for built-in ones).
    pub file: std::path::PathBuf,
    /// Higher is tried first.
    pub priority: i32,
    /// From the vendor's `[templates] dir` rather than built in; tried before built-in ones of equal priority.
    pub vendor: bool,
    pub dkim_domains: Vec<String>,
    /// Ids of processor templates that mail their own notice of this provider's sales.
    pub paid_through: Vec<String>,
    /// Lower-cased addresses and `@domain`s.
    pub senders: Vec<String>,
    pub body_markers: Vec<Pattern>,
    pub rules: Vec<Rule>,
    pub test_subject: Option<Pattern>,
    pub test_body: Option<Pattern>,
    pub dollar_currency: String,
    pub sections: BTreeMap<String, Section>,
    pub order_id: Option<Field>,
    pub licensee: Option<Field>,
    pub buyer_name: Option<Field>,
    pub buyer_email: Option<Field>,
    pub total: Option<Field>,
    pub adjustments: Vec<(Adjustment, Field)>,
    pub items: Option<Items>,
    pub subscription: Option<Field>,
    pub period_end: Option<Field>,
    pub payment_id: Option<Field>,
    /// `fields.sequence`, and whether it counts per product (`sequence_per = "product"`).
    pub sequence: Option<Field>,
    pub sequence_per_product: bool,
    /// Whose payment ids `payment_id` reads: the one processor of `paid_through`, else the template itself. The
    /// order's payment id is `processor:value`.
    pub payment_processor: String,
}

impl Template {
    /// The headers some field or rule reads (`header:NAME`), lower case, each once: the trust check requires
    /// them to be signed.
    pub fn read_headers(&self) -> Vec<String> {
        let fields = [&self.order_id, &self.licensee, &self.buyer_name, &self.buyer_email, &self.total]
            .into_iter()
            .chain([&self.subscription, &self.period_end, &self.payment_id, &self.sequence])
            .flatten()
            .chain(self.adjustments.iter().map(|(_, field)| field))
            .chain(self.rules.iter().filter_map(|rule| rule.order_id.as_ref()));
        let places = fields.flat_map(|field| &field.places).chain(self.items.iter().flat_map(|items| &items.places));
        let mut names: Vec<String> = places
            .map(|place| &place.source)
            .filter_map(|source| match source {
                Source::Header(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Parses and compiles one template's text; `file` names it in problems and gives the default id.
pub fn compile(file: &Path, text: &str) -> Result<Template, Vec<Problem>> {
    let mut problems = Problems::new(file);
    let spec = parse_toml(text, &mut problems).ok_or_else(|| problems_of(&mut problems))?;
    let default_id = file.file_stem().and_then(|s| s.to_str()).unwrap_or("template").to_owned();
    let id = spec.id.clone().unwrap_or(default_id);
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        problems.error("id", format!("{id:?} must be lower-case letters, digits, '-' or '_'"));
    }
    let mut c = Compiler { problems: &mut problems, sections: spec.sections.keys().cloned().collect() };
    let f = &spec.fields;
    let adjustments = [(Adjustment::Tax, &f.tax), (Adjustment::Shipping, &f.shipping)]
        .into_iter()
        .chain([(Adjustment::Fee, &f.fee), (Adjustment::Discount, &f.discount)])
        .filter_map(|(kind, spec)| Some((kind, c.field(kind.name(), spec.as_ref(), &["value"])?)))
        .collect();
    let mut template = Template {
        id: id.clone(),
        name: spec.name.clone(),
        description: spec.description.clone(),
        file: file.to_owned(),
        priority: spec.priority,
        vendor: false,
        dkim_domains: c.domains(&spec.trust.dkim_domains),
        paid_through: spec.paid_through.clone(),
        senders: c.senders(&spec.recognise.senders),
        body_markers: c.patterns("match.body", &spec.recognise.body),
        rules: c.rules(&spec.rules),
        test_subject: spec.test.as_ref().and_then(|t| c.optional("test.subject", t.subject.as_deref())),
        test_body: spec.test.as_ref().and_then(|t| c.optional("test.body", t.body.as_deref())),
        dollar_currency: c.currency(spec.default_currency.as_deref()),
        sections: c.sections(&spec.sections),
        order_id: c.field("order_id", f.order_id.as_ref(), &["value"]),
        licensee: c.field("licensee", f.licensee.as_ref(), &["value"]),
        buyer_name: c.field("buyer_name", f.buyer_name.as_ref(), &["value"]),
        buyer_email: c.field("buyer_email", f.buyer_email.as_ref(), &["value"]),
        total: c.field("total", f.total.as_ref(), &["value"]),
        adjustments,
        items: spec.items.as_ref().and_then(|items| c.items(items)),
        subscription: c.field("subscription", f.subscription.as_ref(), &["value"]),
        period_end: c.field("period_end", f.period_end.as_ref(), &["value"]),
        payment_id: c.field("payment_id", f.payment_id.as_ref(), &["value"]),
        sequence: c.field("sequence", f.sequence.as_ref(), &["value"]),
        sequence_per_product: spec.sequence_per.as_deref() == Some("product"),
        payment_processor: match spec.paid_through.as_slice() {
            [one] => one.clone(),
            _ => id.clone(),
        },
    };
    if let Some(per) = spec.sequence_per.as_deref().filter(|per| !["provider", "product"].contains(per)) {
        problems.error("sequence_per", format!("{per:?} is neither \"provider\" nor \"product\""));
    }
    if template.payment_id.is_some() && template.paid_through.len() > 1 {
        problems.error(
            "fields.payment_id",
            "cannot tell whose payment id it is: `paid_through` names more than one processor",
        );
    }
    // A rule's own order id patterns are cleaned as the template's order id is.
    let id_clean = template.order_id.as_ref().map_or_else(default_clean, |field| field.clean.clone());
    for field in template.rules.iter_mut().filter_map(|rule| rule.order_id.as_mut()) {
        field.clean.clone_from(&id_clean);
    }
    let order_rules_without_id =
        template.rules.iter().any(|r| matches!(r.kind, RuleKind::Order(_)) && r.order_id.is_none());
    if template.order_id.is_none() && order_rules_without_id {
        problems.error("fields.order_id", "is needed: every order has an id");
    }
    if problems.has_errors() { Err(problems.into_items()) } else { Ok(template) }
}

fn problems_of(problems: &mut Problems) -> Vec<Problem> {
    std::mem::replace(problems, Problems::new("")).into_items()
}

/// Parses the TOML, reporting every unknown key (not just the first) and a syntax error with its line.
fn parse_toml(text: &str, problems: &mut Problems) -> Option<TemplateFile> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(toml::Deserializer::new(text), |path| {
        unknown.push(crate::keys::steps(&path));
    });
    for steps in unknown {
        let message = crate::keys::unknown_key_message::<TemplateFile>(&steps);
        problems.error(crate::keys::dotted(&steps), message);
    }
    match result {
        Ok(spec) => Some(spec),
        Err(err) => {
            let line = err.span().and_then(|s| text.get(..s.start)).map(|before| before.matches('\n').count() + 1);
            problems.error(line.map_or("(file)".to_owned(), |l| format!("line {l}")), err.message());
            None
        }
    }
}

/// `["html_entities", "collapse_spaces", "trim"]`.
pub fn default_clean() -> Vec<Clean> {
    vec![Clean::HtmlEntities, Clean::CollapseSpaces, Clean::Trim]
}

struct Compiler<'a> {
    problems: &'a mut Problems,
    /// The names of the template's sections, for checking references.
    sections: Vec<String>,
}

impl Compiler<'_> {
    fn regex(&mut self, key: &str, pattern: &str) -> Option<Pattern> {
        if pattern.chars().count() > MAX_PATTERN_CHARS {
            self.problems.error(key, format!("pattern is longer than {MAX_PATTERN_CHARS} characters"));
            return None;
        }
        Pattern::checked(pattern).map_err(|err| self.problems.error(key, format!("invalid regex: {err}"))).ok()
    }

    fn optional(&mut self, key: &str, pattern: Option<&str>) -> Option<Pattern> {
        pattern.and_then(|p| self.regex(key, p))
    }

    fn patterns(&mut self, key: &str, patterns: &[String]) -> Vec<Pattern> {
        patterns.iter().enumerate().filter_map(|(i, p)| self.regex(&format!("{key}[{i}]"), p)).collect()
    }

    /// One pattern (`key`) or a list (`key[i]`), each with every group in `groups`.
    fn alternatives(&mut self, key: &str, patterns: &Patterns, groups: &[&str]) -> Vec<Pattern> {
        let compiled: Vec<(String, Pattern)> = match patterns {
            Patterns::One(one) => self.regex(key, one).map(|r| (key.to_owned(), r)).into_iter().collect(),
            Patterns::Many(many) => {
                if many.is_empty() {
                    self.problems.error(key, "must list at least one pattern");
                }
                many.iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let k = format!("{key}[{i}]");
                        self.regex(&k, p).map(|r| (k, r))
                    })
                    .collect()
            }
        };
        for (k, regex) in &compiled {
            for group in groups {
                if !regex.has_group(group) {
                    self.problems.error(k, format!("needs a named group (?P<{group}>...)"));
                }
            }
        }
        compiled.into_iter().map(|(_, r)| r).collect()
    }

    fn domains(&mut self, domains: &[String]) -> Vec<String> {
        for (i, domain) in domains.iter().enumerate() {
            if !domain.contains('.') || domain.contains(['@', ' ']) {
                self.problems.error(format!("trust.dkim_domains[{i}]"), format!("{domain:?} is not a domain"));
            }
        }
        domains.iter().map(|d| d.trim().to_lowercase()).collect()
    }

    fn senders(&mut self, senders: &[String]) -> Vec<String> {
        if senders.is_empty() {
            self.problems.error("match.senders", "must list at least one address or @domain");
        }
        for (i, sender) in senders.iter().enumerate() {
            let ok = sender.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.')) && !sender.contains(' ');
            if !ok {
                self.problems.error(format!("match.senders[{i}]"), format!("{sender:?} is not an address or @domain"));
            }
        }
        senders.iter().map(|s| s.trim().to_lowercase()).collect()
    }

    fn rules(&mut self, rules: &[RuleSpec]) -> Vec<Rule> {
        if rules.is_empty() {
            self.problems.error("rule", "at least one [[rule]] is needed to classify messages");
        }
        rules.iter().enumerate().filter_map(|(i, rule)| self.rule(i, rule)).collect()
    }

    fn rule(&mut self, index: usize, rule: &RuleSpec) -> Option<Rule> {
        let key = format!("rule[{index}]");
        if rule.subject.is_none() && rule.body.is_none() {
            self.problems.error(&key, "needs a subject or body pattern");
        }
        let kind = match (rule.kind.as_str(), &rule.reason) {
            ("sale", _) => RuleKind::Order(OrderKind::Sale),
            ("renewal", _) => RuleKind::Order(OrderKind::Renewal),
            ("refund", _) => RuleKind::Order(OrderKind::Refund),
            ("chargeback", _) => RuleKind::Order(OrderKind::Chargeback),
            ("cancellation", _) => RuleKind::Order(OrderKind::Cancellation),
            ("not_order", Some(reason)) => RuleKind::NotOrder(reason.clone()),
            ("not_order", None) => {
                self.problems.error(format!("{key}.reason"), "a not_order rule needs a reason");
                RuleKind::NotOrder(String::new())
            }
            (other, _) => {
                self.problems.error(
                    format!("{key}.kind"),
                    format!("{other:?} is not one of sale, renewal, refund, chargeback, cancellation, not_order"),
                );
                return None;
            }
        };
        let subject = self.optional(&format!("{key}.subject"), rule.subject.as_deref());
        let body = self.optional(&format!("{key}.body"), rule.body.as_deref());
        let order_id_patterns = match &rule.order_id {
            Some(patterns) => self.alternatives(&format!("{key}.order_id"), patterns, &["value"]),
            None => Vec::new(),
        };
        let source = match (&rule.order_id, rule.order_id_from.as_deref()) {
            (_, Some("order_id")) => {
                self.problems
                    .error(format!("{key}.order_id_from"), "\"order_id\" is a source for fields.payment_id only");
                Source::Body
            }
            (None, Some(_)) => {
                self.problems.error(format!("{key}.order_id_from"), "needs the rule's order_id patterns");
                Source::Body
            }
            (_, from) => self.source(&format!("{key}.order_id_from"), from),
        };
        for (i, name) in rule.require.iter().flatten().enumerate() {
            if !FIELD_NAMES.contains(&name.as_str()) {
                self.problems
                    .error(format!("{key}.require[{i}]"), format!("{name:?} is not one of {}", FIELD_NAMES.join(", ")));
            }
        }
        for (i, name) in rule.sections.iter().flatten().enumerate() {
            if !self.sections.contains(name) {
                self.problems
                    .error(format!("{key}.sections[{i}]"), format!("{name:?} is not defined under [sections]"));
            }
        }
        Some(Rule {
            index,
            subject,
            body,
            kind,
            order_id: (!order_id_patterns.is_empty()).then(|| Field {
                places: vec![Place { patterns: order_id_patterns, source, section: None }],
                required: true,
                clean: default_clean(), // the template's, set by `compile`
            }),
            require: rule.require.clone(),
            sections: rule.sections.clone(),
        })
    }

    fn currency(&mut self, code: Option<&str>) -> String {
        let code = code.unwrap_or("USD");
        if !super::money::is_iso_code(code) {
            self.problems.error("default_currency", format!("{code:?} is not an ISO 4217 code like \"USD\""));
        }
        code.to_owned()
    }

    fn sections(&mut self, specs: &BTreeMap<String, SectionSpec>) -> BTreeMap<String, Section> {
        let mut sections = BTreeMap::new();
        for (name, spec) in specs {
            let key = format!("sections.{name}");
            let start = self.regex(&format!("{key}.start"), &spec.start);
            let end = self.optional(&format!("{key}.end"), spec.end.as_deref());
            if let Some(start) = start {
                sections.insert(name.clone(), Section { start, end, after_items: spec.after_items });
            }
        }
        sections
    }

    fn place(
        &mut self,
        key: &str,
        patterns: &Patterns,
        from: Option<&str>,
        section: Option<&str>,
        groups: &[&str],
    ) -> Place {
        let source = self.source(&format!("{key}.from"), from);
        if let Some(section) = section {
            if !self.sections.iter().any(|s| s == section) {
                self.problems.error(format!("{key}.section"), format!("{section:?} is not defined under [sections]"));
            }
            if source != Source::Body {
                self.problems.error(format!("{key}.section"), "sections are parts of the body: use from = \"body\"");
            }
        }
        let patterns = self.alternatives(&format!("{key}.pattern"), patterns, groups);
        Place { patterns, source, section: section.map(str::to_owned) }
    }

    fn field(&mut self, name: &str, spec: Option<&FieldSpec>, groups: &[&str]) -> Option<Field> {
        let spec = spec?;
        let key = format!("fields.{name}");
        let clean = self.clean(&format!("{key}.clean"), spec.clean.as_deref());
        let mut places = vec![self.place(&key, &spec.pattern, spec.from.as_deref(), spec.section.as_deref(), groups)];
        for (i, also) in spec.also.iter().enumerate() {
            let key = format!("{key}.also[{i}]");
            places.push(self.place(&key, &also.pattern, also.from.as_deref(), also.section.as_deref(), groups));
        }
        if name != "payment_id" && places.iter().any(|p| p.source == Source::OrderId) {
            self.problems.error(format!("{key}.from"), "\"order_id\" is a source for fields.payment_id only");
        }
        Some(Field { places, required: spec.required || name == "order_id", clean })
    }

    /// `from_key` is the dotted key of the `from` value, for the error.
    fn source(&mut self, from_key: &str, from: Option<&str>) -> Source {
        match from {
            None | Some("body") => Source::Body,
            Some("subject") => Source::Subject,
            Some("links") => Source::Links,
            Some("order_id") => Source::OrderId,
            Some(other) => match other.strip_prefix("header:").map(str::trim) {
                Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != ':') => {
                    Source::Header(name.to_ascii_lowercase())
                }
                _ => {
                    self.problems.error(
                        from_key,
                        format!("{other:?} is not \"body\", \"subject\", \"links\" or \"header:NAME\""),
                    );
                    Source::Body
                }
            },
        }
    }

    fn items(&mut self, spec: &ItemsSpec) -> Option<Items> {
        let clean = self.clean("items.clean", spec.clean.as_deref());
        let mut places = vec![self.place("items", &spec.pattern, spec.from.as_deref(), spec.section.as_deref(), &[])];
        for (i, also) in spec.also.iter().enumerate() {
            let key = format!("items.also[{i}]");
            places.push(self.place(&key, &also.pattern, also.from.as_deref(), also.section.as_deref(), &[]));
        }
        let quantity = self.optional("items.quantity", spec.quantity.as_deref());
        if quantity.as_ref().is_some_and(|p| !p.has_group("value")) {
            self.problems.error("items.quantity", "needs a named group (?P<value>...)");
        }
        // The body (the items' section when they have one), also when the items come from the subject.
        let quantity = quantity.map(|pattern| Field {
            places: vec![Place {
                patterns: vec![pattern],
                source: Source::Body,
                section: places.first().and_then(|place| place.section.clone()),
            }],
            required: false,
            clean: clean.clone(),
        });
        for (p, place) in places.iter().enumerate() {
            let key = if p == 0 { "items".to_owned() } else { format!("items.also[{}]", p - 1) };
            if place.source == Source::OrderId {
                self.problems.error(format!("{key}.from"), "\"order_id\" is a source for fields.payment_id only");
            }
            for (i, pattern) in place.patterns.iter().enumerate() {
                if !pattern.has_group("sku") && !pattern.has_group("name") {
                    self.problems
                        .error(format!("{key}.pattern[{i}]"), "needs a named group (?P<sku>...) or (?P<name>...)");
                }
            }
        }
        let once_per_item = (spec.once_per_item.iter().enumerate())
            .filter_map(|(i, pattern)| self.regex(&format!("items.once_per_item[{i}]"), pattern))
            .collect();
        let every_amount = spec.every_amount.as_ref().and_then(|pattern| self.regex("items.every_amount", pattern));
        let not_summed = (spec.not_summed.iter().enumerate())
            .filter_map(|(i, pattern)| self.regex(&format!("items.not_summed[{i}]"), pattern))
            .collect();
        if every_amount.is_none() && !spec.not_summed.is_empty() {
            self.problems.error("items.not_summed", "needs items.every_amount, which it makes exceptions to");
        }
        if places.iter().all(|place| place.patterns.is_empty()) {
            return None;
        }
        Some(Items {
            places,
            quantity,
            required: spec.required,
            priced: spec.priced,
            single: spec.single,
            once_per_item,
            every_amount,
            not_summed,
            clean,
        })
    }

    fn clean(&mut self, key: &str, names: Option<&[String]>) -> Vec<Clean> {
        let Some(names) = names else {
            return default_clean();
        };
        names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| match name.as_str() {
                "trim" => Some(Clean::Trim),
                "collapse_spaces" => Some(Clean::CollapseSpaces),
                "html_entities" => Some(Clean::HtmlEntities),
                other => {
                    self.problems.error(
                        format!("{key}[{i}]"),
                        format!("{other:?} is not one of trim, collapse_spaces, html_entities"),
                    );
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn a_pattern_is_checked_at_once_compiled_on_first_use_and_shared_by_its_clones() {
        assert!(Pattern::checked("(?P<value>[").is_err(), "an invalid pattern is refused when loaded");
        let pattern = Pattern::checked(r"Order (?P<value>\d+)").unwrap();
        let clone = pattern.clone();
        assert!(pattern.compiled.get().is_none(), "nothing compiled is kept before a message needs it");
        assert_eq!(&clone.captures("Order 42").unwrap()["value"], "42");
        assert!(pattern.compiled.get().is_some(), "the clone compiled it for both");
        assert!(std::ptr::eq(&*pattern, &*clone));
    }

    #[test]
    fn loading_a_template_compiles_none_of_its_field_or_item_patterns() {
        let text = r#"
id = "shop"
name = "Shop"
[match]
senders = ["orders@shop.example"]
[[rule]]
subject = '^New order'
kind = "sale"
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[items]
pattern = '(?m)^Item: (?P<sku>\S+) x(?P<quantity>\d+)$'
quantity = 'Qty (?P<value>\d+)'
"#;
        let t = super::compile(std::path::Path::new("shop.toml"), text).unwrap_or_else(|p| panic!("{p:#?}"));
        let items = t.items.as_ref().unwrap();
        let quantity = &items.quantity.as_ref().unwrap().places[0].patterns[0];
        let patterns = [&t.order_id.as_ref().unwrap().places[0].patterns[0], &items.places[0].patterns[0], quantity];
        assert!(patterns.iter().all(|p| p.compiled.get().is_none()), "{patterns:?}");
        let missing = super::compile(std::path::Path::new("shop.toml"), &text.replace("?P<sku>", "?P<code>"));
        let missing = missing.err().unwrap_or_default();
        assert!(missing.iter().any(|p| p.message.contains("(?P<sku>...) or (?P<name>...)")), "{missing:?}");
    }
}
