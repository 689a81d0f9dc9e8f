//! Authentication-Results (RFC 8601) from the vendor's own receiving server. Only the topmost header that
//! carries the configured authserv-id counts: the receiving server adds its header on top, so anything below
//! it was already in the message when it arrived and could have been written by the sender. Pure.
use mail_auth::AuthenticatedMessage;

use super::ProviderTrust;
use super::binding::addressed_to;
use super::domain::{self, quote};
use crate::email::Email;

/// Why the vendor's Authentication-Results did not prove the message came from the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResultsRefusal {
    #[error("the message has no header section")]
    Unparseable,
    #[error("no Authentication-Results header from {0}")]
    Missing(String),
    #[error("exactly one From header with one address is required (found {0} address(es))")]
    FromCount(usize),
    #[error("the parsed From {parsed} is not the From header {header}")]
    FromMismatch { parsed: String, header: String },
    #[error("From {0} is not among the provider's senders")]
    NotASender(String),
    #[error("the topmost header from {authserv_id} shows no aligned dkim=pass for provider {provider}")]
    NoPass { authserv_id: String, provider: String },
    #[error("no To or Cc names one of trust.recipients (not sent to this vendor)")]
    NotAddressed,
}

/// One `method=result ptype.property=value ...` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    pub method: String,
    pub result: String,
    pub properties: Vec<(String, String)>,
}

/// A parsed header value: the authserv-id and its clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Results {
    pub authserv_id: String,
    pub clauses: Vec<Clause>,
}

/// Parses one header value; `None` when it has no authserv-id. Comments are dropped, quotes removed.
pub(crate) fn parse(value: &str) -> Option<Results> {
    let cleaned = strip_comments(value);
    let mut parts = split_outside_quotes(&cleaned).into_iter();
    let authserv_id = unquote(parts.next()?.split_whitespace().next()?).to_ascii_lowercase();
    let clauses = parts.filter_map(|part| parse_clause(&part)).collect();
    Some(Results { authserv_id, clauses })
}

fn parse_clause(part: &str) -> Option<Clause> {
    // `dkim = pass` is legal (CFWS around `=`): glue the pairs before splitting on whitespace.
    let glued = part.split('=').map(str::trim).collect::<Vec<_>>().join("=");
    let mut tokens = glued.split_whitespace();
    let (method, result) = tokens.next()?.split_once('=')?;
    let method = method.split('/').next().unwrap_or_default().to_ascii_lowercase();
    let properties = tokens
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_ascii_lowercase(), unquote(v).to_owned()))
        .collect();
    Some(Clause { method, result: unquote(result).to_ascii_lowercase(), properties })
}

fn unquote(text: &str) -> &str {
    text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text)
}

/// Drops `(comments)`, nested or not, outside quoted strings; a comment becomes a space.
fn strip_comments(value: &str) -> String {
    let (mut out, mut depth, mut quoted, mut escaped) = (String::with_capacity(value.len()), 0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(value: &str) -> Vec<String> {
    let (mut parts, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// The values of the message's Authentication-Results headers, topmost first, unfolded.
fn headers_in_order(message: &AuthenticatedMessage<'_>) -> Vec<String> {
    message
        .headers
        .iter()
        .filter(|(name, _)| name.trim_ascii().eq_ignore_ascii_case(b"authentication-results"))
        .map(|(_, value)| String::from_utf8_lossy(value).replace(['\r', '\n'], " "))
        .collect()
}

/// The method when the topmost header carrying `authserv_id` holds dkim=pass for a provider domain that is
/// aligned with the message's single From address. With `recipients` set, To or Cc must name one of them; the
/// header does not say which headers the signature covered, so this relies on the receiving server's check.
pub(crate) fn verify(
    raw: &[u8],
    authserv_id: &str,
    email: &Email,
    provider: &ProviderTrust,
    recipients: &[String],
) -> Result<String, ResultsRefusal> {
    let message = AuthenticatedMessage::parse_with_opts(raw, None, false).ok_or(ResultsRefusal::Unparseable)?;
    let ours = headers_in_order(&message)
        .iter()
        .filter_map(|value| parse(value))
        .find(|results| results.authserv_id.eq_ignore_ascii_case(authserv_id.trim()))
        .ok_or_else(|| ResultsRefusal::Missing(quote(authserv_id)))?;
    let from_headers =
        message.headers.iter().filter(|(name, _)| name.trim_ascii().eq_ignore_ascii_case(b"from")).count();
    let ([from], 1) = (message.from.as_slice(), from_headers) else {
        return Err(ResultsRefusal::FromCount(message.from.len()));
    };
    let from_domain = domain::address_domain(from).unwrap_or_default();
    let passed = ours
        .clauses
        .iter()
        .filter(|c| c.method == "dkim" && c.result == "pass")
        .find_map(|c| signing_domain(c).filter(|d| domain::aligned(d, &from_domain, &provider.dkim_domains)));
    let Some(d) = passed else {
        return Err(ResultsRefusal::NoPass { authserv_id: quote(authserv_id), provider: provider.provider.clone() });
    };
    if let Some(parsed) = &email.from
        && !parsed.address.trim().eq_ignore_ascii_case(from)
    {
        return Err(ResultsRefusal::FromMismatch { parsed: quote(&parsed.address), header: quote(from) });
    }
    if !domain::sender_permitted(from, &provider.senders) {
        return Err(ResultsRefusal::NotASender(quote(from)));
    }
    if !recipients.is_empty() && addressed_to(raw, recipients, &["to", "cc"]).is_none() {
        return Err(ResultsRefusal::NotAddressed);
    }
    Ok(format!("authentication-results {}: dkim=pass header.d={}", quote(&ours.authserv_id), quote(&d)))
}

/// `header.d=`, else the domain of `header.i=`.
fn signing_domain(clause: &Clause) -> Option<String> {
    let property = |name: &str| clause.properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    property("header.d")
        .map(str::to_owned)
        .or_else(|| property("header.i").and_then(|i| domain::address_domain(i).or_else(|| Some(i.to_owned()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authserv_id_and_clauses_despite_comments_versions_and_spaces() {
        let results = parse(
            "MX.Vendor.example 1; (a comment; with a semicolon) dkim = pass (good sig) header.d=paypal.com \
             header.s=\"pp1\"; spf=fail smtp.mailfrom=x@y.example; none",
        )
        .unwrap();
        assert_eq!(results.authserv_id, "mx.vendor.example");
        assert_eq!(results.clauses.len(), 2);
        let dkim = &results.clauses[0];
        assert_eq!((dkim.method.as_str(), dkim.result.as_str()), ("dkim", "pass"));
        assert_eq!(dkim.properties[0], ("header.d".to_owned(), "paypal.com".to_owned()));
        assert_eq!(dkim.properties[1], ("header.s".to_owned(), "pp1".to_owned()));
    }

    #[test]
    fn header_i_gives_the_signing_domain_when_header_d_is_absent() {
        let results = parse("mx.vendor.example; dkim=pass header.i=@mail.paypal.com").unwrap();
        assert_eq!(signing_domain(&results.clauses[0]).as_deref(), Some("mail.paypal.com"));
    }

    #[test]
    fn an_empty_value_has_no_authserv_id() {
        assert_eq!(parse("   "), None);
        assert_eq!(parse("(only a comment)"), None);
    }
}
