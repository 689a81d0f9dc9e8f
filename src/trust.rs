//! Authenticity: did this order email really come from its provider? Policy per provider, strongest first:
//! the provider's own DKIM signature, the vendor's receiving server's Authentication-Results, and (only as an
//! explicit, logged opt-in) the sender address alone. No I/O except DKIM key lookups in DNS when `dns = true`.
//!
//! Everything here reads untrusted mail: nothing is unwrapped or indexed, and text copied from a mail into a
//! refusal reason is stripped of control characters and cut short. The threat model is in `docs/security.md`.
use std::sync::Arc;

use serde::Deserialize;

use crate::email::Email;
use crate::problems::Problems;

mod auth_results;
mod binding;
pub mod buyer;
mod dkim;
mod domain;
mod signed;

/// `[trust]`.
#[derive(Debug, Clone, Deserialize)]
pub struct TrustConfig {
    /// The authserv-id of the vendor's own receiving server (RFC 8601). When set, the topmost
    /// Authentication-Results header carrying it is believed for dkim=pass.
    #[serde(default)]
    pub authserv_id: Option<String>,
    /// Look DKIM public keys up in DNS (production). Pinned keys are used first.
    #[serde(default = "default_true")]
    pub dns: bool,
    /// DKIM public keys pinned in the configuration, for a selector whose DNS record should not be trusted
    /// or cannot be reached (the tests use these).
    #[serde(default)]
    pub pinned_keys: Vec<PinnedKey>,
    /// Providers (template ids) whose mail is accepted on the sender address alone. Weak: anyone can forge a
    /// From line. An explicit opt-in, logged at start.
    #[serde(default)]
    pub sender_only: Vec<String>,
    /// Where the vendor receives orders: addresses (`sales@vendor.example`) or whole domains
    /// (`@vendor.example`). When set, a DKIM-verified order (or the original attached to a forward) must have
    /// a signed To or Cc naming one of them, so another seller's genuine sale, forwarded or redirected here,
    /// is refused. Required when orders are read from a mailbox and DKIM or Authentication-Results can prove
    /// them, unless `accept_any_recipient = true`.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// The explicit opt-out of `recipients`: any seller's genuine order from the same provider, forwarded or
    /// redirected here, is fulfilled. Logged as a warning at every start and by `keypost check`.
    #[serde(default)]
    pub accept_any_recipient: bool,
    /// Who may forward orders: addresses or `@domain`s matched against a forward's outer From. When set, a
    /// forwarded order (attachment or inline) from anyone else is refused. The outer From is not signed:
    /// for an inline forward of a `sender_only` provider it is the only check there is.
    #[serde(default)]
    pub forwarders: Vec<String>,
    /// Hours a message whose provider key lookup keeps failing temporarily (DNS) is tried again on later
    /// passes before it is set aside with an alert.
    #[serde(default = "default_retry_hours")]
    pub retry_hours: u32,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            authserv_id: None,
            dns: true,
            pinned_keys: Vec::new(),
            sender_only: Vec::new(),
            recipients: Vec::new(),
            accept_any_recipient: false,
            forwarders: Vec::new(),
            retry_hours: default_retry_hours(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_retry_hours() -> u32 {
    24
}

/// `{ domain = "paypal.com", selector = "pp-dkim1", public_key = "MIIBIjAN..." }` (the DNS record's `p=`).
/// A key that decodes to 32 bytes is Ed25519, anything else RSA (SubjectPublicKeyInfo or RSAPublicKey DER).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedKey {
    /// The signing domain, the signature's `d=` (e.g. `paypal.com`).
    pub domain: String,
    /// The selector, the signature's `s=`: the key is `selector._domainkey.domain`.
    pub selector: String,
    /// The DNS record's `p=` value, base64. Public by nature, never a secret.
    pub public_key: String,
}

impl TrustConfig {
    /// Checks the section; the lead's cross-check makes sure each `sender_only` id names a template.
    pub fn validate(&self, problems: &mut Problems) {
        if let Some(id) = &self.authserv_id
            && let Err(message) = domain::check_authserv_id(id)
        {
            problems.error("trust.authserv_id", message);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, key) in self.pinned_keys.iter().enumerate() {
            let at = format!("trust.pinned_keys[{index}]");
            if !domain::looks_like_domain(&key.domain) {
                problems.error(format!("{at}.domain"), format!("{:?} is not a domain name", key.domain));
            }
            if !domain::looks_like_selector(&key.selector) {
                problems.error(format!("{at}.selector"), format!("{:?} is not a DKIM selector", key.selector));
            }
            if let Err(err) = dkim::parse_pinned_key(&key.public_key) {
                problems.error(format!("{at}.public_key"), err);
            }
            if !seen.insert(dkim::record_name(&key.selector, &key.domain)) {
                problems.error(at, format!("{}._domainkey.{} is pinned twice", key.selector, key.domain));
            }
        }
        for (index, id) in self.sender_only.iter().enumerate() {
            if domain::looks_like_provider_id(id) {
                problems.warn(format!("trust.sender_only[{index}]"), weak_warning(id));
            } else {
                problems.error(format!("trust.sender_only[{index}]"), format!("{id:?} is not a template id"));
            }
        }
        self.validate_binding(problems);
        if !self.dns && self.pinned_keys.is_empty() && self.authserv_id.is_none() {
            problems.warn(
                "trust",
                "dns = false with no pinned_keys and no authserv_id: only sender_only providers can be trusted",
            );
        }
    }
}

impl TrustConfig {
    /// `recipients` and `forwarders`: each entry an address or `@domain`; warnings where a gap stays open.
    fn validate_binding(&self, problems: &mut Problems) {
        for (key, list) in [("trust.recipients", &self.recipients), ("trust.forwarders", &self.forwarders)] {
            for (index, entry) in list.iter().enumerate() {
                if !domain::looks_like_address_or_domain(entry) {
                    let message = format!("{entry:?} is neither an address nor an @domain");
                    problems.error(format!("{key}[{index}]"), message);
                }
            }
        }
        match (self.recipients.is_empty(), self.accept_any_recipient) {
            (true, true) => problems.warn("trust.accept_any_recipient", UNBOUND),
            (false, true) => problems.warn("trust.accept_any_recipient", "has no effect while recipients is set"),
            _ => {}
        }
        if !self.sender_only.is_empty() && self.forwarders.is_empty() {
            problems.warn(
                "trust.forwarders",
                "unset while sender_only is used: an inline forward from anyone is accepted on the From line it quotes",
            );
        }
        if self.retry_hours == 0 {
            problems.error("trust.retry_hours", "must be at least 1");
        }
    }
}

/// What `accept_any_recipient` (or an unset `recipients`) leaves open.
const UNBOUND: &str = "orders are NOT bound to this vendor: a genuine order another seller received from the same \
                       provider, forwarded or redirected here, is fulfilled";

impl TrustConfig {
    /// True when DKIM or Authentication-Results can prove an order: DNS lookups, a pinned key or an authserv-id.
    fn can_prove_orders(&self) -> bool {
        self.dns || !self.pinned_keys.is_empty() || self.authserv_id.is_some()
    }

    /// `recipients` is required when orders are read (`reads_orders`: a mailbox is configured) and a DKIM or
    /// Authentication-Results provider can be trusted, unless `accept_any_recipient` opts out. Without a
    /// mailbox (the serial tools) it is only a warning.
    pub fn validate_recipients(&self, reads_orders: bool, problems: &mut Problems) {
        if !self.recipients.is_empty() || self.accept_any_recipient || !self.can_prove_orders() {
            return;
        }
        let message = format!(
            "unset: {UNBOUND}; list the addresses you receive orders at (e.g. [\"@vendor.example\"]), or set \
             trust.accept_any_recipient = true to accept that"
        );
        if reads_orders {
            problems.error("trust.recipients", message)
        } else {
            problems.warn("trust.recipients", message)
        }
    }
}

fn weak_warning(provider: &str) -> String {
    format!("provider {provider:?} is trusted on its sender address alone; anyone can forge a From line")
}

/// What a provider's template says about who may send its mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderTrust {
    /// The template id, e.g. `paypal`.
    pub provider: String,
    /// Domains whose DKIM signature (`d=`) proves a message is the provider's.
    pub dkim_domains: Vec<String>,
    /// Sender addresses or `@domain`s the template recognises.
    pub senders: Vec<String>,
    /// Headers the template reads a field from (`header:NAME`), lower case. Each copy in the message must be
    /// signed, Message-ID excepted (see `signed::SINGLE_HEADERS`).
    pub read_headers: Vec<String>,
}

/// The outcome of the authenticity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proven, and how (e.g. `dkim d=paypal.com`). `signatures`: the SHA-256 (hex) of the `b=` of each provider
    /// signature that proved it (none for `sender_only`): only the provider can make one, so the daemon knows the
    /// same mail again by it, whatever unsigned headers were changed.
    Trusted { method: String, signatures: Vec<String> },
    /// Not proven; never fulfilled.
    Refused { reason: String },
    /// Not proven yet: a provider key could not be looked up for now (DNS). Nothing is final; try again later.
    Retry { reason: String },
}

impl Verdict {
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted { .. })
    }
}

/// Checks messages against the configured trust policy. Cheap to clone (the key store is shared).
#[derive(Clone)]
pub struct Verifier {
    config: TrustConfig,
    keys: Arc<dkim::KeyStore>,
    authenticator: Arc<mail_auth::MessageAuthenticator>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds the verifier and logs its policy. Fails on a pinned key that does not parse or (with `dns = true`)
    /// a system resolver configuration it cannot read. Weak settings (`sender_only`, `accept_any_recipient`) are
    /// configuration warnings ([`TrustConfig::validate`]): the daemon lists them once at start, `keypost check`
    /// always, other commands count them; logging them here again only repeated them.
    pub fn new(config: &TrustConfig) -> anyhow::Result<Self> {
        let keys = dkim::KeyStore::new(config)?;
        let authenticator = dkim::authenticator(config.dns)?;
        let verifier = Self { config: config.clone(), keys: Arc::new(keys), authenticator: Arc::new(authenticator) };
        tracing::info!(policy = %verifier.describe(), "Trust policy loaded.");
        Ok(verifier)
    }

    /// For tests of the retry path: as [`Verifier::new`], but every key that is not pinned answers with a
    /// temporary DNS failure, as during an outage. keypost itself never calls this.
    #[doc(hidden)]
    pub fn with_dns_down(config: &TrustConfig) -> anyhow::Result<Self> {
        let mut keys = dkim::KeyStore::new(config)?;
        keys.dns_down = true;
        let authenticator = dkim::authenticator(false)?;
        Ok(Self { config: config.clone(), keys: Arc::new(keys), authenticator: Arc::new(authenticator) })
    }

    /// One line on the policy, for the startup log and `keypost check`: key sources, the authserv-id, and
    /// every weak (sender-only) provider.
    pub fn describe(&self) -> String {
        let keys = match (self.config.dns, self.config.pinned_keys.len()) {
            (true, 0) => "DKIM keys from DNS".to_owned(),
            (true, n) => format!("DKIM keys from {n} pinned key(s), then DNS"),
            (false, n) => format!("DKIM keys from {n} pinned key(s) only (DNS off)"),
        };
        let authserv = match &self.config.authserv_id {
            Some(id) => format!("Authentication-Results of {id:?} believed"),
            None => "no Authentication-Results believed".to_owned(),
        };
        let weak = if self.config.sender_only.is_empty() {
            "no sender-only providers".to_owned()
        } else {
            format!("WEAK sender-only providers: {}", self.config.sender_only.join(", "))
        };
        let bound = match self.config.recipients.is_empty() {
            true => "orders NOT bound to recipients".to_owned(),
            false => format!("orders bound to {}", self.config.recipients.join(", ")),
        };
        let forwards = match self.config.forwarders.is_empty() {
            true => "forwards from anyone".to_owned(),
            false => format!("forwards only from {}", self.config.forwarders.join(", ")),
        };
        format!("{keys}; {authserv}; {weak}; {bound}; {forwards}")
    }

    /// The providers accepted on their sender address alone.
    pub fn weak_providers(&self) -> &[String] {
        &self.config.sender_only
    }

    /// `raw` is the message as received; `email` its parse. A forward must come from one of `forwarders`
    /// when that is set. Then tries, in order: the provider's DKIM signature (on `raw`, or on
    /// `email.attached_original` for a forward as attachment), the vendor's Authentication-Results (direct
    /// delivery only, and only when keypost could not reach a verdict on a provider signature itself: with the
    /// key at hand its verdict is final), the sender-only opt-in. A refusal lists why each failed; when nothing passed but a
    /// provider key could not be looked up for now, the verdict is [`Verdict::Retry`].
    #[tracing::instrument(skip_all, fields(provider = %provider.provider))]
    pub async fn check(&self, raw: &[u8], email: &Email, provider: &ProviderTrust) -> Verdict {
        if let Err(reason) = binding::forwarder_allowed(email, &self.config.forwarders) {
            return Verdict::Refused { reason: domain::sanitize(&reason) };
        }
        let context = signed::Context { email, provider, recipients: &self.config.recipients };
        let (mut temporary, mut settled) = (false, false);
        let mut reasons = Vec::new();
        let inline_forward = email.attached_original.is_none() && email.forwarded.is_some();
        if inline_forward {
            reasons.push("inline forward: the provider's signature did not survive it".to_owned());
        } else {
            let (signed, what) = match email.attached_original.as_deref() {
                Some(original) => (original, "attached original"),
                None => (raw, "message"),
            };
            match dkim::verify(&self.authenticator, &self.keys, signed, &context).await {
                Ok((method, signatures)) => return Verdict::Trusted { method, signatures },
                Err(err) => {
                    (temporary, settled) = (err.is_temporary(), err.is_final());
                    reasons.push(format!("DKIM ({what}): {err}"));
                }
            }
        }
        match (&self.config.authserv_id, email.attached_original.is_some() || inline_forward) {
            (None, _) => {}
            (Some(_), true) => reasons.push("Authentication-Results: not applicable to a forward".to_owned()),
            (Some(_), false) if settled => reasons.push(
                "Authentication-Results: not consulted, keypost checked the provider's signature itself".to_owned(),
            ),
            (Some(id), false) => match auth_results::verify(raw, id, &context) {
                Ok((method, signatures)) => return Verdict::Trusted { method, signatures },
                Err(err) => reasons.push(format!("Authentication-Results: {err}")),
            },
        }
        match self.sender_only(email, provider) {
            Ok(method) => Verdict::Trusted { method, signatures: Vec::new() },
            Err(reason) => {
                reasons.push(reason);
                let reason = domain::sanitize(&reasons.join("; "));
                if temporary { Verdict::Retry { reason } } else { Verdict::Refused { reason } }
            }
        }
    }

    fn sender_only(&self, email: &Email, provider: &ProviderTrust) -> Result<String, String> {
        if !self.config.sender_only.iter().any(|p| p == &provider.provider) {
            return Err(format!("sender-only: not enabled for provider {}", provider.provider));
        }
        let Some(from) = email.from.as_ref().map(|a| a.address.as_str()) else {
            return Err("sender-only: the message has no From address".to_owned());
        };
        if domain::sender_allowed(from, &provider.senders) {
            Ok(format!("sender address only (weak): {}", domain::address_domain(from).unwrap_or_default()))
        } else {
            Err(format!("sender-only: From {from} is not among the provider's senders"))
        }
    }
}

#[cfg(test)]
mod tests;
