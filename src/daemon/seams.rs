//! The two pure steps the daemon calls through small traits, so tests can drive it with fakes:
//! reading a message (email parse + template classify) and making a serial.
use crate::email::Email;
use crate::fulfil::Grant;
use crate::order::Order;
use crate::trust::ProviderTrust;

/// What a message turned out to be.
#[derive(Debug, Clone)]
pub enum Reading {
    /// Not a message keypost can parse: set aside, vendor alerted.
    Unparseable { reason: String },
    /// Not from any provider a template knows: ignored, and counted as from an unknown sender; set aside instead
    /// when it looks like an order notification (`order_like` says why) and `[templates] unknown_order_like`
    /// allows.
    Unrecognised { near_misses: Vec<String>, order_like: Option<String> },
    /// From a known provider (its sender or signing domain belongs to a template), but no rule classifies it:
    /// set aside, vendor alerted. Only a `not_order` rule lets provider mail be ignored.
    Unclassified { provider: String, subject: String, closest: String },
    /// A provider's mail that is not an order (a payout, a newsletter): ignored.
    NotAnOrder { template: String, reason: String },
    /// A template recognised it but could not extract an order: set aside, vendor alerted.
    Broken { template: String, problems: Vec<String> },
    /// An order, with the email it came from (the trust check needs both).
    Order { email: Box<Email>, template: String, order: Box<Order> },
}

/// Parses and classifies a message. Must not panic on any input (the daemon also guards against it).
pub trait Reader {
    fn read(&self, bytes: &[u8]) -> Reading;
    /// Who may send a provider's mail, from its template.
    fn provider_trust(&self, provider: &str) -> Option<ProviderTrust>;
}

/// Makes the serial for a grant's license (its product, licensee, seats, and the edition and term of its SKU).
pub trait Licenser {
    fn make(&self, grant: &Grant, issued: time::Date) -> Result<String, String>;

    /// The last valid day of the licence `make` gives this grant (recorded with it); `None`: perpetual. By
    /// default the grant's own expiry (renewals, extensions).
    fn expiry(&self, grant: &Grant, _issued: time::Date) -> Option<time::Date> {
        grant.expires.as_deref().and_then(crate::order::parse_iso_date)
    }
}
