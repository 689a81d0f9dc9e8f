//! Integration tests: trust. Order emails are signed inside each test with an RSA-2048 key made by openssl at
//! test time (rsa-sha256, relaxed/relaxed, as providers sign), whose public half is pinned in the configuration,
//! with DNS off: no test touches the network. `binding`: recipients, forwarders, the signed Subject and DNS
//! failures; `parsed`: real bytes through `email::parse`; `attacks`: forged and re-sent orders on the DKIM and
//! the Authentication-Results paths; `orderings`: extra header copies at any position (property tests).
use keypost::email::{Address, Email, Forward};
use keypost::trust::{ProviderTrust, TrustConfig, Verdict, Verifier};

use crate::support::TestSigner;

mod attacks;
mod binding;
mod flood;
mod headers;
mod orderings;
mod parsed;
mod peer;
mod replay;
mod serials;
mod servers;

/// The shared test signer: RSA-2048, one key per domain, every key under selector `s1`.
fn signer(domain: &'static str) -> TestSigner {
    TestSigner::rsa(domain, "s1")
}

fn order_email(from: &str, order_id: &str, amount: &str) -> String {
    format!(
        "From: PayPal <{from}>\r\nTo: vendor@example.org\r\nSubject: Notification of payment received\r\n\
         Date: Sun, 22 Nov 2026 02:00:00 +0000\r\nMessage-ID: <{order_id}@paypal.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nYou received a payment of {amount} USD from Jo Buyer \
         (jo@buyer.example).\r\nTransaction ID: {order_id}\r\nItem: Acme Pro\r\n"
    )
}

fn paypal() -> ProviderTrust {
    ProviderTrust {
        provider: "paypal".into(),
        dkim_domains: vec!["paypal.com".into()],
        senders: vec!["@paypal.com".into()],
        read_headers: Vec::new(),
    }
}

fn parsed(from: &str) -> Email {
    Email {
        message_id: None,
        from: Some(Address { name: Some("PayPal".into()), address: from.into() }),
        subject: "Notification of payment received".into(),
        date: None,
        text: String::new(),
        forwarded: None,
        attached_original: None,
        authentication_results: Vec::new(),
        content_hash: String::new(),
        ..Email::default()
    }
}

/// Pins every signer's key, DNS off, believes the vendor's `mx.vendor.example`.
fn config(signers: &[&TestSigner]) -> TrustConfig {
    TrustConfig {
        authserv_id: Some("mx.vendor.example".into()),
        dns: false,
        pinned_keys: signers.iter().map(|s| s.pinned()).collect(),
        ..TrustConfig::default()
    }
}

fn verifier(signers: &[&TestSigner]) -> Verifier {
    Verifier::new(&config(signers)).unwrap()
}

async fn check(verifier: &Verifier, raw: &str, email: &Email) -> Verdict {
    verifier.check(raw.as_bytes(), email, &paypal()).await
}

fn refusal(verdict: Verdict) -> String {
    match verdict {
        Verdict::Refused { reason } => reason,
        other => panic!("{other:?} but should have been refused"),
    }
}

const FROM: &str = "service@paypal.com";

#[tokio::test]
async fn order_signed_by_the_provider_is_trusted() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    assert!(raw.contains("a=rsa-sha256") && raw.contains("c=relaxed/relaxed"), "{raw}");
    let verdict = check(&verifier(&[&paypal_key]), &raw, &parsed(FROM)).await;
    assert_eq!(trusted_by(&verdict), "dkim d=paypal.com");
}

#[tokio::test]
async fn signature_by_a_provider_subdomain_aligns_with_the_parent_from_domain() {
    let mail_key = signer("mail.paypal.com");
    let raw = mail_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let verdict = check(&verifier(&[&mail_key]), &raw, &parsed(FROM)).await;
    assert_eq!(trusted_by(&verdict), "dkim d=mail.paypal.com");
}

#[tokio::test]
async fn template_without_senders_relies_on_the_signature_alone() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email("receipts@paypal.com", "8AB12345", "49.00"));
    let provider = ProviderTrust { senders: Vec::new(), ..paypal() };
    let verdict = verifier(&[&paypal_key]).check(raw.as_bytes(), &parsed("receipts@paypal.com"), &provider).await;
    assert!(verdict.is_trusted(), "{verdict:?}");
}

#[tokio::test]
async fn signed_order_from_an_unlisted_sender_of_the_provider_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email("invoices@paypal.com", "8AB12345", "49.00"));
    let provider = ProviderTrust { senders: vec![FROM.into()], ..paypal() };
    let verdict = verifier(&[&paypal_key]).check(raw.as_bytes(), &parsed("invoices@paypal.com"), &provider).await;
    assert!(refusal(verdict).contains("From invoices@paypal.com is not among the provider's senders"));
}

#[tokio::test]
async fn forged_from_line_on_a_signed_order_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email("other@paypal.com", "8AB12345", "49.00"));
    let forged = raw.replace("<other@paypal.com>", &format!("<{FROM}>"));
    let reason = refusal(check(&verifier(&[&paypal_key]), &forged, &parsed(FROM)).await);
    assert!(reason.contains("the signature does not match the signed headers"), "{reason}");
}

#[tokio::test]
async fn second_from_header_added_on_top_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = format!("From: billing@paypal.com\r\n{}", paypal_key.sign(&order_email(FROM, "8AB12345", "49.00")));
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed("billing@paypal.com")).await);
    assert!(reason.contains("exactly one From header"), "{reason}");
}

#[tokio::test]
async fn unsigned_subject_added_on_top_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = format!("Subject: Refund\r\n{}", paypal_key.sign(&order_email(FROM, "8AB12345", "49.00")));
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("a subject header the signature does not cover"), "{reason}");
}

#[tokio::test]
async fn altered_body_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "0.49"));
    let altered = raw.replace("0.49 USD", "49.00 USD");
    let reason = refusal(check(&verifier(&[&paypal_key]), &altered, &parsed(FROM)).await);
    assert!(reason.contains("d=paypal.com: the body was changed after signing"), "{reason}");
}

#[tokio::test]
async fn altered_order_id_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let altered = raw.replace("Transaction ID: 8AB12345", "Transaction ID: 8AB99999");
    assert_ne!(raw, altered);
    let reason = refusal(check(&verifier(&[&paypal_key]), &altered, &parsed(FROM)).await);
    assert!(reason.contains("the body was changed after signing"), "{reason}");
}

#[tokio::test]
async fn d_tag_rewritten_to_the_provider_is_refused() {
    let (paypal_key, evil_key) = (signer("paypal.com"), signer("evil.example"));
    let raw = evil_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let rewritten = raw.replacen("d=evil.example", "d=paypal.com", 1);
    assert_ne!(raw, rewritten);
    let reason = refusal(check(&verifier(&[&paypal_key, &evil_key]), &rewritten, &parsed(FROM)).await);
    assert!(reason.contains("d=paypal.com: the signature does not match"), "{reason}");
}

#[tokio::test]
async fn missing_signature_is_refused() {
    let paypal_key = signer("paypal.com");
    let reason =
        refusal(check(&verifier(&[&paypal_key]), &order_email(FROM, "8AB12345", "49.00"), &parsed(FROM)).await);
    assert!(reason.contains("DKIM (message): no DKIM signature"), "{reason}");
    assert!(reason.contains("no Authentication-Results header from mx.vendor.example"), "{reason}");
}

#[tokio::test]
async fn valid_signature_by_another_domain_is_refused() {
    let evil_key = signer("evil.example");
    let raw = evil_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let reason = refusal(check(&verifier(&[&evil_key]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("d=evil.example: not a DKIM domain of provider paypal"), "{reason}");
}

#[tokio::test]
async fn provider_signature_on_a_from_outside_the_provider_domains_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email("service@paypal.evil.example", "8AB12345", "49.00"));
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed("service@paypal.evil.example")).await);
    assert!(reason.contains("not aligned with the From domain paypal.evil.example"), "{reason}");
}

#[tokio::test]
async fn provider_key_that_is_neither_pinned_nor_looked_up_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let reason = refusal(check(&verifier(&[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("no public key for s1._domainkey.paypal.com."), "{reason}");
}

#[tokio::test]
async fn signature_with_l_shorter_than_the_body_is_refused() {
    let paypal_key = signer("paypal.com");
    let order = order_email(FROM, "8AB12345", "49.00");
    let raw = paypal_key.sign_with(&order, true);
    let signed_len = order.split_once("\r\n\r\n").unwrap().1.len();
    assert!(raw.contains(&format!("l={signed_len};")), "the signer did not add l=: {raw}");
    let appended = format!("{raw}Licensee: Mallory\r\nQuantity: 500\r\n");
    let reason = refusal(check(&verifier(&[&paypal_key]), &appended, &parsed(FROM)).await);
    assert!(reason.contains("(l=)"), "{reason}");
}

#[tokio::test]
async fn signature_with_l_is_refused_even_when_it_covers_the_whole_body() {
    let paypal_key = signer("paypal.com");
    let order = order_email(FROM, "8AB12345", "49.00");
    let raw = paypal_key.sign_with(&order, true);
    let whole = order.split_once("\r\n\r\n").unwrap().1.len();
    assert!(raw.contains(&format!("l={whole};")), "the signer did not add l= for the whole body: {raw}");
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("keypost refuses every l= signature"), "{reason}");
}

#[tokio::test]
async fn order_signed_with_ed25519_is_trusted_too() {
    let paypal_key = TestSigner::new("paypal.com", "s2");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    assert!(raw.contains("a=ed25519-sha256"), "{raw}");
    let verdict = check(&verifier(&[&paypal_key]), &raw, &parsed(FROM)).await;
    assert_eq!(trusted_by(&verdict), "dkim d=paypal.com");
}

#[tokio::test]
async fn parsed_from_that_differs_from_the_signed_from_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed("billing@paypal.com")).await);
    assert!(reason.contains("the parsed From billing@paypal.com is not the signed From"), "{reason}");
}

fn with_results(results: &[&str], message: &str) -> String {
    let headers: String = results.iter().map(|r| format!("Authentication-Results: {r}\r\n")).collect();
    format!("Received: from mx.paypal.com by mx.vendor.example\r\n{headers}{message}")
}

#[tokio::test]
async fn topmost_authentication_results_of_the_vendor_with_dkim_pass_is_trusted() {
    // Signed with a key keypost does not have (not pinned, DNS off): the vendor's server checked it.
    let raw = with_results(
        &["mx.vendor.example; dkim=pass (good signature) header.d=paypal.com header.s=s1; spf=pass"],
        &signer("paypal.com").sign(&order_email(FROM, "8AB12345", "49.00")),
    );
    let verdict = check(&verifier(&[]), &raw, &parsed(FROM)).await;
    assert_eq!(trusted_by(&verdict), "authentication-results mx.vendor.example: dkim=pass header.d=paypal.com");
}

#[tokio::test]
async fn forged_authentication_results_below_the_trusted_one_is_refused() {
    let raw = with_results(
        &[
            "mx.vendor.example; dkim=none; spf=softfail smtp.mailfrom=evil.example",
            "mx.vendor.example; dkim=pass header.d=paypal.com",
        ],
        &order_email(FROM, "8AB12345", "49.00"),
    );
    let reason = refusal(check(&verifier(&[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("topmost header from mx.vendor.example shows no aligned dkim=pass"), "{reason}");
}

#[tokio::test]
async fn authentication_results_of_another_server_are_ignored() {
    let raw = with_results(&["mx.evil.example; dkim=pass header.d=paypal.com"], &order_email(FROM, "1", "49.00"));
    let reason = refusal(check(&verifier(&[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("no Authentication-Results header from mx.vendor.example"), "{reason}");
}

/// The vendor forwards the order as an attachment: the outer message is theirs and unsigned.
fn forward_as_attachment(original: &str) -> String {
    format!(
        "From: Vendor <vendor@example.org>\r\nTo: orders@example.org\r\nSubject: Fwd: Notification of payment \
         received\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n{original}\
         \r\n--b1--\r\n"
    )
}

fn attachment_forward(original: &str) -> Email {
    let mut email = parsed(FROM);
    email.forwarded = Some(Forward {
        by: Some(Address { name: Some("Vendor".into()), address: "vendor@example.org".into() }),
        style: "attachment".into(),
    });
    email.attached_original = Some(original.as_bytes().to_vec());
    email
}

#[tokio::test]
async fn signed_original_attached_to_an_unsigned_forward_is_trusted() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let raw = forward_as_attachment(&original);
    let verdict = check(&verifier(&[&paypal_key]), &raw, &attachment_forward(&original)).await;
    assert_eq!(trusted_by(&verdict), "dkim d=paypal.com");
}

#[tokio::test]
async fn altered_original_attached_to_a_forward_is_refused() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00")).replace("8AB12345\r\n", "8AB99999\r\n");
    let raw = forward_as_attachment(&original);
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &attachment_forward(&original)).await);
    assert!(reason.contains("DKIM (attached original)"), "{reason}");
    assert!(reason.contains("Authentication-Results: not applicable to a forward"), "{reason}");
}

#[tokio::test]
async fn inline_forward_is_refused_when_the_provider_is_not_sender_only() {
    let paypal_key = signer("paypal.com");
    let original = order_email(FROM, "8AB12345", "49.00");
    let raw = format!(
        "From: vendor@example.org\r\nSubject: Fwd: Notification\r\n\r\n---------- Forwarded message ---------\r\n\
         {original}"
    );
    let mut email = parsed(FROM);
    email.forwarded = Some(Forward { by: None, style: "gmail".into() });
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &email).await);
    assert!(reason.contains("inline forward"), "{reason}");
    assert!(reason.contains("sender-only: not enabled for provider paypal"), "{reason}");
}

#[test]
fn trust_section_with_a_pinned_key_loads_and_validates() {
    let key = signer("paypal.com").pinned().public_key;
    let text = format!(
        "authserv_id = \"mx.vendor.example\"\ndns = false\nsender_only = []\nrecipients = [\"@vendor.example\"]\n\
         pinned_keys = [{{ domain = \"paypal.com\", selector = \"s1\", public_key = \"{key}\" }}]\n"
    );
    let config: TrustConfig = toml::from_str(&text).unwrap();
    let mut problems = keypost::config::Problems::new("keypost.toml");
    config.validate(&mut problems);
    assert!(problems.items().is_empty(), "{:?}", problems.items());
}

/// How a trusted verdict was proven (its `method`); panics on any other verdict.
fn trusted_by(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Trusted { method, .. } => method,
        other => panic!("{other:?} but should have been trusted"),
    }
}
