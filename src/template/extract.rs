//! A recognised message -> [`Order`] through the template's fields, with the evidence for each field.
//! Values go through the order.rs constructors; any refusal makes the extraction broken.
//!
//! Invariants: every match of every pattern of a field is a candidate, and two different candidates make the
//! reading broken (never first-wins); a section whose start anchor is found more than once is broken (text a
//! buyer wrote could carry the anchor); the items, with the declared tax, shipping, fee and discount, add up to
//! the provider's total when they carry prices, or the reading is broken; a line the template says is printed
//! once per item (`once_per_item`) is found in the whole text exactly as often as items are read; with
//! `every_amount`, every amount in a sale's item sections is part of an item, the total or an adjustment read.
use std::borrow::Cow;

use regex::{Captures, Regex};
use serde::Serialize;

use super::compile::{Adjustment, Clean, Field, Items, Pattern, Place, Rule, RuleKind, Template};
use super::money;
use crate::email::Email;
use crate::order::{BuyerEmail, Licensee, LineItem, Money, Order, OrderId, OrderKind, PaymentId, Sequence, Sku};

/// At most this many line items are read from one message.
pub const MAX_ITEMS: usize = 100;
/// At most this many matches of one field's patterns are looked at.
const MAX_CANDIDATES: usize = 100;

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
    let mut x = Extraction {
        t,
        rule,
        email,
        kind,
        evidence,
        problems: Vec::new(),
        line_amounts: Vec::new(),
        amounts_read: Vec::new(),
        order_id: None,
        after_items: Vec::new(),
        items_end: None,
    };
    let id_field = rule.order_id.as_ref().or(t.order_id.as_ref());
    let id = x.text("order_id", id_field).and_then(|v| x.valid("order_id", OrderId::parse(&v)));
    x.order_id = id.as_ref().map(|id| id.as_str().to_owned());
    let payment_id = x.text("payment_id", t.payment_id.as_ref());
    let payment_id =
        payment_id.and_then(|v| x.valid("payment_id", PaymentId::parse(&format!("{}:{v}", t.payment_processor))));
    let buyer_name = x.text("buyer_name", t.buyer_name.as_ref());
    let buyer_name = buyer_name.and_then(|v| x.valid("buyer_name", Licensee::parse(&v))).map(String::from);
    let licensee = x.text("licensee", t.licensee.as_ref()).or_else(|| buyer_name.clone());
    let licensee = licensee.and_then(|v| x.valid("licensee", Licensee::parse(&v)));
    let buyer_email = x.text("buyer_email", t.buyer_email.as_ref());
    let buyer_email = buyer_email.and_then(|v| x.valid("buyer_email", BuyerEmail::parse(&v)));
    let total = x.money("total", t.total.as_ref());
    let adjustments: Vec<(Adjustment, Money)> =
        t.adjustments.iter().filter_map(|(kind, field)| Some((*kind, x.money(kind.name(), Some(field))?))).collect();
    let items = t.items.as_ref().map(|items| x.items(items)).unwrap_or_default();
    x.check_after_items();
    let subscription = x.text("subscription", t.subscription.as_ref());
    let subscription = subscription.and_then(|v| x.valid("subscription", OrderId::parse(&v)));
    let period_end = x.text("period_end", t.period_end.as_ref());
    let period_end = period_end.and_then(|v| x.valid("period_end", super::date::parse(&v))).map(|d| d.to_string());
    if kind == OrderKind::Sale {
        x.check_sum(&items, total.as_ref(), &adjustments);
    }
    let sequence = x.text("sequence", t.sequence.as_ref());
    let sequence =
        sequence.and_then(|v| x.valid("sequence", v.trim().parse::<u64>().map_err(|_| "not a whole number")));
    let sequence = sequence.map(|number| Box::new(Sequence { scope: sequence_scope(t, &items), number }));
    let test = t.test_subject.as_ref().is_some_and(|p| p.is_match(&email.subject))
        || t.test_body.as_ref().is_some_and(|p| p.is_match(&email.text));
    match id {
        Some(id) if x.problems.is_empty() => Ok(Order {
            provider: t.id.clone(),
            kind,
            id,
            test,
            licensee,
            buyer_name,
            buyer_email,
            items,
            total,
            subscription,
            period_end,
            payment_id,
            sequence,
        }),
        _ => Err(x.problems),
    }
}

/// The sequence a number counts in: the provider, or (`sequence_per = "product"`) the provider and the first
/// item's SKU or product name.
fn sequence_scope(t: &Template, items: &[LineItem]) -> String {
    let product = items
        .first()
        .and_then(|item| item.sku.as_ref().map(|sku| sku.as_str().to_owned()).or_else(|| item.product_name.clone()));
    match product.filter(|_| t.sequence_per_product) {
        Some(product) => format!("{}/{product}", t.id),
        None => t.id.clone(),
    }
}

/// The text a place is matched against and where it starts in its source's whole text, or why it cannot be
/// had (a section whose anchors are not right).
fn located<'e>(t: &Template, email: &'e Email, place: &Place) -> Result<(Cow<'e, str>, usize), String> {
    use super::compile::Source;
    let text = match &place.source {
        Source::Body => Cow::Borrowed(email.text.as_str()),
        Source::Subject => Cow::Borrowed(email.subject.as_str()),
        Source::Links => Cow::Owned(email.links.join("\n")),
        // Read by `Extraction::candidates` from the order id; nothing of the message.
        Source::OrderId => Cow::Borrowed(""),
        Source::Header(name) => Cow::Owned(
            email
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    let Some(name) = &place.section else { return Ok((text, 0)) };
    let section = t.sections.get(name).ok_or_else(|| format!("section {name:?} is not defined"))?;
    let mut starts = section.start.find_iter(&text);
    let start = starts.next().ok_or_else(|| format!("section {name:?}: its start anchor is not in the text"))?;
    if starts.next().is_some() {
        return Err(format!(
            "section {name:?}: its start anchor is found more than once, so text someone else wrote could pass \
             for the provider's"
        ));
    }
    let rest = text.get(start.end()..).unwrap_or("");
    let body = match &section.end {
        None => rest,
        Some(end) => match end.find(rest) {
            Some(m) => rest.get(..m.start()).unwrap_or(""),
            None => return Err(format!("section {name:?}: its end anchor is not found after its start")),
        },
    };
    Ok((Cow::Owned(body.to_owned()), start.end()))
}

/// One match of a field's patterns.
struct Candidate {
    value: String,
    matched: String,
    currency: Option<String>,
    /// Where the match is in the whole body (`None` for other sources).
    at: Option<(usize, usize)>,
}

struct Extraction<'a> {
    t: &'a Template,
    rule: &'a Rule,
    email: &'a Email,
    kind: OrderKind,
    evidence: &'a mut Vec<Evidence>,
    problems: Vec<String>,
    /// Per item found, the line amount its pattern printed.
    line_amounts: Vec<Option<Money>>,
    /// Where in the body the total's and the adjustments' matches are: the amounts they account for.
    amounts_read: Vec<(usize, usize)>,
    /// The order id once read: the text of a `payment_id` place with `from = "order_id"`.
    order_id: Option<String>,
    /// Fields read in an `after_items` section: the field, the section, where its text starts in the body.
    after_items: Vec<(String, String, usize)>,
    /// Where the last item's match ends in the body.
    items_end: Option<usize>,
}

impl Extraction<'_> {
    /// Whether this message must have the field: the rule's `require` when it has one, else the field's
    /// `required` for a sale. The order id is always required.
    fn required(&self, name: &str, field_required: bool) -> bool {
        if name == "order_id" {
            return true;
        }
        match &self.rule.require {
            Some(list) => list.iter().any(|n| n == name),
            None => field_required && self.kind == OrderKind::Sale,
        }
    }

    /// Every match of every place; `None` (with the problem recorded) when a section is unusable in a way that
    /// makes the reading broken.
    fn candidates(&mut self, name: &str, field: &Field) -> Option<Vec<Candidate>> {
        let mut found = Vec::new();
        for place in field.places.iter().filter(|place| self.rule.reads(place)) {
            let (text, offset) = match (&place.source, located(self.t, self.email, place)) {
                (super::compile::Source::OrderId, _) => (Cow::Owned(self.order_id.clone().unwrap_or_default()), 0),
                (_, Ok(located)) => located,
                (_, Err(why)) if why.contains("more than once") => {
                    self.fail(name, None, &why);
                    return None;
                }
                (_, Err(_)) => continue, // a missing section is a missing field
            };
            let in_body = place.source == super::compile::Source::Body;
            if let Some(section) =
                place.section.as_ref().filter(|s| in_body && self.t.sections.get(*s).is_some_and(|s| s.after_items))
            {
                self.after_items.push((name.to_owned(), section.clone(), offset));
            }
            for pattern in &place.patterns {
                for caps in pattern.captures_iter(&text).take(MAX_CANDIDATES) {
                    let mut c = candidate(&caps, &field.clean);
                    c.at = caps.get(0).filter(|_| in_body).map(|m| (offset + m.start(), offset + m.end()));
                    found.push(c);
                }
            }
        }
        Some(found)
    }

    /// The field's one cleaned value. Missing and required, empty, or two different values: a problem.
    fn text(&mut self, name: &str, field: Option<&Field>) -> Option<String> {
        let field = field?;
        let found = self.candidates(name, field)?;
        let (empty, found): (Vec<Candidate>, Vec<Candidate>) = found.into_iter().partition(|c| c.value.is_empty());
        let distinct = distinct(&found, |c| c.value.clone());
        match distinct.as_slice() {
            [] => {
                match empty.first() {
                    Some(first) => self.fail(name, Some(first.matched.clone()), "matched but empty"),
                    None => self.missing(name, field.required),
                }
                None
            }
            [one] => {
                let (value, matched) = (one.value.clone(), Some(one.matched.clone()));
                self.evidence.push(Evidence { field: name.into(), value: Some(value.clone()), matched, problem: None });
                Some(value)
            }
            [a, b, ..] => {
                self.conflict(name, &a.value, &a.matched, &b.value, &b.matched);
                None
            }
        }
    }

    fn missing(&mut self, name: &str, field_required: bool) {
        if self.required(name, field_required) {
            self.fail(name, None, "required but not found (has the provider changed its layout?)");
        } else {
            self.evidence.push(Evidence { field: name.into(), value: None, matched: None, problem: None });
        }
    }

    fn conflict(&mut self, name: &str, a: &str, a_matched: &str, b: &str, b_matched: &str) {
        let why = format!("two different values, {a:?} and {b:?}: cannot tell which is right");
        let matched = format!("{a_matched} | {b_matched}");
        self.fail(name, Some(matched), &why);
    }

    /// An amount: like [`Self::text`], but two spellings of the same amount agree.
    fn money(&mut self, name: &str, field: Option<&Field>) -> Option<Money> {
        let field = field?;
        let found = self.candidates(name, field)?;
        self.amounts_read.extend(found.iter().filter_map(|c| c.at));
        let mut parsed: Vec<(Money, Candidate)> = Vec::new();
        for c in found {
            match money::parse(&c.value, c.currency.as_deref(), &self.t.dollar_currency) {
                Ok(m) => parsed.push((m, c)),
                Err(err) => {
                    self.fail(name, Some(c.matched), &err.to_string());
                    return None;
                }
            }
        }
        let distinct = distinct(&parsed, |(m, _)| m.clone());
        match distinct.as_slice() {
            [] => {
                self.missing(name, field.required);
                None
            }
            [(m, c)] => {
                let (value, matched) = (Some(c.value.clone()), Some(c.matched.clone()));
                self.evidence.push(Evidence { field: name.into(), value, matched, problem: None });
                Some(m.clone())
            }
            [(a, ca), (b, cb), ..] => {
                self.conflict(name, &a.to_string(), &ca.matched, &b.to_string(), &cb.matched);
                None
            }
        }
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

    /// A field read in an `after_items` section whose text starts before the last item's match ends: the
    /// section's anchor was found among the items, where a buyer's text is printed, not after them.
    fn check_after_items(&mut self) {
        let Some(items_end) = self.items_end else { return };
        let early: Vec<(String, String)> = self
            .after_items
            .iter()
            .filter(|(_, _, start)| *start < items_end)
            .map(|(field, section, _)| (field.clone(), section.clone()))
            .collect();
        for (field, section) in early {
            let why = format!(
                "section {section:?} starts before the last line item ends: its anchor among the items could be \
                 text someone else wrote"
            );
            self.fail(&field, None, &why);
        }
    }

    fn fail(&mut self, name: &str, matched: Option<String>, why: &str) {
        self.evidence.push(Evidence { field: name.into(), value: None, matched, problem: Some(why.into()) });
        self.problems.push(format!("{name}: {why}"));
    }

    fn items(&mut self, items: &Items) -> Vec<LineItem> {
        // Each place's text, in order; a section whose start anchor is there more than once makes the reading
        // broken, one that is missing only means that layout's items are not in this message.
        let mut texts = Vec::new();
        for place in items.places.iter().filter(|place| self.rule.reads(place)) {
            match located(self.t, self.email, place) {
                Ok((text, offset)) => texts.push((place, text, offset)),
                Err(why) if why.contains("more than once") => {
                    self.fail("items", None, &why);
                    return Vec::new();
                }
                Err(_) => {}
            }
        }
        // Alternative patterns may describe the same line: a match overlapping an earlier one of the same place
        // is not a new item.
        let mut spans: Vec<(usize, usize, usize, Captures<'_>)> = Vec::new();
        for (p, (place, text, _)) in texts.iter().enumerate() {
            for pattern in &place.patterns {
                for caps in pattern.captures_iter(text).take(MAX_ITEMS + 1) {
                    let Some(whole) = caps.get(0) else { continue };
                    let overlaps = spans.iter().any(|(q, s, e, _)| *q == p && whole.start() < *e && *s < whole.end());
                    if !overlaps && whole.end() > whole.start() {
                        spans.push((p, whole.start(), whole.end(), caps));
                    }
                }
            }
        }
        spans.sort_by_key(|(place, start, _, _)| (*place, *start));
        self.items_end = spans
            .iter()
            .filter_map(|(p, _, end, _)| {
                let (place, _, offset) = texts.get(*p)?;
                (place.source == super::compile::Source::Body).then_some(offset + end)
            })
            .max();
        // Each place is one layout's item list: items from two of them in one message mean one list was written
        // by someone else (a buyer's note copying another layout's table header).
        if let (Some(first), Some(last)) = (spans.first(), spans.last())
            && first.0 != last.0
        {
            let name = |p: usize| texts.get(p).and_then(|(place, _, _)| place.section.clone()).unwrap_or_default();
            let why = format!(
                "line items found in two layouts (sections {:?} and {:?}): text someone else wrote may pass for \
                 the provider's",
                name(first.0),
                name(last.0)
            );
            self.fail("items", None, &why);
            return Vec::new();
        }
        if items.single && spans.len() > 1 {
            let why = format!(
                "{} line items where the layout prints one: text someone else wrote may pass for the provider's",
                spans.len()
            );
            self.fail("items", None, &why);
            return Vec::new();
        }
        if spans.len() > MAX_ITEMS {
            self.fail("items", None, &format!("more than {MAX_ITEMS} line items"));
            return Vec::new();
        }
        for label in &items.once_per_item {
            let count = label.find_iter(&self.email.text).count();
            if count != spans.len() {
                let why = format!(
                    "{:?} is in the text {count} time(s) for {} line item(s): text someone else wrote may pass \
                     for the provider's",
                    label.as_str(),
                    spans.len()
                );
                self.fail("items", None, &why);
                return Vec::new();
            }
        }
        if let Some(amount) = items.every_amount.as_ref().filter(|_| self.kind == OrderKind::Sale)
            && let Some((line, why)) = unread_amount(amount, &items.not_summed, &texts, &spans, &self.amounts_read)
        {
            self.fail("items", Some(line), &why);
            return Vec::new();
        }
        let mut found = Vec::new();
        for (index, (_, _, _, caps)) in spans.iter().enumerate() {
            if let Some((item, amount)) = self.item(index, caps, items) {
                found.push(item);
                self.line_amounts.push(amount);
            }
        }
        if let (Some(field), [item]) = (&items.quantity, found.as_mut_slice())
            && let Some(q) = self.text("items[0].quantity", Some(field))
            && let Some(q) = self.valid("items[0].quantity", quantity(&q))
        {
            item.quantity = q;
        }
        if found.is_empty() && self.required("items", items.required) {
            self.fail("items", None, "required but no line item found (has the provider changed its layout?)");
        }
        if items.priced && self.kind == OrderKind::Sale {
            self.check_priced(&found);
        }
        found
    }

    /// `priced`: every item has a price or line amount above zero, so a line written into buyer text among the
    /// items cannot add up to the total by costing nothing.
    fn check_priced(&mut self, found: &[LineItem]) {
        for (index, item) in found.iter().enumerate() {
            let amount = self.line_amounts.get(index).cloned().flatten().or_else(|| item.unit_price.clone());
            if amount.is_none_or(|m| m.hundredths <= 0) {
                let why = "no price above zero: a line the provider did not print (text the buyer wrote?)";
                self.fail(&format!("items[{index}]"), None, why);
            }
        }
    }

    /// One line item, and its line amount when the pattern has an `amount` group (quantity x unit price, as
    /// the provider printed it). Without a `price` group, the unit price is the amount divided by the quantity
    /// when that comes out exact.
    fn item(&mut self, index: usize, caps: &Captures<'_>, items: &Items) -> Option<(LineItem, Option<Money>)> {
        let name = format!("items[{index}]");
        let group = |g: &str| caps.name(g).map(|m| clean(m.as_str(), &items.clean)).filter(|v| !v.is_empty());
        let matched = caps.get(0).map(|m| m.as_str().trim_end().to_owned());
        let (sku, product, count) = (group("sku"), group("name"), group("quantity"));
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
        let quantity = match count {
            None => 1,
            Some(q) => self.valid(&name, quantity(&q))?,
        };
        let currency = caps.name("currency").map(|m| m.as_str());
        let dollar = self.t.dollar_currency.clone();
        let mut unit_price = match group("price") {
            Some(price) => Some(self.valid(&name, money::parse(&price, currency, &dollar))?),
            None => None,
        };
        let amount = match group("amount") {
            Some(amount) => Some(self.valid(&name, money::parse(&amount, currency, &dollar))?),
            None => None,
        };
        if let (None, Some(amount)) = (&unit_price, &amount) {
            let per_unit = i64::from(quantity);
            unit_price = (amount.hundredths % per_unit == 0)
                .then(|| Money { hundredths: amount.hundredths / per_unit, currency: amount.currency.clone() });
        }
        Some((LineItem { sku, product_name, quantity, unit_price }, amount))
    }

    /// When the items carry prices, quantity x unit price, plus tax, shipping and fee, less the discount, must
    /// be the provider's total: a line that is not the provider's (or a misread one) shows as a difference.
    fn check_sum(&mut self, items: &[LineItem], total: Option<&Money>, adjustments: &[(Adjustment, Money)]) {
        let priced = items.iter().any(|i| i.unit_price.is_some()) || self.line_amounts.iter().any(Option::is_some);
        let (Some(total), true) = (total, priced) else { return };
        match sum(items, &self.line_amounts, total, adjustments) {
            Ok(sum) if sum == total.hundredths => {}
            Ok(sum) => {
                let sum = Money { hundredths: sum, currency: total.currency.clone() };
                self.fail(
                    "total",
                    None,
                    &format!(
                        "the items add up to {sum} but the total is {total} (a line that is not the provider's, or \
                         a tax, shipping, fee or discount line the template does not declare)"
                    ),
                );
            }
            Err(why) => self.fail("total", None, &why),
        }
    }
}

/// Sum of the items and adjustments in hundredths, all in the total's currency.
fn sum(
    items: &[LineItem],
    line_amounts: &[Option<Money>],
    total: &Money,
    adjustments: &[(Adjustment, Money)],
) -> Result<i64, String> {
    let same_currency = |m: &Money| m.currency.is_none() || total.currency.is_none() || m.currency == total.currency;
    let mut sum: i64 = 0;
    for (i, item) in items.iter().enumerate() {
        let line = match (line_amounts.get(i).cloned().flatten(), &item.unit_price) {
            (Some(amount), price) => {
                let expected = price.as_ref().map(|p| p.hundredths.checked_mul(i64::from(item.quantity)));
                if expected.is_some_and(|e| e != Some(amount.hundredths)) {
                    return Err(format!("items[{i}]: quantity x unit price is not its amount {amount}"));
                }
                amount
            }
            (None, Some(price)) => Money {
                hundredths: price
                    .hundredths
                    .checked_mul(i64::from(item.quantity))
                    .ok_or("the items' amounts overflow")?,
                currency: price.currency.clone(),
            },
            (None, None) => {
                return Err(format!("items[{i}] has no price, so the items cannot be checked against the total"));
            }
        };
        if !same_currency(&line) {
            return Err(format!("items[{i}] is in another currency than the total ({line} vs {total})"));
        }
        sum = sum.checked_add(line.hundredths).ok_or("the items' amounts overflow")?;
    }
    for (kind, amount) in adjustments {
        if !same_currency(amount) {
            return Err(format!("{} is in another currency than the total ({amount} vs {total})", kind.name()));
        }
        let value = match kind {
            Adjustment::Discount => -amount.hundredths.abs(),
            _ => amount.hundredths,
        };
        sum = sum.checked_add(value).ok_or("the amounts overflow")?;
    }
    Ok(sum)
}

/// `every_amount`: the first amount in the items' body sections that no item, money field (`read`, spans of the
/// whole body) or `not_summed` row covers, as its line and the problem. Spans are compared in the whole body:
/// the places' sections may overlap.
fn unread_amount(
    amount: &Regex,
    not_summed: &[Pattern],
    texts: &[(&Place, Cow<'_, str>, usize)],
    spans: &[(usize, usize, usize, Captures<'_>)],
    read: &[(usize, usize)],
) -> Option<(String, String)> {
    let body = |p: usize| texts.get(p).filter(|(place, _, _)| place.source == super::compile::Source::Body);
    let mut covered: Vec<(usize, usize)> =
        spans.iter().filter_map(|(p, s, e, _)| body(*p).map(|(_, _, offset)| (offset + s, offset + e))).collect();
    covered.extend_from_slice(read);
    for (_, text, offset) in (0..texts.len()).filter_map(body) {
        covered.extend(
            not_summed.iter().flat_map(|row| row.find_iter(text).map(|m| (offset + m.start(), offset + m.end()))),
        );
    }
    for (_, text, offset) in (0..texts.len()).filter_map(body) {
        let unread = amount.find_iter(text).filter(|m| !m.is_empty()).find(|m| {
            let (start, end) = (offset + m.start(), offset + m.end());
            !covered.iter().any(|(s, e)| *s <= start && end <= *e)
        });
        if let Some(m) = unread {
            let line_start = text.get(..m.start()).map_or(0, |before| before.rfind('\n').map_or(0, |i| i + 1));
            let line = text.get(line_start..).and_then(|rest| rest.lines().next()).unwrap_or(m.as_str());
            let why = format!(
                "the amount {:?} is read by no item, total or adjustment: a row the template does not declare \
                 leaves room for a line someone else wrote",
                m.as_str()
            );
            return Some((line.trim().to_owned(), why));
        }
    }
    None
}

fn quantity(text: &str) -> Result<u32, &'static str> {
    text.parse::<u32>()
        .ok()
        .filter(|q| (1..=100_000).contains(q))
        .ok_or("quantity is not a whole number from 1 to 100000")
}

fn candidate(caps: &Captures<'_>, steps: &[Clean]) -> Candidate {
    // `value2` and `value3` join `value` for names a provider prints in parts (first and last name).
    let parts: Vec<&str> =
        ["value", "value2", "value3"].iter().filter_map(|g| caps.name(g)).map(|m| m.as_str()).collect();
    Candidate {
        value: clean(&parts.join(" "), steps),
        matched: caps.get(0).map(|m| m.as_str().trim_end().to_owned()).unwrap_or_default(),
        currency: caps.name("currency").map(|m| m.as_str().to_owned()),
        at: None,
    }
}

/// The first of each distinct key, in order.
fn distinct<T, K: PartialEq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen: Vec<(K, &T)> = Vec::new();
    for item in items {
        let k = key(item);
        if !seen.iter().any(|(s, _)| *s == k) {
            seen.push((k, item));
        }
    }
    seen.into_iter().map(|(_, item)| item).collect()
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
