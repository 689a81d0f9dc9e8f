//! Domain types of an order, each with a `parse` constructor that is the one place its rules live.
//! No I/O. Values that come from a mail are untrusted: constructors refuse control characters and absurd lengths.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Who receives an issued license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Buyer,
    /// A test order: the vendor only.
    Vendor,
}

/// Why a field of an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} contains a control, bidi, zero-width or other invisible format character, or a line separator")]
    ControlCharacter { field: &'static str },
    #[error("{field} {value:?} is not a valid e-mail address")]
    InvalidEmail { field: &'static str, value: String },
    #[error("{field} {value:?} is not a valid amount")]
    InvalidAmount { field: &'static str, value: String },
}

/// True for characters that must never travel from a mail into a header, a reply, a serial's name or a log line:
/// C0/C1 controls (CR and LF among them), the line and paragraph separators (Unicode Zl, Zp), and every format
/// character (Cf: bidi controls, zero-width spaces and joiners, the BOM, the soft hyphen...), which make two
/// names that look the same give different serials.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format_char(c)
}

/// Unicode general category Cf (format), as of Unicode 16; `order::tests` checks it against the regex crate's
/// tables.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

fn checked_text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    checked_str(field, raw, max).map(str::to_owned)
}

/// The same for a value already owned (a record read from the state): kept, not copied, when nothing is trimmed.
fn checked_owned(field: &'static str, raw: String, max: usize) -> Result<String, FieldError> {
    let trimmed = checked_str(field, &raw, max)?;
    Ok(if trimmed.len() == raw.len() { raw } else { trimmed.to_owned() })
}

fn checked_str<'a>(field: &'static str, raw: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::Empty { field });
    }
    // ASCII (nearly every value): a byte is a character, and the only forbidden ones are the C0 controls and DEL.
    let ascii = trimmed.is_ascii();
    if (if ascii { trimmed.len() } else { trimmed.chars().count() }) > max {
        return Err(FieldError::TooLong { field, max });
    }
    if if ascii { trimmed.bytes().any(|b| b.is_ascii_control()) } else { trimmed.chars().any(is_forbidden_char) } {
        return Err(FieldError::ControlCharacter { field });
    }
    Ok(trimmed)
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                checked_text($field, raw, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(raw: String) -> Result<Self, FieldError> {
                checked_owned($field, raw, $max).map(Self)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// The provider's order reference, as the provider prints it.
    OrderId, "order id", 128
);
text_newtype!(
    /// The name a license is issued to, exactly as extracted (serial normalisation happens in `serial`).
    Licensee, "licensee", 200
);
text_newtype!(
    /// A provider's product code or product name for a line item.
    Sku, "sku", 200
);
text_newtype!(
    /// The payment's id at the processor that took it, namespaced by that processor (`paypal:8DE45678FG901234H`):
    /// a shop's notice and the processor's own notice of one payment carry the same one ([`crate::fulfil`]).
    PaymentId, "payment id", 200
);

/// A buyer's address: one `local@domain` with no display name, no spaces and no header-breaking characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuyerEmail(String);

impl BuyerEmail {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::checked(checked_text("buyer email", raw, 254)?)
    }

    /// `value` checked as text already.
    fn checked(value: String) -> Result<Self, FieldError> {
        let invalid = || FieldError::InvalidEmail { field: "buyer email", value: value.clone() };
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(invalid());
        }
        if domain.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
            // Already lower-case ASCII (every address read back from the state, nearly every other): no copy.
            return Ok(Self(value));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// Who the per-buyer rate limit counts: the address lower-cased and without a `+tag`, so `Jane@x.example`
    /// and `jane+1@x.example` are one buyer; at Gmail, which ignores dots and answers to both of its domains,
    /// `j.a.n.e@googlemail.com` is `jane@gmail.com`.
    pub fn rate_key(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((self.0.as_str(), ""));
        let local = local.split_once('+').map_or(local, |(base, _)| base).to_lowercase();
        let domain = domain.to_lowercase();
        match domain.as_str() {
            "gmail.com" | "googlemail.com" => format!("{}@gmail.com", local.replace('.', "")),
            _ => format!("{local}@{domain}"),
        }
    }
}

impl TryFrom<String> for BuyerEmail {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::checked(checked_owned("buyer email", raw, 254)?)
    }
}

impl From<BuyerEmail> for String {
    fn from(value: BuyerEmail) -> String {
        value.0
    }
}

impl fmt::Display for BuyerEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount in hundredths of the currency unit (cents), so comparisons are exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub hundredths: i64,
    /// ISO 4217 code in upper case, when the mail says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.hundredths < 0 { "-" } else { "" };
        let abs = self.hundredths.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)?;
        if let Some(currency) = &self.currency {
            write!(f, " {currency}")?;
        }
        Ok(())
    }
}

/// What an order email announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    Sale,
    Refund,
    Chargeback,
    Cancellation,
    /// A subscription's next paid period: extends the licence of its first order (`fulfil::subscription`).
    Renewal,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Sale => "sale",
            OrderKind::Refund => "refund",
            OrderKind::Chargeback => "chargeback",
            OrderKind::Cancellation => "cancellation",
            OrderKind::Renewal => "renewal",
        }
    }

    /// Refunds, chargebacks and cancellations take a license back (a cancellation of a licence with a term
    /// only at the end of its paid period: `fulfil::subscription`).
    pub fn revokes(self) -> bool {
        matches!(self, OrderKind::Refund | OrderKind::Chargeback | OrderKind::Cancellation)
    }
}

/// One product line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<Sku>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
}

/// An order as a template extracted it from one email. Only `provider`, `kind` and `id` are always known:
/// refund notices often carry nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The template's provider id, e.g. `paypal`.
    pub provider: String,
    pub kind: OrderKind,
    pub id: OrderId,
    #[serde(default)]
    pub test: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensee: Option<Licensee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_email: Option<BuyerEmail>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
    /// Renewals and cancellations: the provider's reference of the subscription (what ties them to its first
    /// order when their own order id is another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<OrderId>,
    /// Renewals: the last day the payment pays for (the mail's next billing date or period end), `YYYY-MM-DD`
    /// (made by `template::date`, read back by [`parse_iso_date`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// The payment's id at its processor, when the template reads one: links this order with another
    /// provider's notice of the same payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<PaymentId>,
    /// The number the provider counts its notifications with, when the template reads one (`fields.sequence`).
    /// Boxed: most orders have none, and an order travels by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Box<Sequence>>,
}

/// A number a provider counts up with each notification, and the sequence it counts in: `provider`, or
/// `provider/PRODUCT` for a template with `sequence_per = "product"` (Kagi numbers each product's sales).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub scope: String,
    pub number: u64,
}

impl Order {
    /// The licensee, else the buyer's name: what the serial is made from.
    pub fn license_name(&self) -> Option<&str> {
        self.licensee.as_ref().map(Licensee::as_str).or(self.buyer_name.as_deref())
    }
}

/// A `YYYY-MM-DD` date, as the state and the CLI write them.
pub fn parse_iso_date(text: &str) -> Option<time::Date> {
    time::Date::parse(text.trim(), time::macros::format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buyer_email_rejects_header_injection_and_lowercases_domain() {
        assert!(BuyerEmail::parse("a@b.example\r\nBcc: x@y.example").is_err());
        assert!(BuyerEmail::parse("Jo <jo@x.example>").is_err());
        assert!(BuyerEmail::parse("no-at-sign").is_err());
        assert_eq!(BuyerEmail::parse(" Jo.Doe@Example.COM ").unwrap().as_str(), "Jo.Doe@example.com");
    }

    #[test]
    fn names_with_separators_zero_width_or_format_characters_are_refused() {
        for name in
            ["Jane\u{2028}Doe", "Jane\u{2029}Doe", "Ja\u{200B}ne", "Jane\u{FEFF}", "Ja\u{00AD}ne", "J\u{2066}ane"]
        {
            assert!(Licensee::parse(name).is_err(), "{name:?}");
        }
        assert!(Licensee::parse("Zoë Ångström-Łukasz 李").is_ok());
    }

    #[test]
    fn the_format_characters_are_exactly_unicode_category_cf() {
        let cf = regex::Regex::new(r"^\p{Cf}$").unwrap();
        let mut buffer = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            assert_eq!(is_format_char(c), cf.is_match(c.encode_utf8(&mut buffer)), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_plus_tag_and_letter_case_do_not_make_another_buyer() {
        let key = |raw: &str| BuyerEmail::parse(raw).unwrap().rate_key();
        assert_eq!(key("jane+1@Example.com"), "jane@example.com");
        assert_eq!(key("Jane@example.com"), "jane@example.com");
        assert_eq!(key("jane+a+b@example.com"), "jane@example.com");
        assert_ne!(key("jane.doe@example.com"), key("jane@example.com"));
    }

    #[test]
    fn gmail_dots_and_its_second_domain_do_not_make_another_buyer() {
        let key = |raw: &str| BuyerEmail::parse(raw).unwrap().rate_key();
        assert_eq!(key("J.a.n.e+x@GoogleMail.com"), "jane@gmail.com");
        assert_eq!(key("jane@gmail.com"), "jane@gmail.com");
        assert_ne!(key("j.ane@example.com"), key("jane@example.com"), "dots count elsewhere");
    }

    #[test]
    fn licensee_rejects_bidi_override_and_overlong_names() {
        assert!(Licensee::parse("evil\u{202E}txt.exe").is_err());
        assert!(Licensee::parse(&"x".repeat(201)).is_err());
        assert_eq!(Licensee::parse("  Åsa Öberg ").unwrap().as_str(), "Åsa Öberg");
    }

    #[test]
    fn a_value_read_back_from_the_state_is_checked_exactly_as_one_read_from_mail() {
        let read = |raw: &str| serde_json::from_value::<Licensee>(serde_json::Value::String(raw.into()));
        let cases = [
            "Åsa Öberg".to_owned(),
            " padded ".to_owned(),
            "tab\there".to_owned(),
            "del\u{7f}".to_owned(),
            "c1\u{85}".to_owned(),
            "x".repeat(200),
            "x".repeat(201),
            "ö".repeat(200),
            "ö".repeat(201),
            "   ".to_owned(),
        ];
        for raw in &cases {
            let parsed = Licensee::parse(raw);
            assert_eq!(read(raw).ok(), parsed.clone().ok(), "{raw:?}");
            assert_eq!(read(raw).is_err(), parsed.is_err(), "{raw:?}");
        }
        let email = |raw: &str| serde_json::from_value::<BuyerEmail>(serde_json::Value::String(raw.into()));
        for raw in
            ["Jo.Doe@Example.COM", " jo@x.example ", "jo@x.example", "jo@bü.example", "jo@BÜ.example", "a\tb@x.example"]
        {
            assert_eq!(email(raw).ok(), BuyerEmail::parse(raw).ok(), "{raw:?}");
        }
        assert_eq!(email("Jo@BÜ.Example").unwrap().as_str(), "Jo@bü.example");
    }

    #[test]
    fn money_displays_with_two_decimals() {
        let money = Money { hundredths: 123450, currency: Some("EUR".into()) };
        assert_eq!(money.to_string(), "1234.50 EUR");
    }
}
