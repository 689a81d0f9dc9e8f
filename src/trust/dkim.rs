//! DKIM: verify the provider's signature with mail-auth, then apply keypost's own rules on top of a
//! cryptographic pass (`signed::check_coverage`: provider domain, alignment, From and Subject signed, no `l=`,
//! no unsigned copy of a header that is read).
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

use super::domain::{self, quote};
use super::signed::{self, Context, MessageRefusal};
use super::{ProviderTrust, TrustConfig};

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
    #[error("{0}")]
    Message(MessageRefusal),
    #[error("no DKIM signature")]
    NoSignature,
    #[error("no acceptable signature: {problems}")]
    NoneAccepted {
        problems: String,
        /// A provider signature could not be checked because its key lookup failed temporarily (DNS).
        temporary: bool,
        /// keypost checked a provider signature with its key: its verdict is final.
        checked: bool,
    },
}

impl DkimRefusal {
    /// True when trying again later may succeed: a provider key could not be looked up for now.
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self, DkimRefusal::NoneAccepted { temporary: true, .. })
    }

    /// True when keypost reached its own verdict on a provider signature, or the message itself is refused
    /// whatever its signatures say: no other rule may overturn it.
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, DkimRefusal::Message(_) | DkimRefusal::NoneAccepted { checked: true, .. })
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

/// Verifies `raw` (the message, or the original attached to a forward) and returns the method and the digests of
/// the provider's signatures that verified: the one that passed keypost's rules first, then every other one, so
/// that a copy carrying only one of them is known again (`store/seen.rs`).
/// On top of mail-auth's cryptographic verdict the rules of [`signed::check_coverage`] apply.
pub(crate) async fn verify(
    authenticator: &MessageAuthenticator,
    keys: &KeyStore,
    raw: &[u8],
    context: &Context<'_>,
) -> Result<(String, Vec<String>), DkimRefusal> {
    let mut signed = signed::open(raw).map_err(DkimRefusal::Message)?;
    if signed.message.dkim_headers.is_empty() && !signed.message.has_dkim_errors {
        return Err(DkimRefusal::NoSignature);
    }
    let mut problems = keep_provider_signatures(&mut signed.message, context.provider);
    let outputs = authenticator.verify_dkim(Parameters::new(&signed.message).with_txt_cache(keys)).await;
    let (mut temporary, mut checked) = (false, false);
    let mut accepted: Option<(String, String)> = None;
    let mut verified = Vec::new();
    for output in &outputs {
        let Some(signature) = output.signature() else {
            problems.push(format!("malformed signature ({})", quote(&output.result().to_string())));
            continue;
        };
        temporary |= matches!(output.result(), DkimResult::TempError(_));
        checked |= keypost_checked(output.result());
        let d = quote(&signature.d);
        let verdict = match output.result() {
            DkimResult::Pass => {
                verified.push(signed::digest(signature));
                signed::check_coverage(signature, &signed, context)
            }
            other => Err(describe(other, signature)),
        };
        match verdict {
            Ok(()) if accepted.is_none() => accepted = Some((format!("dkim d={d}"), signed::digest(signature))),
            Ok(()) => {}
            Err(problem) => problems.push(format!("d={d}: {problem}")),
        }
    }
    match accepted {
        Some((method, first)) => {
            let others: Vec<String> = verified.into_iter().filter(|digest| *digest != first).collect();
            let mut digests = vec![first];
            digests.extend(others);
            Ok((method, digests))
        }
        None => Err(DkimRefusal::NoneAccepted { problems: problems.join(", "), temporary, checked }),
    }
}

/// keypost had the key and reached a verdict of its own: anything but a key that could not be found or
/// looked up. Such a verdict is final; the vendor's Authentication-Results are not asked.
fn keypost_checked(result: &DkimResult) -> bool {
    use mail_auth::{DnsError, Error};
    match result {
        DkimResult::None | DkimResult::TempError(_) => false,
        DkimResult::PermError(Error::Dns(DnsError::RecordNotFound(_))) => false,
        DkimResult::Pass | DkimResult::Fail(_) | DkimResult::Neutral(_) | DkimResult::PermError(_) => true,
    }
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
        let refusal = |temporary| DkimRefusal::NoneAccepted { problems: String::new(), temporary, checked: false };
        assert!(refusal(true).is_temporary());
        assert!(!refusal(false).is_temporary());
        assert!(!DkimRefusal::NoSignature.is_temporary());
    }

    #[test]
    fn record_names_are_lower_case_and_fully_qualified() {
        assert_eq!(record_name("Sel", "PayPal.com."), "sel._domainkey.paypal.com.");
    }
}
