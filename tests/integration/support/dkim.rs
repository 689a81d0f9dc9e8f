//! A DKIM signer whose public half a test pins in keypost's `[trust]`: a fresh Ed25519 key, or an RSA-2048 key
//! made by openssl at test time and signing rsa-sha256, relaxed/relaxed, as providers sign.
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use keypost::trust::PinnedKey;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const SIGNED_HEADERS: [&str; 7] = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"];

/// The private key (PKCS#8 DER) and the public key as DNS publishes it (`p=`: Ed25519 raw, RSA SubjectPublicKeyInfo).
enum Kind {
    Ed25519(Vec<u8>),
    Rsa { pkcs8: &'static [u8], spki: &'static [u8] },
}

/// A signing key for one `d=` and selector.
pub struct TestSigner {
    kind: Kind,
    pub domain: &'static str,
    pub selector: &'static str,
}

/// PKCS#8 private key and SubjectPublicKeyInfo public key, both DER.
type KeyPair = (Vec<u8>, Vec<u8>);

/// One RSA-2048 key per signing domain and test process (openssl takes a moment to make one), as PKCS#8 and
/// SPKI DER. Distinct domains get distinct keys, so one domain's key never verifies another's signature.
fn rsa_key(domain: &str) -> &'static KeyPair {
    static KEYS: OnceLock<Mutex<HashMap<String, &'static KeyPair>>> = OnceLock::new();
    let mut keys = KEYS.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    keys.entry(domain.to_owned()).or_insert_with(|| {
        // openssl 3.0 writes DER keys from genpkey as PKCS#1; DKIM signers load PKCS#8.
        let pkcs1 =
            openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-outform", "DER"], b"");
        let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-outform", "DER"], &pkcs1);
        let spki = openssl(&["pkey", "-inform", "DER", "-pubout", "-outform", "DER"], &pkcs8);
        Box::leak(Box::new((pkcs8, spki)))
    })
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl (Debian package openssl) is needed to make the RSA test key");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?} failed");
    output.stdout
}

impl TestSigner {
    /// A fresh Ed25519 key.
    pub fn new(domain: &'static str, selector: &'static str) -> Self {
        Self { kind: Kind::Ed25519(Ed25519Key::generate_pkcs8().unwrap()), domain, selector }
    }

    /// The process's RSA-2048 key for `domain` (rsa-sha256), as providers sign.
    pub fn rsa(domain: &'static str, selector: &'static str) -> Self {
        let (pkcs8, spki) = rsa_key(domain);
        Self { kind: Kind::Rsa { pkcs8: pkcs8.as_slice(), spki: spki.as_slice() }, domain, selector }
    }

    fn key(&self) -> DkimKey {
        match &self.kind {
            Kind::Ed25519(pkcs8) => Ed25519Key::from_pkcs8_der(pkcs8).unwrap().into(),
            Kind::Rsa { pkcs8, .. } => {
                let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
                RsaKey::<Sha256>::from_key_der(der).unwrap().into()
            }
        }
    }

    pub fn pinned(&self) -> PinnedKey {
        let public = match &self.kind {
            Kind::Ed25519(pkcs8) => Ed25519Key::from_pkcs8_der(pkcs8).unwrap().public_key(),
            Kind::Rsa { spki, .. } => spki.to_vec(),
        };
        PinnedKey {
            domain: self.domain.into(),
            selector: self.selector.into(),
            public_key: data_encoding::BASE64.encode(&public),
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
