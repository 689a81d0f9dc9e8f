//! Unit tests of the policy that need no signature: configuration checks, the startup description, the
//! sender-only opt-in, and that no input makes `check` panic. Signed messages are in tests/integration/trust.rs.
use proptest::prelude::*;

use super::*;
use crate::email::{Address, Forward};

fn paypal() -> ProviderTrust {
    ProviderTrust {
        provider: "paypal".into(),
        dkim_domains: vec!["paypal.com".into()],
        senders: vec!["service@paypal.com".into()],
        read_headers: Vec::new(),
    }
}

fn email(from: &str) -> Email {
    Email {
        message_id: None,
        from: Some(Address { name: None, address: from.into() }),
        subject: "Order".into(),
        date: None,
        text: String::new(),
        forwarded: None,
        attached_original: None,
        authentication_results: Vec::new(),
        content_hash: String::new(),
        ..Email::default()
    }
}

fn offline(sender_only: &[&str]) -> TrustConfig {
    TrustConfig {
        authserv_id: Some("mx.vendor.example".into()),
        dns: false,
        pinned_keys: Vec::new(),
        sender_only: sender_only.iter().map(|s| (*s).to_owned()).collect(),
        ..TrustConfig::default()
    }
}

/// [`offline`] bound to the vendor's addresses and forwarders, so no gap warning is left.
fn bound(sender_only: &[&str]) -> TrustConfig {
    TrustConfig {
        recipients: vec!["@vendor.example".into()],
        forwarders: vec!["vendor@vendor.example".into()],
        ..offline(sender_only)
    }
}

fn problems(config: &TrustConfig) -> Vec<String> {
    let mut problems = Problems::new("keypost.toml");
    config.validate(&mut problems);
    problems.items().iter().map(|p| format!("{:?} {} {}", p.severity, p.key, p.message)).collect()
}

#[test]
fn validate_reports_every_bad_pinned_key_field_and_an_empty_authserv_id() {
    let config = TrustConfig {
        authserv_id: Some(" ".into()),
        dns: true,
        pinned_keys: vec![
            PinnedKey { domain: "paypal".into(), selector: "a b".into(), public_key: "%%%".into() },
            PinnedKey { domain: "paypal.com".into(), selector: "s1".into(), public_key: "AAAA".into() },
        ],
        sender_only: vec!["pay pal".into()],
        recipients: vec!["sales@".into(), "@vendor.example".into()],
        accept_any_recipient: false,
        forwarders: vec!["Vendor <v@vendor.example>".into()],
        retry_hours: 0,
    };
    let found = problems(&config);
    for expected in [
        "Error trust.authserv_id",
        "Error trust.pinned_keys[0].domain",
        "Error trust.pinned_keys[0].selector",
        "Error trust.pinned_keys[0].public_key",
        "Error trust.pinned_keys[1].public_key",
        "Error trust.sender_only[0]",
        "Error trust.recipients[0]",
        "Error trust.forwarders[0]",
        "Error trust.retry_hours",
    ] {
        assert!(found.iter().any(|p| p.starts_with(expected)), "{expected} missing from {found:#?}");
    }
}

#[test]
fn a_sender_only_provider_is_a_warning_not_an_error() {
    let found = problems(&bound(&["paypal"]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("Warning trust.sender_only[0]"));
}

#[test]
fn a_pinned_key_appearing_twice_is_an_error() {
    let key = PinnedKey {
        domain: "paypal.com".into(),
        selector: "s1".into(),
        public_key: data_encoding::BASE64.encode(&[1u8; 32]),
    };
    let config = TrustConfig { pinned_keys: vec![key.clone(), key], ..bound(&[]) };
    let config = TrustConfig { dns: true, ..config };
    assert_eq!(problems(&config), ["Error trust.pinned_keys[1] s1._domainkey.paypal.com is pinned twice"]);
}

#[test]
fn unset_forwarders_are_warned_about() {
    let found = problems(&offline(&["paypal"]));
    assert!(found.iter().any(|p| p.starts_with("Warning trust.forwarders unset while sender_only")), "{found:?}");
    assert!(!problems(&bound(&["paypal"])).iter().any(|p| p.contains("recipients") || p.contains("forwarders")));
}

fn recipient_problems(config: &TrustConfig, reads_orders: bool) -> Vec<String> {
    let mut problems = Problems::new("keypost.toml");
    config.validate(&mut problems);
    config.validate_recipients(reads_orders, &mut problems);
    problems
        .items()
        .iter()
        .filter(|p| p.key.contains("recipient"))
        .map(|p| format!("{:?} {}", p.severity, p.key))
        .collect()
}

#[test]
fn recipients_are_required_to_read_orders_a_dkim_or_authentication_results_provider_can_prove() {
    assert_eq!(recipient_problems(&offline(&[]), true), ["Error trust.recipients"]);
    assert_eq!(recipient_problems(&TrustConfig::default(), true), ["Error trust.recipients"], "DNS on");
    assert_eq!(recipient_problems(&offline(&[]), false), ["Warning trust.recipients"], "no mailbox: the serial tools");
    assert!(recipient_problems(&bound(&[]), true).is_empty());
    // Nothing but sender-only can be trusted: recipients would bind nothing.
    let sender_only = TrustConfig { authserv_id: None, ..offline(&["paypal"]) };
    assert!(recipient_problems(&sender_only, true).is_empty());
}

#[test]
fn accepting_any_recipient_is_an_explicit_opt_out_that_is_warned_about() {
    let opted_out = TrustConfig { accept_any_recipient: true, ..offline(&[]) };
    assert_eq!(recipient_problems(&opted_out, true), ["Warning trust.accept_any_recipient"]);
    let both = TrustConfig { accept_any_recipient: true, ..bound(&[]) };
    assert_eq!(recipient_problems(&both, true), ["Warning trust.accept_any_recipient"]);
}

#[tokio::test]
async fn a_forward_from_someone_not_among_the_forwarders_is_refused_before_anything_else() {
    let mut forwarded = email("service@paypal.com");
    forwarded.forwarded = Some(Forward {
        by: Some(Address { name: None, address: "stranger@evil.example".into() }),
        style: "gmail".into(),
    });
    let raw = b"From: stranger@evil.example\r\nSubject: Fwd: x\r\n\r\nbody\r\n";
    let verifier = Verifier::new(&bound(&["paypal"])).unwrap();
    let Verdict::Refused { reason } = verifier.check(raw, &forwarded, &paypal()).await else {
        panic!("trusted a forward from a stranger")
    };
    assert_eq!(reason, "forwarded by stranger@evil.example, who is not among trust.forwarders");
    forwarded.forwarded = Some(Forward {
        by: Some(Address { name: None, address: "Vendor@Vendor.example".into() }),
        style: "gmail".into(),
    });
    assert!(verifier.check(raw, &forwarded, &paypal()).await.is_trusted());
}

#[test]
fn verifier_builds_outside_an_async_runtime_with_dns_on_or_off() {
    assert!(Verifier::new(&offline(&[])).is_ok());
    // Reads the system resolver configuration but sends nothing.
    assert!(Verifier::new(&TrustConfig::default()).is_ok());
}

#[tokio::test]
async fn describe_names_each_weak_provider_and_the_key_sources() {
    let verifier = Verifier::new(&offline(&["gumroad", "paypal"])).unwrap();
    let text = verifier.describe();
    assert!(text.contains("pinned key(s) only (DNS off)"), "{text}");
    assert!(text.contains("WEAK sender-only providers: gumroad, paypal"), "{text}");
    assert!(text.contains("orders NOT bound to recipients; forwards from anyone"), "{text}");
    assert_eq!(verifier.weak_providers(), ["gumroad", "paypal"]);
}

#[tokio::test]
async fn sender_only_still_requires_a_listed_sender() {
    let verifier = Verifier::new(&offline(&["paypal"])).unwrap();
    let raw = b"From: service@paypal.com\r\n\r\nbody\r\n";
    let trusted = verifier.check(raw, &email("service@paypal.com"), &paypal()).await;
    assert!(trusted.is_trusted(), "{trusted:?}");
    let forged = verifier.check(raw, &email("other@paypal.com"), &paypal()).await;
    assert!(!forged.is_trusted(), "{forged:?}");
}

#[tokio::test]
async fn an_unsigned_message_is_refused_with_every_reason_listed() {
    let verifier = Verifier::new(&offline(&[])).unwrap();
    let verdict =
        verifier.check(b"From: service@paypal.com\r\n\r\nbody\r\n", &email("service@paypal.com"), &paypal()).await;
    let Verdict::Refused { reason } = verdict else { panic!("trusted an unsigned message") };
    assert!(reason.contains("DKIM (message): no DKIM signature"), "{reason}");
    assert!(reason.contains("no Authentication-Results header from mx.vendor.example"), "{reason}");
    assert!(reason.contains("sender-only: not enabled for provider paypal"), "{reason}");
}

#[tokio::test]
async fn an_inline_forward_is_refused_unless_the_provider_is_sender_only() {
    let mut forwarded = email("service@paypal.com");
    forwarded.forwarded = Some(Forward { by: None, style: "gmail".into() });
    let raw = b"From: vendor@example.org\r\n\r\n---------- Forwarded message ---------\r\n";
    let strict = Verifier::new(&offline(&[])).unwrap().check(raw, &forwarded, &paypal()).await;
    let Verdict::Refused { reason } = strict else { panic!("trusted an inline forward") };
    assert!(reason.contains("inline forward"), "{reason}");
    let weak = Verifier::new(&offline(&["paypal"])).unwrap().check(raw, &forwarded, &paypal()).await;
    assert!(weak.is_trusted(), "{weak:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_through_check_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 0..2048),
        prefix in prop::sample::select(vec![
            "", "DKIM-Signature: v=1; a=rsa-sha256; d=paypal.com; s=s; h=from; bh=; b=\r\n",
            "Authentication-Results: mx.vendor.example; dkim=pass header.d=paypal.com\r\nFrom: a@paypal.com\r\n",
        ]),
        as_attachment in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let verifier = runtime.block_on(async { Verifier::new(&offline(&["paypal"])).unwrap() });
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(&raw);
        let mut parsed = email("service@paypal.com");
        if as_attachment {
            parsed.attached_original = Some(bytes.clone());
        }
        let verdict = runtime.block_on(verifier.check(&bytes, &parsed, &paypal()));
        if let Verdict::Refused { reason } = verdict {
            prop_assert!(!reason.chars().any(crate::order::is_forbidden_char));
        }
    }
}
