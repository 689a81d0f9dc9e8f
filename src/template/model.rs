//! The serde model of one template file (`parsers/<provider>.toml`); docs/templates.md explains each key.
//! Only shapes live here; [`super::compile`] checks the values.
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

#[derive(Debug, Clone, Deserialize)]
pub struct RuleSpec {
    /// Regex the subject must match.
    #[serde(default)]
    pub subject: Option<String>,
    /// Regex the text must match.
    #[serde(default)]
    pub body: Option<String>,
    /// `sale`, `refund`, `chargeback`, `cancellation` or `not_order`.
    pub kind: String,
    /// Why a `not_order` message is not an order, e.g. `payout notice`.
    #[serde(default)]
    pub reason: Option<String>,
    /// A pattern for the order id in this kind of message instead of `fields.order_id`'s (a refund notice
    /// usually names the original sale's id next to its own).
    #[serde(default)]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TestSpec {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
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
    #[serde(default)]
    pub total: Option<FieldSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldSpec {
    /// Regex with a `(?P<value>...)` group; `total` may add `(?P<currency>...)`.
    pub pattern: String,
    /// `body` (default) or `subject`.
    #[serde(default)]
    pub from: Option<String>,
    /// Must be found in a sale (the order id is always required).
    #[serde(default)]
    pub required: bool,
    /// Clean-ups applied in order; default `["html_entities", "collapse_spaces", "trim"]`.
    #[serde(default)]
    pub clean: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemsSpec {
    /// Regex applied repeatedly; groups `sku` and/or `name`, optional `quantity`, `price`, `currency`.
    pub pattern: String,
    /// `body` (default) or `subject` (for providers that name the one product in the subject).
    #[serde(default)]
    pub from: Option<String>,
    /// Regex with a `(?P<value>...)` group, matched against the text, giving the quantity of a single item
    /// whose pattern has no `quantity` group (e.g. a separate "Quantity 2" row).
    #[serde(default)]
    pub quantity: Option<String>,
    /// A sale must have at least one item.
    #[serde(default)]
    pub required: bool,
    /// Clean-ups for `sku` and `name`.
    #[serde(default)]
    pub clean: Option<Vec<String>>,
}
