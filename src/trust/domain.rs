//! Domain and address rules shared by the trust checks: provider domains, alignment, sender lists, and the
//! sanitising of mail text that goes into a refusal reason. Pure.
use crate::order::is_forbidden_char;

/// A refusal reason is shown in an alert and a log line: no controls, no bidi tricks, bounded length.
const MAX_REASON_CHARS: usize = 600;

pub(crate) fn sanitize(text: &str) -> String {
    let mut out: String =
        text.chars().map(|c| if is_forbidden_char(c) { '?' } else { c }).take(MAX_REASON_CHARS).collect();
    if text.chars().count() > MAX_REASON_CHARS {
        out.push('…');
    }
    out
}

/// Mail-supplied text quoted inside a reason: sanitised and short.
pub(crate) fn quote(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    sanitize(&short)
}

fn normalise(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `name` is `parent` or one of its subdomains (`mail.paypal.com` is within `paypal.com`).
pub(crate) fn is_within(name: &str, parent: &str) -> bool {
    let (name, parent) = (normalise(name), normalise(parent));
    !parent.is_empty() && (name == parent || name.strip_suffix(&parent).is_some_and(|rest| rest.ends_with('.')))
}

/// The provider domain (from the template's `dkim_domains`) that `d` falls within. A bare top-level
/// domain in the list is ignored: `com` would let anyone's signature through.
pub(crate) fn provider_domain<'p>(d: &str, dkim_domains: &'p [String]) -> Option<&'p str> {
    dkim_domains.iter().map(String::as_str).filter(|p| normalise(p).contains('.')).find(|p| is_within(d, p))
}

/// Relaxed alignment, kept simple: the signing domain and the From domain fall within the same provider
/// domain. The template's `dkim_domains` stand in for the organisational domain, so no public-suffix list
/// is needed (`d=mail.paypal.com` aligns with `From: service@paypal.com` when `paypal.com` is listed).
pub(crate) fn aligned(d: &str, from_domain: &str, dkim_domains: &[String]) -> bool {
    provider_domain(d, dkim_domains).is_some_and(|p| is_within(from_domain, p))
}

pub(crate) fn address_domain(address: &str) -> Option<String> {
    address.rsplit_once('@').map(|(_, domain)| normalise(domain)).filter(|d| !d.is_empty())
}

/// The address matches an entry of the template's senders: `a@b.example` exactly, or `@b.example` (or a bare
/// `b.example`) for any address at that domain. Case-insensitive. An empty list allows no one.
pub(crate) fn sender_allowed(address: &str, senders: &[String]) -> bool {
    let address = address.trim().to_ascii_lowercase();
    let domain = address_domain(&address);
    senders.iter().map(|s| s.trim().to_ascii_lowercase()).any(|sender| match sender.strip_prefix('@') {
        Some(wanted) => domain.as_deref() == Some(normalise(wanted).as_str()),
        None if sender.contains('@') => sender == address,
        None => domain.as_deref() == Some(normalise(&sender).as_str()),
    })
}

/// For a cryptographically proven message the template's senders narrow things further when it lists any.
pub(crate) fn sender_permitted(address: &str, senders: &[String]) -> bool {
    senders.is_empty() || sender_allowed(address, senders)
}

pub(crate) fn looks_like_domain(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `a@b.example` or `@b.example`: an entry of `trust.recipients` or `trust.forwarders`.
pub(crate) fn looks_like_address_or_domain(entry: &str) -> bool {
    match entry.trim().rsplit_once('@') {
        Some((local, domain)) => {
            looks_like_domain(domain)
                && !local.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        }
        None => false,
    }
}

pub(crate) fn looks_like_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 253
        && selector
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)))
}

/// Template ids are short and plain: letters, digits, `-`, `_`, `.`.
pub(crate) fn looks_like_provider_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// RFC 8601 authserv-id: a non-empty token with no whitespace, `;`, quotes, parentheses or controls.
pub(crate) fn check_authserv_id(id: &str) -> Result<(), &'static str> {
    if id.trim().is_empty() {
        return Err("must not be empty (leave it out to not use Authentication-Results)");
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control() || ";\"()\\".contains(c)) {
        return Err("must be a single token, e.g. the receiving server's host name \"mx.example.com\"");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn subdomain_is_within_but_lookalike_suffix_is_not() {
        assert!(is_within("mail.PayPal.com.", "paypal.com"));
        assert!(is_within("paypal.com", "paypal.com"));
        assert!(!is_within("evilpaypal.com", "paypal.com"));
        assert!(!is_within("paypal.com.evil.example", "paypal.com"));
        assert!(!is_within("paypal.com", ""));
    }

    #[test]
    fn alignment_needs_both_domains_under_one_provider_domain() {
        let domains = list(&["paypal.com", "paypal.de"]);
        assert!(aligned("mail.paypal.com", "paypal.com", &domains));
        assert!(aligned("paypal.com", "e.paypal.com", &domains));
        assert!(!aligned("paypal.com", "paypal.de", &domains));
        assert!(!aligned("evil.example", "evil.example", &domains));
    }

    #[test]
    fn a_bare_top_level_domain_never_counts_as_a_provider_domain() {
        assert_eq!(provider_domain("evil.com", &list(&["com"])), None);
    }

    #[test]
    fn senders_match_exact_addresses_and_whole_domains_only() {
        let senders = list(&["service@paypal.com", "@fastspring.com", "paddle.com"]);
        assert!(sender_allowed("Service@PayPal.com", &senders));
        assert!(!sender_allowed("other@paypal.com", &senders));
        assert!(sender_allowed("noreply@fastspring.com", &senders));
        assert!(!sender_allowed("noreply@evilfastspring.com", &senders));
        assert!(sender_allowed("x@paddle.com", &senders));
        assert!(!sender_allowed("anyone@paypal.com", &[]));
        assert!(sender_permitted("anyone@paypal.com", &[]));
        assert!(!sender_permitted("other@paypal.com", &senders));
    }

    #[test]
    fn reasons_lose_control_and_bidi_characters_and_stay_short() {
        assert_eq!(sanitize("a\r\nb\u{202E}c"), "a??b?c");
        assert!(sanitize(&"x".repeat(5000)).chars().count() <= MAX_REASON_CHARS + 1);
    }

    #[test]
    fn authserv_id_must_be_one_plain_token() {
        assert!(check_authserv_id("mx.vendor.example").is_ok());
        assert!(check_authserv_id(" ").is_err());
        assert!(check_authserv_id("mx; dkim=pass").is_err());
    }
}
