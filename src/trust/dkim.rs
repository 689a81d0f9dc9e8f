//! DKIM: verify the provider's signature with mail-auth, then apply keypost's own rules on top of a
//! cryptographic pass (provider domain, alignment, From signed, no `l=` shortcut, no unsigned header copies).
//! Key lookups go to the pinned keys first; DNS is asked only when `dns = true`.
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::Signature;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};

use super::binding::addressed_to;
use super::domain::{self, quote};
use super::{ProviderTrust, TrustConfig};
use crate::email::Email;

/// Why a pinned key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("is not base64 (the p= value of the DNS record)")]
    Base64,
    #[error("is neither an Ed25519 key (32 bytes) nor an RSA public key (DER)")]
    NotAKey,
}

/// Why a message's DKIM signatures did not prove it came from the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DkimRefusal {
    #[error("the message has no header section")]
    Unparseable,
    #[error("no DKIM signature")]
    NoSignature,
    #[error("exactly one From header with one address is required ({headers} header(s), {addresses} address(es))")]
    FromCount { headers: usize, addresses: usize },
    #[error("no acceptable signature: {problems}")]
    NoneAccepted {
        problems: String,
        /// A provider signature could not be checked because its key lookup failed temporarily (DNS).
        temporary: bool,
    },
}

impl DkimRefusal {
    /// True when trying again later may succeed: a provider key could not be looked up for now.
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self, DkimRefusal::NoneAccepted { temporary: true, .. })
    }
}

/// `selector._domainkey.domain.`, lower case: the name mail-auth asks its cache for.
pub(crate) fn record_name(selector: &str, domain: &str) -> String {
    format!("{}._domainkey.{}.", selector.trim(), domain.trim().trim_end_matches('.')).to_ascii_lowercase()
}

/// The DNS record's `p=` value. 32 bytes is an Ed25519 key; RSA keys are DER (they start with a SEQUENCE).
pub(crate) fn parse_pinned_key(public_key: &str) -> Result<DomainKey, KeyError> {
    let p: String = public_key.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = data_encoding::BASE64.decode(p.as_bytes()).map_err(|_| KeyError::Base64)?;
    let kind = match (bytes.len(), bytes.first()) {
        (32, _) => "ed25519",
        (64.., Some(0x30)) => "rsa",
        _ => return Err(KeyError::NotAKey),
    };
    DomainKey::parse(format!("v=DKIM1; k={kind}; p={p}").as_bytes()).map_err(|_| KeyError::NotAKey)
}

/// Answers mail-auth's key lookups from the pinned keys. With DNS off it answers every other name with
/// NXDOMAIN itself, so mail-auth never reaches its resolver (and tests never touch the network).
pub(crate) struct KeyStore {
    pinned: HashMap<Box<str>, Txt>,
    dns: bool,
    /// Tests of the retry path: every unpinned name answers with a temporary resolver failure.
    pub(crate) dns_down: bool,
}

impl KeyStore {
    pub(crate) fn new(config: &TrustConfig) -> anyhow::Result<Self> {
        let mut pinned = HashMap::new();
        for key in &config.pinned_keys {
            let record = parse_pinned_key(&key.public_key).map_err(|err| {
                anyhow::anyhow!("trust.pinned_keys: the key for {}._domainkey.{} {err}", key.selector, key.domain)
            })?;
            pinned.insert(record_name(&key.selector, &key.domain).into_boxed_str(), Txt::DomainKey(Arc::new(record)));
        }
        Ok(Self { pinned, dns: config.dns, dns_down: false })
    }
}

impl ResolverCache<Box<str>, Txt> for KeyStore {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let not_found =
            || Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain)));
        let down = || Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver("DNS unreachable".to_owned())));
        if self.dns_down {
            return Some(self.pinned.get(name).cloned().unwrap_or_else(down));
        }
        self.pinned.get(name).cloned().or_else(|| (!self.dns).then(not_found))
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    // DNS answers are not kept: orders are few, and a rotated key is then seen at once.
    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

/// The resolver mail-auth uses for DNS lookups: the system's with `dns = true`; otherwise one that is
/// never asked (the key store answers every name).
pub(crate) fn authenticator(dns: bool) -> anyhow::Result<MessageAuthenticator> {
    let built = if dns { MessageAuthenticator::new_system_conf() } else { MessageAuthenticator::new_cloudflare() };
    built.map_err(|err| anyhow::anyhow!("Failed to set up the DNS resolver for DKIM key lookups: {err}"))
}

/// Provider signatures checked per message; real mail carries one or two.
const MAX_SIGNATURES: usize = 4;

/// Headers that are added in transit, so a copy the signer did not see is expected.
const TRANSIT_HEADERS: [&str; 5] =
    ["received", "dkim-signature", "authentication-results", "arc-seal", "arc-message-signature"];

/// Verifies `signed` (the message, or the original attached to a forward) and returns the method on success.
/// With `recipients` set, the signature must also cover a To or Cc naming one of them.
pub(crate) async fn verify(
    authenticator: &MessageAuthenticator,
    keys: &KeyStore,
    signed: &[u8],
    email: &Email,
    provider: &ProviderTrust,
    recipients: &[String],
) -> Result<String, DkimRefusal> {
    // Not strict: a signature with l= is parsed so that it can be refused with a clear reason below.
    let mut message = AuthenticatedMessage::parse_with_opts(signed, None, false).ok_or(DkimRefusal::Unparseable)?;
    if message.dkim_headers.is_empty() && !message.has_dkim_errors {
        return Err(DkimRefusal::NoSignature);
    }
    let mut problems = keep_provider_signatures(&mut message, provider);
    let from_headers = count_headers(&message, "from");
    let [from] = message.from.as_slice() else {
        return Err(DkimRefusal::FromCount { headers: from_headers, addresses: message.from.len() });
    };
    if from_headers != 1 {
        return Err(DkimRefusal::FromCount { headers: from_headers, addresses: message.from.len() });
    }
    let outputs = authenticator.verify_dkim(Parameters::new(&message).with_txt_cache(keys)).await;
    let (mut temporary, context) = (false, Signed { message: &message, raw: signed, from, recipients });
    for output in &outputs {
        let Some(signature) = output.signature() else {
            problems.push(format!("malformed signature ({})", quote(&output.result().to_string())));
            continue;
        };
        temporary |= matches!(output.result(), DkimResult::TempError(_));
        let d = quote(&signature.d);
        match accept(output.result(), signature, &context, email, provider) {
            Ok(()) => return Ok(format!("dkim d={d}")),
            Err(problem) => problems.push(format!("d={d}: {problem}")),
        }
    }
    Err(DkimRefusal::NoneAccepted { problems: problems.join(", "), temporary })
}

/// The message a signature is checked against.
struct Signed<'m, 'x> {
    message: &'m AuthenticatedMessage<'x>,
    raw: &'m [u8],
    /// Its single From address.
    from: &'m str,
    /// `trust.recipients`.
    recipients: &'m [String],
}

/// Only the provider's signatures are checked, a few at most: a sender must not be able to make keypost
/// look up keys at domains of its choosing (a beacon) or many times over (a slowdown). Returns why the
/// others were dropped.
fn keep_provider_signatures(message: &mut AuthenticatedMessage<'_>, provider: &ProviderTrust) -> Vec<String> {
    let mut dropped = Vec::new();
    message.dkim_headers.retain(|header| {
        let d = &header.header.d;
        let ours = domain::provider_domain(d, &provider.dkim_domains).is_some();
        if !ours {
            dropped.push(format!("d={}: not a DKIM domain of provider {}", quote(d), provider.provider));
        }
        ours
    });
    message.dkim_headers.truncate(MAX_SIGNATURES);
    dropped
}

/// keypost's rules for one signature, on top of mail-auth's verdict.
fn accept(
    result: &DkimResult,
    signature: &Signature,
    signed: &Signed<'_, '_>,
    email: &Email,
    provider: &ProviderTrust,
) -> Result<(), String> {
    let (message, from) = (signed.message, signed.from);
    if result != &DkimResult::Pass {
        return Err(describe(result, signature));
    }
    let covers = |name: &str| signature.h.iter().any(|h| h.trim().eq_ignore_ascii_case(name));
    if !covers("from") {
        return Err("the From header is not signed".to_owned());
    }
    // Templates classify by subject (sale, refund, payout): an unsigned one could turn a refund into a sale.
    if !covers("subject") {
        return Err("the Subject header is not signed".to_owned());
    }
    let body_len = message.raw_body().len() as u64;
    if signature.l != 0 && signature.l < body_len {
        return Err(format!("signs only the first {} of {body_len} body bytes (l=)", signature.l));
    }
    let from_domain = domain::address_domain(from).unwrap_or_default();
    if !domain::aligned(&signature.d, &from_domain, &provider.dkim_domains) {
        return Err(format!("not aligned with the From domain {}", quote(&from_domain)));
    }
    if let Some(name) = unsigned_copy(signature, message) {
        return Err(format!("the message has a {} header the signature does not cover", quote(&name)));
    }
    if let Some(parsed) = &email.from
        && !parsed.address.trim().eq_ignore_ascii_case(from)
    {
        return Err(format!("the parsed From {} is not the signed From {}", quote(&parsed.address), quote(from)));
    }
    if !domain::sender_permitted(from, &provider.senders) {
        return Err(format!("From {} is not among the provider's senders", quote(from)));
    }
    let signed_headers: Vec<&str> = signature.h.iter().map(|h| h.trim()).collect();
    if !signed.recipients.is_empty() && addressed_to(signed.raw, signed.recipients, &signed_headers).is_none() {
        return Err("no signed To or Cc names one of trust.recipients (not sent to this vendor)".to_owned());
    }
    Ok(())
}

/// A signed header that appears more often than it is signed: the verifier checks the bottom copy, a mail
/// reader shows the top one, so an added copy (a second Subject, Content-Type...) would go unnoticed.
fn unsigned_copy(signature: &Signature, message: &AuthenticatedMessage<'_>) -> Option<String> {
    signature
        .h
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !TRANSIT_HEADERS.contains(&h.as_str()))
        .find(|h| count_headers(message, h) > signature.h.iter().filter(|s| s.trim().eq_ignore_ascii_case(h)).count())
}

fn count_headers(message: &AuthenticatedMessage<'_>, name: &str) -> usize {
    message.headers.iter().filter(|(n, _)| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes())).count()
}

fn describe(result: &DkimResult, signature: &Signature) -> String {
    use mail_auth::dkim::DkimError;
    use mail_auth::{DnsError, Error};
    let err = match result {
        DkimResult::Fail(err) | DkimResult::Neutral(err) | DkimResult::PermError(err) | DkimResult::TempError(err) => {
            err
        }
        DkimResult::Pass | DkimResult::None => return quote(&result.to_string()),
    };
    match err {
        Error::Dkim(DkimError::FailedBodyHashMatch) => "the body was changed after signing".to_owned(),
        Error::Crypto(_) => "the signature does not match the signed headers".to_owned(),
        Error::Dns(DnsError::RecordNotFound(_)) => format!(
            "no public key for {} (not pinned{})",
            quote(&record_name(&signature.s, &signature.d)),
            if matches!(result, DkimResult::PermError(_)) { ", not in DNS" } else { "" }
        ),
        Error::Dns(DnsError::Resolver(_)) => "DNS lookup of the key failed (temporary)".to_owned(),
        other => quote(&format!("{} ({other})", result_name(result))),
    }
}

fn result_name(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_byte_key_is_ed25519_and_garbage_is_refused() {
        assert!(parse_pinned_key(&data_encoding::BASE64.encode(&[7u8; 32])).is_ok());
        assert_eq!(parse_pinned_key("not base64!").err(), Some(KeyError::Base64));
        assert_eq!(parse_pinned_key(&data_encoding::BASE64.encode(b"short")).err(), Some(KeyError::NotAKey));
    }

    #[test]
    fn with_dns_off_an_unpinned_name_is_answered_not_found_without_a_lookup() {
        let config = TrustConfig { dns: false, ..TrustConfig::default() };
        let store = KeyStore::new(&config).unwrap();
        assert!(matches!(store.get("s._domainkey.example.com."), Some(Txt::Error(_))));
        let store = KeyStore::new(&TrustConfig::default()).unwrap();
        assert!(store.get("s._domainkey.example.com.").is_none());
    }

    #[test]
    fn a_key_lookup_that_fails_for_now_is_a_temporary_refusal() {
        let mut store = KeyStore::new(&TrustConfig::default()).unwrap();
        store.dns_down = true;
        let Some(Txt::Error(err)) = store.get("s._domainkey.example.com.") else { panic!("no simulated failure") };
        // mail-auth turns exactly this error into a temperror result; keypost turns that into a retry.
        assert!(matches!(DkimResult::from(err), DkimResult::TempError(_)));
        let refusal = |temporary| DkimRefusal::NoneAccepted { problems: String::new(), temporary };
        assert!(refusal(true).is_temporary());
        assert!(!refusal(false).is_temporary());
        assert!(!DkimRefusal::NoSignature.is_temporary());
    }

    #[test]
    fn record_names_are_lower_case_and_fully_qualified() {
        assert_eq!(record_name("Sel", "PayPal.com."), "sel._domainkey.paypal.com.");
    }
}
