//! A recognised message -> [`Order`] through the template's fields, with the evidence for each field.
//! Values go through the order.rs constructors; any refusal makes the extraction broken.
use regex::{Captures, Regex};
use serde::Serialize;

use super::compile::{Clean, Field, Items, Rule, RuleKind, Source, Template};
use super::money;
use crate::email::Email;
use crate::order::{BuyerEmail, Licensee, LineItem, Money, Order, OrderId, OrderKind, Sku};

/// At most this many line items are read from one message.
pub const MAX_ITEMS: usize = 100;

/// What one field extracted and from which text: what `keypost template test` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub field: String,
    /// The cleaned value, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The text the pattern matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// Why the value was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Extracts an order of `kind`; on failure, every problem found.
pub fn order(t: &Template, rule: &Rule, email: &Email, evidence: &mut Vec<Evidence>) -> Result<Order, Vec<String>> {
    let RuleKind::Order(kind) = rule.kind else {
        return Err(vec!["not an order rule".to_owned()]);
    };
    let mut x = Extraction { email, kind, evidence, problems: Vec::new() };
    let id_field = match (&rule.order_id, &t.order_id) {
        (Some(pattern), Some(field)) => Some(Field { pattern: pattern.clone(), ..field.clone() }),
        (Some(pattern), None) => Some(Field {
            pattern: pattern.clone(),
            source: Source::Body,
            required: true,
            clean: super::compile::default_clean(),
        }),
        (None, field) => field.clone(),
    };
    let id = x.text("order_id", id_field.as_ref()).and_then(|v| x.valid("order_id", OrderId::parse(&v)));
    let buyer_name = x.text("buyer_name", t.buyer_name.as_ref());
    let buyer_name = buyer_name.and_then(|v| x.valid("buyer_name", Licensee::parse(&v))).map(String::from);
    let licensee = x.text("licensee", t.licensee.as_ref()).or_else(|| buyer_name.clone());
    let licensee = licensee.and_then(|v| x.valid("licensee", Licensee::parse(&v)));
    let buyer_email = x.text("buyer_email", t.buyer_email.as_ref());
    let buyer_email = buyer_email.and_then(|v| x.valid("buyer_email", BuyerEmail::parse(&v)));
    let total = x.money("total", t.total.as_ref(), &t.dollar_currency);
    let items = t.items.as_ref().map(|items| x.items(items, &t.dollar_currency)).unwrap_or_default();
    let test = matches(t.test_subject.as_ref(), &email.subject) || matches(t.test_body.as_ref(), &email.text);
    match id {
        Some(id) if x.problems.is_empty() => {
            Ok(Order { provider: t.id.clone(), kind, id, test, licensee, buyer_name, buyer_email, items, total })
        }
        _ => Err(x.problems),
    }
}

fn matches(pattern: Option<&Regex>, text: &str) -> bool {
    pattern.is_some_and(|p| p.is_match(text))
}

struct Extraction<'a> {
    email: &'a Email,
    kind: OrderKind,
    evidence: &'a mut Vec<Evidence>,
    problems: Vec<String>,
}

impl Extraction<'_> {
    /// The field's cleaned `value` group; a missing required field (for a sale, or the order id) is a problem.
    fn text(&mut self, name: &str, field: Option<&Field>) -> Option<String> {
        let field = field?;
        let haystack = match field.source {
            Source::Body => self.email.text.as_str(),
            Source::Subject => self.email.subject.as_str(),
        };
        let Some(caps) = field.pattern.captures(haystack) else {
            if field.required && (self.kind == OrderKind::Sale || name == "order_id") {
                self.fail(name, None, "required but not found (has the provider changed its layout?)");
            } else {
                self.evidence.push(Evidence { field: name.into(), value: None, matched: None, problem: None });
            }
            return None;
        };
        let matched = caps.get(0).map(|m| m.as_str().trim_end().to_owned());
        // `value2` and `value3` join `value` for names a provider prints in parts (first and last name).
        let parts: Vec<&str> =
            ["value", "value2", "value3"].iter().filter_map(|g| caps.name(g)).map(|m| m.as_str()).collect();
        let value = clean(&parts.join(" "), &field.clean);
        if value.is_empty() {
            self.fail(name, matched, "matched but empty");
            return None;
        }
        self.evidence.push(Evidence { field: name.into(), value: Some(value.clone()), matched, problem: None });
        Some(value)
    }

    /// Keeps a constructor's value, or turns its refusal into a problem on the field's evidence.
    fn valid<T, E: std::fmt::Display>(&mut self, name: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                let problem = format!("{name}: {err}");
                if let Some(ev) = self.evidence.iter_mut().rev().find(|e| e.field == name) {
                    ev.problem = Some(err.to_string());
                }
                self.problems.push(problem);
                None
            }
        }
    }

    fn fail(&mut self, name: &str, matched: Option<String>, why: &str) {
        self.evidence.push(Evidence { field: name.into(), value: None, matched, problem: Some(why.into()) });
        self.problems.push(format!("{name}: {why}"));
    }

    fn money(&mut self, name: &str, field: Option<&Field>, dollar: &str) -> Option<Money> {
        let field_ref = field?;
        let text = self.text(name, Some(field_ref))?;
        let haystack = match field_ref.source {
            Source::Body => self.email.text.as_str(),
            Source::Subject => self.email.subject.as_str(),
        };
        let currency =
            field_ref.pattern.captures(haystack).and_then(|c| c.name("currency").map(|m| m.as_str().to_owned()));
        let parsed = money::parse(&text, currency.as_deref(), dollar);
        self.valid(name, parsed)
    }

    fn items(&mut self, items: &Items, dollar: &str) -> Vec<LineItem> {
        let mut found = Vec::new();
        let haystack = match items.source {
            Source::Body => self.email.text.as_str(),
            Source::Subject => self.email.subject.as_str(),
        };
        for (index, caps) in items.pattern.captures_iter(haystack).take(MAX_ITEMS).enumerate() {
            if let Some(item) = self.item(index, &caps, items, dollar) {
                found.push(item);
            }
        }
        if let (Some(pattern), [item]) = (&items.quantity, found.as_mut_slice()) {
            let field =
                Field { pattern: pattern.clone(), source: Source::Body, required: false, clean: items.clean.clone() };
            if let Some(q) = self.text("items[0].quantity", Some(&field)) {
                let parsed = q.parse::<u32>().ok().filter(|q| (1..=100_000).contains(q));
                if let Some(q) =
                    self.valid("items[0].quantity", parsed.ok_or("quantity is not a whole number from 1 to 100000"))
                {
                    item.quantity = q;
                }
            }
        }
        if found.is_empty() && items.required && self.kind == OrderKind::Sale {
            self.fail("items", None, "required but no line item found (has the provider changed its layout?)");
        }
        found
    }

    fn item(&mut self, index: usize, caps: &Captures<'_>, items: &Items, dollar: &str) -> Option<LineItem> {
        let name = format!("items[{index}]");
        let group = |g: &str| caps.name(g).map(|m| clean(m.as_str(), &items.clean)).filter(|v| !v.is_empty());
        let matched = caps.get(0).map(|m| m.as_str().trim_end().to_owned());
        let (sku, product, quantity) = (group("sku"), group("name"), group("quantity"));
        let summary = [sku.as_deref(), product.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" / ");
        self.evidence.push(Evidence { field: name.clone(), value: Some(summary), matched, problem: None });
        let sku = match sku {
            Some(sku) => Some(self.valid(&name, Sku::parse(&sku))?),
            None => None,
        };
        let product_name = match product {
            Some(p) => Some(self.valid(&name, Sku::parse(&p))?.to_string()),
            None => None,
        };
        let quantity = match quantity {
            None => 1,
            Some(q) => self.valid(
                &name,
                q.parse::<u32>()
                    .ok()
                    .filter(|q| (1..=100_000).contains(q))
                    .ok_or("quantity is not a whole number from 1 to 100000"),
            )?,
        };
        let unit_price = match group("price") {
            Some(price) => {
                let currency = caps.name("currency").map(|m| m.as_str());
                Some(self.valid(&name, money::parse(&price, currency, dollar))?)
            }
            None => None,
        };
        Some(LineItem { sku, product_name, quantity, unit_price })
    }
}

/// Applies the clean-ups in order.
pub fn clean(raw: &str, steps: &[Clean]) -> String {
    let mut value = raw.to_owned();
    for step in steps {
        value = match step {
            Clean::Trim => value.trim().to_owned(),
            Clean::CollapseSpaces => value.split_whitespace().collect::<Vec<_>>().join(" "),
            Clean::HtmlEntities => crate::email::html::decode_entities(&value),
        };
    }
    value
}
