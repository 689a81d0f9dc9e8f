//! Authentication-Results (RFC 8601) from the vendor's own receiving server, for a provider signature keypost
//! cannot check itself (its key is neither pinned nor reachable). Only the topmost header that carries the
//! configured authserv-id and reports DKIM counts: the receiving server adds its headers on top (one per milter:
//! OpenDMARC's above OpenDKIM's), so anything below it was already in the message when it arrived and could have
//! been written by the sender. No rule on Received headers: the server's header sits below the MTA's own Received
//! in real setups, and a position cannot tell it from a sender's header put first (docs/security.md, rule 2).
//!
//! A `dkim=pass` says that a signature verified, not what it covered. So the signature it speaks of must be in the
//! message (matched by `header.d`, and `header.s` / `header.b` when given), its body hash must be the hash of this
//! body, and it must pass the same coverage rules as on the DKIM path (`signed::check_coverage`). Pure.
use mail_auth::dkim::Signature;

use super::domain::{self, quote};
use super::signed::{self, Context, Signed};

pub(crate) mod syntax;

/// Why the vendor's Authentication-Results did not prove the message came from the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResultsRefusal {
    #[error("{0}")]
    Message(signed::MessageRefusal),
    #[error("no Authentication-Results header from {0}")]
    Missing(String),
    #[error("the topmost header from {authserv_id} cannot be read ({error})")]
    Unreadable { authserv_id: String, error: syntax::SyntaxError },
    /// The topmost header of the server that reports DKIM at all (`server_dkim_verdict`).
    #[error("the topmost header from {authserv_id} shows no aligned dkim=pass for provider {provider}")]
    NoPass { authserv_id: String, provider: String },
    #[error("a header from {authserv_id} reports dmarc={result} for the From domain")]
    DmarcFail { authserv_id: String, result: String },
    #[error("dkim=pass for {0}, but no DKIM-Signature in the message matches it")]
    NoSignature(String),
    #[error("dkim=pass for {d}: {problem}")]
    Coverage { d: String, problem: String },
}

/// The method when the topmost header carrying `authserv_id` holds a `dkim=pass` for a provider domain aligned
/// with the From, and every signature of the message it can refer to passes keypost's rules.
pub(crate) fn verify(
    raw: &[u8],
    authserv_id: &str,
    context: &Context<'_>,
) -> Result<(String, Vec<String>), ResultsRefusal> {
    let signed = signed::open(raw).map_err(ResultsRefusal::Message)?;
    let wanted = authserv_id.trim().to_ascii_lowercase();
    let from_domain = domain::address_domain(&signed.from).unwrap_or_default();
    let results = server_dkim_verdict(&signed, authserv_id, &wanted, context)?;
    let passes: Vec<_> = results
        .clauses
        .iter()
        .filter(|c| c.method == "dkim" && c.result == "pass")
        .filter_map(|c| Some((c, signing_domain(c)?)))
        .filter(|(_, d)| domain::aligned(d, &from_domain, &context.provider.dkim_domains))
        .collect();
    if passes.is_empty() {
        let provider = context.provider.provider.clone();
        return Err(ResultsRefusal::NoPass { authserv_id: quote(authserv_id), provider });
    }
    let mut refusal = None;
    for (clause, d) in passes {
        match signatures_pass(&signed, clause, &d, context) {
            Ok(digests) => {
                let method = format!("authentication-results {}: dkim=pass header.d={}", quote(&wanted), quote(&d));
                return Ok((method, digests));
            }
            Err(err) => refusal = refusal.or(Some(err)),
        }
    }
    Err(refusal.unwrap_or(ResultsRefusal::NoSignature(String::new())))
}

/// The server's DKIM verdict: its topmost header (carrying `wanted`) that reports a `dkim` result. Each milter
/// adds its own header on top of the message, just below the MTA's Received (OpenDKIM and OpenDMARC insert at
/// index 1), so OpenDMARC's `dmarc=` header sits above OpenDKIM's `dkim=` one: the server's headers above the one
/// read are passed over, unless one reports DMARC failing for the From domain (then the message is refused).
/// Every header read must parse; anything below the one read was already in the message when it arrived.
fn server_dkim_verdict(
    signed: &Signed<'_>,
    authserv_id: &str,
    wanted: &str,
    context: &Context<'_>,
) -> Result<syntax::Results, ResultsRefusal> {
    let from_domain = domain::address_domain(&signed.from).unwrap_or_default();
    let unreadable = |error| ResultsRefusal::Unreadable { authserv_id: quote(authserv_id), error };
    let ours =
        headers_in_order(signed).into_iter().filter(|value| syntax::authserv_id(value).is_ok_and(|id| id == wanted));
    let mut seen = false;
    for value in ours {
        seen = true;
        let results = syntax::parse(&value).map_err(unreadable)?;
        if results.clauses.iter().any(|c| c.method == "dkim") {
            return Ok(results);
        }
        if let Some(clause) = results.clauses.iter().find(|c| dmarc_fails(c, &from_domain)) {
            return Err(ResultsRefusal::DmarcFail { authserv_id: quote(authserv_id), result: clause.result.clone() });
        }
    }
    Err(match seen {
        true => ResultsRefusal::NoPass { authserv_id: quote(authserv_id), provider: context.provider.provider.clone() },
        false => ResultsRefusal::Missing(quote(authserv_id)),
    })
}

/// A `dmarc=` result other than pass or none for the From domain (`header.from`; without it, for the message).
fn dmarc_fails(clause: &syntax::Clause, from_domain: &str) -> bool {
    let about_from = clause.property("header", "from").is_none_or(|p| p.value.trim().eq_ignore_ascii_case(from_domain));
    clause.method == "dmarc" && !matches!(clause.result.as_str(), "pass" | "none") && about_from
}

/// Every DKIM-Signature of the message the clause can refer to (there must be one) has this body and passes the
/// coverage rules: when it cannot be told which one the server checked, all of them must do. Returns their digests.
fn signatures_pass(
    signed: &Signed<'_>,
    clause: &syntax::Clause,
    d: &str,
    context: &Context<'_>,
) -> Result<Vec<String>, ResultsRefusal> {
    let candidates: Vec<&Signature> =
        signed.message.dkim_headers.iter().map(|h| &h.header).filter(|s| refers_to(clause, d, s)).collect();
    if candidates.is_empty() {
        return Err(ResultsRefusal::NoSignature(quote(d)));
    }
    for signature in &candidates {
        let coverage = |problem: String| ResultsRefusal::Coverage { d: quote(d), problem };
        signed::check_coverage(signature, signed, context).map_err(coverage)?;
        if !signed::body_hash_matches(signature, &signed.message) {
            return Err(coverage("the body was changed after signing".to_owned()));
        }
    }
    Ok(candidates.into_iter().map(signed::digest).collect())
}

/// The clause can speak of this signature: same `d=` (or, with only `header.i`, an `i=` in the same domain),
/// and the same selector and signature prefix when the clause names them (RFC 6008 `header.b`).
fn refers_to(clause: &syntax::Clause, d: &str, signature: &Signature) -> bool {
    let same_domain = domain::is_within(&signature.d, d) && domain::is_within(d, &signature.d);
    let selector = clause.property("header", "s").is_none_or(|s| s.value.eq_ignore_ascii_case(&signature.s));
    let prefix = clause
        .property("header", "b")
        .is_none_or(|b| !b.value.is_empty() && data_encoding::BASE64.encode(&signature.b).starts_with(&b.value));
    let identity = match clause.property("header", "d") {
        Some(_) => true,
        None => clause
            .property("header", "i")
            .and_then(|i| i.domain.as_deref())
            .is_some_and(|i| domain::address_domain(&signature_identity(signature)).as_deref() == Some(i)),
    };
    same_domain && selector && prefix && identity
}

/// The signature's `i=`, which defaults to `@d`.
fn signature_identity(signature: &Signature) -> String {
    if signature.i.is_empty() { format!("@{}", signature.d) } else { signature.i.clone() }
}

/// The values of the message's Authentication-Results headers, topmost first.
fn headers_in_order(signed: &Signed<'_>) -> Vec<String> {
    signed
        .message
        .headers
        .iter()
        .filter(|(name, _)| name.trim_ascii().eq_ignore_ascii_case(b"authentication-results"))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .collect()
}

/// `header.d=`, else the domain of an address-form `header.i=`; only a domain name counts.
fn signing_domain(clause: &syntax::Clause) -> Option<String> {
    let d = match clause.property("header", "d") {
        Some(d) => d.value.trim().to_ascii_lowercase(),
        None => clause.property("header", "i")?.domain.clone()?,
    };
    domain::looks_like_domain(&d).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_i_gives_the_signing_domain_when_header_d_is_absent() {
        let results = syntax::parse("mx.vendor.example; dkim=pass header.i=@mail.paypal.com").unwrap();
        assert_eq!(signing_domain(&results.clauses[0]).as_deref(), Some("mail.paypal.com"));
    }

    #[test]
    fn a_quoted_header_d_that_is_not_a_domain_gives_no_signing_domain() {
        let results = syntax::parse("mx.vendor.example; dkim=pass header.d=\"x .paypal.com\"").unwrap();
        assert_eq!(signing_domain(&results.clauses[0]), None);
    }
}
