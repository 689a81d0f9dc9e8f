//! The serde model of one template file (`parsers/<provider>.toml`); docs/templates.md explains each key.
//! Only shapes live here; [`super::compile`] checks the values.
use std::collections::BTreeMap;

use serde::Deserialize;

/// One template file.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateFile {
    /// The provider id used in the state and the config, e.g. `paypal`. Defaults to the file name.
    #[serde(default)]
    pub id: Option<String>,
    /// Human name, e.g. `PayPal`.
    pub name: String,
    /// Where the layout was taken from; for the people who maintain the template.
    #[serde(default)]
    pub description: Option<String>,
    /// Templates with a higher priority are tried first (default 0); see docs/templates.md "Order".
    #[serde(default)]
    pub priority: i32,
    /// Ids of payment-processor templates (e.g. `paypal`) that can take this provider's payments and mail their
    /// own notice of the same sale; `keypost check` warns when both are enabled.
    #[serde(default)]
    pub paid_through: Vec<String>,
    /// What `fields.sequence` counts in: `provider` (default) or `product` (one sequence per product).
    #[serde(default)]
    pub sequence_per: Option<String>,
    /// Currency of amounts written with a bare `$` (default `USD`).
    #[serde(default)]
    pub default_currency: Option<String>,
    /// Who signs the provider's mail.
    #[serde(default)]
    pub trust: TrustSpec,
    /// How the provider's messages are recognised.
    #[serde(rename = "match")]
    pub recognise: MatchSpec,
    /// How a recognised message is classified; the first rule that matches wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
    /// When an order is a test order.
    #[serde(default)]
    pub test: Option<TestSpec>,
    /// Named parts of the text, between two anchors, that fields and items can be limited to.
    #[serde(default)]
    pub sections: BTreeMap<String, SectionSpec>,
    /// The single-valued fields.
    #[serde(default)]
    pub fields: FieldsSpec,
    /// The line items.
    #[serde(default)]
    pub items: Option<ItemsSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrustSpec {
    /// Domains whose DKIM signature (`d=`) proves a message is the provider's.
    #[serde(default)]
    pub dkim_domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MatchSpec {
    /// Sender addresses (`service@paypal.com`) or domains (`@paypal.com`, which also covers subdomains).
    pub senders: Vec<String>,
    /// Regexes of which at least one must match the text, when given (for senders shared with other mail).
    #[serde(default)]
    pub body: Vec<String>,
}

/// One regex, or several alternatives.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuleSpec {
    /// Regex the subject must match.
    #[serde(default)]
    pub subject: Option<String>,
    /// Regex the text must match.
    #[serde(default)]
    pub body: Option<String>,
    /// `sale`, `renewal`, `refund`, `chargeback`, `cancellation` or `not_order`.
    pub kind: String,
    /// Why a `not_order` message is not an order, e.g. `payout notice`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Patterns for the order id in this kind of message instead of `fields.order_id`'s (a refund notice
    /// usually names the original sale's id next to its own).
    #[serde(default)]
    pub order_id: Option<Patterns>,
    /// Where those patterns look: `body` (default), `subject`, `links` or `header:NAME` (a renewal notice that
    /// prints no id at all: `header:Message-ID`).
    #[serde(default)]
    pub order_id_from: Option<String>,
    /// The fields this layout must have; replaces the fields' own `required` for messages this rule matches.
    #[serde(default)]
    pub require: Option<Vec<String>>,
    /// The `[sections]` this layout has. A field or item place limited to a section not listed finds nothing
    /// here, so buyer-written text that copies another layout's anchor (an invoice's table header in a goods
    /// sale's note) cannot open that layout's section. Absent: every section.
    #[serde(default)]
    pub sections: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TestSpec {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// The text after the `start` anchor up to the next `end` anchor (or the end of the text).
#[derive(Debug, Clone, Deserialize)]
pub struct SectionSpec {
    /// Regex that must match exactly once in the text.
    pub start: String,
    /// Regex of the first thing after the section; the section runs to the end of the text when absent.
    #[serde(default)]
    pub end: Option<String>,
    /// The section is the provider's totals, printed after the last line item: a sale whose section starts
    /// before an item's match ends is broken (its anchor was written among the items, by someone else).
    #[serde(default)]
    pub after_items: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldsSpec {
    #[serde(default)]
    pub order_id: Option<FieldSpec>,
    /// The registration name when the provider collects one.
    #[serde(default)]
    pub licensee: Option<FieldSpec>,
    #[serde(default)]
    pub buyer_name: Option<FieldSpec>,
    #[serde(default)]
    pub buyer_email: Option<FieldSpec>,
    /// What the buyer paid in all, as the provider computed it.
    #[serde(default)]
    pub total: Option<FieldSpec>,
    /// Amounts that, with the items, make up the total: added (tax, shipping, fee) or taken off (discount).
    #[serde(default)]
    pub tax: Option<FieldSpec>,
    #[serde(default)]
    pub shipping: Option<FieldSpec>,
    #[serde(default)]
    pub fee: Option<FieldSpec>,
    #[serde(default)]
    pub discount: Option<FieldSpec>,
    /// The provider's subscription reference, when its sale, renewal and cancellation mails carry one.
    #[serde(default)]
    pub subscription: Option<FieldSpec>,
    /// A renewal's next billing date or period end: the last day the payment pays for.
    #[serde(default)]
    pub period_end: Option<FieldSpec>,
    /// The payment's id at the processor that took it (`from = "order_id"` reads it from the order id), so a
    /// shop's notice and its processor's own notice of one payment are answered once.
    #[serde(default)]
    pub payment_id: Option<FieldSpec>,
    /// A number the provider counts its notifications with (an order number that counts up, Kagi's SQNM): a
    /// number skipped raises a missed-orders alert.
    #[serde(default)]
    pub sequence: Option<FieldSpec>,
}

/// Where and how a field is found.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldSpec {
    /// Regex (or a list of alternative regexes) with a `(?P<value>...)` group; money fields may add
    /// `(?P<currency>...)`.
    pub pattern: Patterns,
    /// `body` (default), `subject`, `links`, `header:NAME`, or (`payment_id` only) `order_id`.
    #[serde(default)]
    pub from: Option<String>,
    /// Only the text of this section (of the body).
    #[serde(default)]
    pub section: Option<String>,
    /// Must be found in a sale (the order id is always required).
    #[serde(default)]
    pub required: bool,
    /// Clean-ups applied in order; default `["html_entities", "collapse_spaces", "trim"]`.
    #[serde(default)]
    pub clean: Option<Vec<String>>,
    /// More places to look, each with its own patterns, source and section.
    #[serde(default)]
    pub also: Vec<PlaceSpec>,
}

/// One more place a field may be found.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaceSpec {
    pub pattern: Patterns,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub section: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemsSpec {
    /// Regex (or alternatives) applied repeatedly; groups `sku` and/or `name`, optional `quantity`, `price`,
    /// `currency`.
    pub pattern: Patterns,
    /// `body` (default), `subject` (for providers that name the one product in the subject), `links` or
    /// `header:NAME`.
    #[serde(default)]
    pub from: Option<String>,
    /// Only the text of this section (of the body).
    #[serde(default)]
    pub section: Option<String>,
    /// Regex with a `(?P<value>...)` group, matched against the body (the items' section when given), giving the quantity of a single item whose pattern has no `quantity` group (a "Quantity 2" row).
    #[serde(default)]
    pub quantity: Option<String>,
    /// A sale must have at least one item.
    #[serde(default)]
    pub required: bool,
    /// Every item must carry a price or line amount above zero: where text the buyer wrote can sit among the
    /// items, a line made up in it then cannot add up to the total.
    #[serde(default)]
    pub priced: bool,
    /// The layout prints exactly one item (a charge's description, a membership level): a second match is text
    /// someone else wrote, and makes the reading broken.
    #[serde(default)]
    pub single: bool,
    /// Regexes for lines the provider prints once per item (`'(?m)^Quantity:'`): each must be found in the whole
    /// body exactly as often as items are read, or the reading is broken. Text a buyer wrote that imitates an
    /// item's lines (inside the item list or after an anchor it typed) adds one.
    #[serde(default)]
    pub once_per_item: Vec<String>,
    /// Regex for an amount as the layout prints it (`'\$\d[\d,]*\.\d\d'`): in a sale, every match in the
    /// items' sections must be part of an item, the total or a declared adjustment that was read, or the reading
    /// is broken. A money row the template does not read (insurance, a fee) would otherwise leave room for an
    /// item line a buyer typed into a note or an address that fills it exactly.
    #[serde(default)]
    pub every_amount: Option<String>,
    /// With `every_amount`: regexes for the provider's rows whose amounts are not part of the sum (a subtotal,
    /// the fee it kept, the net amount); the amounts inside their matches count as read.
    #[serde(default)]
    pub not_summed: Vec<String>,
    /// Clean-ups for `sku` and `name`.
    #[serde(default)]
    pub clean: Option<Vec<String>>,
    /// More places to look (another layout's item table), each with its own patterns, source and section.
    #[serde(default)]
    pub also: Vec<PlaceSpec>,
}
