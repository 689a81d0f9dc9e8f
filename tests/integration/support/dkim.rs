//! A DKIM signer with a fresh Ed25519 key, whose public half a test pins in keypost's `[trust]`.
use keypost::trust::PinnedKey;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

const SIGNED_HEADERS: [&str; 7] = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"];

/// A signing key for one `d=` and selector.
pub struct TestSigner {
    pkcs8: Vec<u8>,
    pub domain: &'static str,
    pub selector: &'static str,
}

impl TestSigner {
    pub fn new(domain: &'static str, selector: &'static str) -> Self {
        Self { pkcs8: Ed25519Key::generate_pkcs8().unwrap(), domain, selector }
    }

    fn key(&self) -> Ed25519Key {
        Ed25519Key::from_pkcs8_der(&self.pkcs8).unwrap()
    }

    pub fn pinned(&self) -> PinnedKey {
        PinnedKey {
            domain: self.domain.into(),
            selector: self.selector.into(),
            public_key: data_encoding::BASE64.encode(&self.key().public_key()),
        }
    }

    /// The `[[trust.pinned_keys]]` entry as TOML.
    pub fn pinned_toml(&self) -> String {
        let key = self.pinned();
        format!(
            "[[trust.pinned_keys]]\ndomain = \"{}\"\nselector = \"{}\"\npublic_key = \"{}\"\n",
            key.domain, key.selector, key.public_key
        )
    }

    /// The message with a DKIM-Signature header on top.
    pub fn sign(&self, message: &str) -> String {
        self.sign_with(message, false)
    }

    /// `with_length` adds `l=` (the body length at signing time).
    pub fn sign_with(&self, message: &str, with_length: bool) -> String {
        self.sign_headers(message, &SIGNED_HEADERS, with_length)
    }

    /// Signs only `headers` (the signature's `h=`).
    pub fn sign_headers(&self, message: &str, headers: &[&str], with_length: bool) -> String {
        let signature = DkimSigner::from_key(self.key())
            .domain(self.domain)
            .selector(self.selector)
            .headers(headers.iter().copied())
            .body_length(with_length)
            .sign(message.as_bytes())
            .unwrap();
        format!("{}{message}", signature.to_header())
    }
}
