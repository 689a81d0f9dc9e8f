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
    #[error("{field} contains a control or bidi-override character")]
    ControlCharacter { field: &'static str },
    #[error("{field} {value:?} is not a valid e-mail address")]
    InvalidEmail { field: &'static str, value: String },
    #[error("{field} {value:?} is not a valid amount")]
    InvalidAmount { field: &'static str, value: String },
}

/// True for characters that must never travel from a mail into a header, a reply or a log line:
/// C0/C1 controls (CR and LF among them) and the Unicode bidi overrides and isolates.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn checked_text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::Empty { field });
    }
    if trimmed.chars().count() > max {
        return Err(FieldError::TooLong { field, max });
    }
    if trimmed.chars().any(is_forbidden_char) {
        return Err(FieldError::ControlCharacter { field });
    }
    Ok(trimmed.to_owned())
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
                Self::parse(&raw)
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

/// A buyer's address: one `local@domain` with no display name, no spaces and no header-breaking characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuyerEmail(String);

impl BuyerEmail {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = checked_text("buyer email", raw, 254)?;
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
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl TryFrom<String> for BuyerEmail {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::parse(&raw)
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
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Sale => "sale",
            OrderKind::Refund => "refund",
            OrderKind::Chargeback => "chargeback",
            OrderKind::Cancellation => "cancellation",
        }
    }

    /// Refunds, chargebacks and cancellations take a license back.
    pub fn revokes(self) -> bool {
        !matches!(self, OrderKind::Sale)
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
}

impl Order {
    /// The licensee, else the buyer's name: what the serial is made from.
    pub fn license_name(&self) -> Option<&str> {
        self.licensee.as_ref().map(Licensee::as_str).or(self.buyer_name.as_deref())
    }
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
    fn licensee_rejects_bidi_override_and_overlong_names() {
        assert!(Licensee::parse("evil\u{202E}txt.exe").is_err());
        assert!(Licensee::parse(&"x".repeat(201)).is_err());
        assert_eq!(Licensee::parse("  Åsa Öberg ").unwrap().as_str(), "Åsa Öberg");
    }

    #[test]
    fn money_displays_with_two_decimals() {
        let money = Money { hundredths: 123450, currency: Some("EUR".into()) };
        assert_eq!(money.to_string(), "1234.50 EUR");
    }
}
