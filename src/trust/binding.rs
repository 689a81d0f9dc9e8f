//! Binding an order to this vendor: a genuine provider signature proves "the provider sent it", not "it was
//! sent to this vendor". Another seller on the same provider could forward or redirect their own genuine sale
//! of a same-named product. `trust.recipients` requires the order to be addressed to the vendor;
//! `trust.forwarders` limits who may forward orders at all. Pure.
use mail_parser::{HeaderValue, MessageParser};

use super::domain::{self, quote};
use crate::email::Email;

/// The addresses of every `name` header (`To`, `Cc`) in `raw`, lower-cased, parsed as RFC 5322 address lists
/// (so an address inside a quoted display name does not count). Only plain addresses count (one `@`, no blank,
/// a domain name), and only when the header reads the same with its line folds taken out: DKIM's relaxed
/// canonicalisation makes a fold and a blank the same, so a provider's signed `To: Tom sales@vendor.example`
/// (not an address list) stays signed when a thief folds it, and mail-parser then reads an address from it.
pub(crate) fn header_addresses(raw: &[u8], name: &str) -> Vec<String> {
    let header = crate::email::header_end(raw).and_then(|end| raw.get(..end)).unwrap_or(raw);
    let as_sent = addresses(header, name);
    if as_sent != addresses(&unfolded(header), name) {
        return Vec::new();
    }
    as_sent.into_iter().filter(|address| plain(address)).collect()
}

fn addresses(header: &[u8], name: &str) -> Vec<String> {
    let Some(message) = MessageParser::default().parse_headers(header) else { return Vec::new() };
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

/// The header section with every line fold (a line break before a blank) taken out.
fn unfolded(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    let mut i = 0;
    while let Some(&b) = header.get(i) {
        let fold = match (b, header.get(i + 1), header.get(i + 2)) {
            (b'\r', Some(b'\n'), Some(b' ' | b'\t')) => 2,
            (b'\n', Some(b' ' | b'\t'), _) => 1,
            _ => 0,
        };
        if fold == 0 {
            out.push(b);
        }
        i += fold.max(1);
    }
    out
}

/// One `@`, no blank or control character, and a domain name after it.
fn plain(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
                && domain::looks_like_domain(domain)
        }
        None => false,
    }
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
    fn only_plain_addresses_that_read_the_same_unfolded_count() {
        let folded = b"From: a@paypal.com\r\nTo: Tom\r\n sales@vendor.example\r\n\r\n body starts with a blank\r\n";
        assert!(header_addresses(folded, "To").is_empty(), "{:?}", header_addresses(folded, "To"));
        let glued = b"To: seller@thief.examplesales@vendor.example\r\n\r\nbody\r\n";
        assert!(header_addresses(glued, "To").is_empty());
        // A fold between addresses or before an angle address changes nothing, nor a body that starts with a blank.
        let fine = b"To: Sales <sales@vendor.example>,\r\n\tJo <jo@vendor.example>\r\n\r\n body\r\n";
        assert_eq!(header_addresses(fine, "To"), ["sales@vendor.example", "jo@vendor.example"]);
        let lf = b"To: Sales\n <sales@vendor.example>\n\nbody\n";
        assert_eq!(header_addresses(lf, "To"), ["sales@vendor.example"]);
        // A body line break pair after a CRLF header section is not where the header section ends.
        let crlf = b"To: Tom\r\n sales@vendor.example\r\n\r\nbody\n\n more\r\n";
        assert!(header_addresses(crlf, "To").is_empty());
    }

    #[test]
    fn garbage_has_no_recipients() {
        assert!(header_addresses(b"\xff\xfe\x00", "To").is_empty());
        assert!(header_addresses(b"", "Cc").is_empty());
    }
}
