//! Authenticity: did this order email really come from its provider? The trust issue implements the checks;
//! this is the interface the pipeline calls.
use serde::Deserialize;

use crate::config::Problems;
use crate::email::Email;

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
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self { authserv_id: None, dns: true, pinned_keys: Vec::new(), sender_only: Vec::new() }
    }
}

fn default_true() -> bool {
    true
}

/// `{ domain = "paypal.com", selector = "pp-dkim1", public_key = "MIIBIjAN..." }` (the DNS record's `p=`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedKey {
    pub domain: String,
    pub selector: String,
    pub public_key: String,
}

impl TrustConfig {
    pub fn validate(&self, _problems: &mut Problems) {}
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
}

/// The outcome of the authenticity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proven, and how (e.g. `dkim d=paypal.com`).
    Trusted { method: String },
    /// Not proven; never fulfilled.
    Refused { reason: String },
}

/// Checks messages against the configured trust policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    config: TrustConfig,
}

impl Verifier {
    pub fn new(config: &TrustConfig) -> anyhow::Result<Self> {
        Ok(Self { config: config.clone() })
    }

    /// `raw` is the message as received; `email` its parse. Placeholder until the trust issue lands: only the
    /// explicit sender-only opt-in is honoured; everything else is refused.
    pub async fn check(&self, _raw: &[u8], _email: &Email, provider: &ProviderTrust) -> Verdict {
        if self.config.sender_only.iter().any(|p| p == &provider.provider) {
            Verdict::Trusted { method: "sender address only (weak)".to_owned() }
        } else {
            Verdict::Refused { reason: "no DKIM verification available yet".to_owned() }
        }
    }
}
