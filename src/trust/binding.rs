//! Binding an order to this vendor: a genuine provider signature proves "the provider sent it", not "it was
//! sent to this vendor". Another seller on the same provider could forward or redirect their own genuine sale
//! of a same-named product. `trust.recipients` requires the order to be addressed to the vendor;
//! `trust.forwarders` limits who may forward orders at all. Pure.
use mail_parser::{HeaderValue, MessageParser};

use super::domain::{self, quote};
use crate::email::Email;

/// The addresses of every `name` header (`To`, `Cc`) in `raw`, lower-cased, parsed as RFC 5322 address lists
/// (so an address inside a quoted display name does not count).
pub(crate) fn header_addresses(raw: &[u8], name: &str) -> Vec<String> {
    let Some(message) = MessageParser::default().parse_headers(raw) else { return Vec::new() };
    message
        .header_values(name)
        .filter_map(|value| match value {
            HeaderValue::Address(address) => Some(address),
            _ => None,
        })
        .flat_map(|address| address.iter())
        .filter_map(|addr| addr.address())
        .map(|address| address.trim().to_ascii_lowercase())
        .collect()
}

/// The first of `To`, `Cc` (those in `allowed_headers`) that names one of `recipients`.
pub(crate) fn addressed_to(raw: &[u8], recipients: &[String], allowed_headers: &[&str]) -> Option<&'static str> {
    ["To", "Cc"]
        .into_iter()
        .filter(|name| allowed_headers.iter().any(|h| h.eq_ignore_ascii_case(name)))
        .find(|name| header_addresses(raw, name).iter().any(|address| domain::sender_allowed(address, recipients)))
}

/// With `forwarders` set, a forwarded order (attachment or inline) is accepted only from one of them (the
/// outer From). Without, any forward is checked on its merits.
pub(crate) fn forwarder_allowed(email: &Email, forwarders: &[String]) -> Result<(), String> {
    let Some(forward) = &email.forwarded else { return Ok(()) };
    if forwarders.is_empty() {
        return Ok(());
    }
    match forward.by.as_ref().map(|a| a.address.as_str()) {
        Some(by) if domain::sender_allowed(by, forwarders) => Ok(()),
        Some(by) => Err(format!("forwarded by {}, who is not among trust.forwarders", quote(by))),
        None => Err("a forward without a From address; trust.forwarders is set".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_address_in_a_quoted_display_name_is_not_a_recipient() {
        let raw = b"From: a@paypal.com\r\nTo: \"sales@vendor.example\" <seller@other.example>\r\n\r\nbody\r\n";
        assert_eq!(header_addresses(raw, "To"), ["seller@other.example"]);
        assert_eq!(addressed_to(raw, &list(&["sales@vendor.example"]), &["to", "cc"]), None);
    }

    #[test]
    fn a_recipient_counts_only_in_a_header_the_caller_allows() {
        let raw = b"To: x@other.example\r\nCc: Sales <Sales@Vendor.example>\r\n\r\nbody\r\n";
        let recipients = list(&["@vendor.example"]);
        assert_eq!(addressed_to(raw, &recipients, &["from", "to", "cc"]), Some("Cc"));
        assert_eq!(addressed_to(raw, &recipients, &["from", "to"]), None);
    }

    #[test]
    fn garbage_has_no_recipients() {
        assert!(header_addresses(b"\xff\xfe\x00", "To").is_empty());
        assert!(header_addresses(b"", "Cc").is_empty());
    }
}
