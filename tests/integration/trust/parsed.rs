//! End to end: real signed bytes through `email::parse`, then `Verifier::check`, as the daemon does it (the
//! other trust tests build the `Email` by hand).
use keypost::email;

use super::*;

const MAX: u64 = 1024 * 1024;

fn parse(raw: &str) -> Email {
    email::parse(raw.as_bytes(), MAX).unwrap()
}

fn bound_to_vendor(signers: &[&TestSigner]) -> Verifier {
    let config = TrustConfig {
        recipients: vec!["vendor@example.org".into()],
        forwarders: vec!["vendor@example.org".into()],
        ..config(signers)
    };
    Verifier::new(&config).unwrap()
}

#[tokio::test]
async fn signed_order_parsed_by_email_parse_is_trusted() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let parsed = parse(&raw);
    assert_eq!(parsed.from.as_ref().map(|a| a.address.as_str()), Some(FROM));
    let verdict = bound_to_vendor(&[&paypal_key]).check(raw.as_bytes(), &parsed, &paypal()).await;
    assert_eq!(trusted_by(&verdict), "dkim d=paypal.com");
}

#[tokio::test]
async fn altered_order_parsed_by_email_parse_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "0.49")).replace("0.49 USD", "49.00 USD");
    let verdict = bound_to_vendor(&[&paypal_key]).check(raw.as_bytes(), &parse(&raw), &paypal()).await;
    assert!(refusal(verdict).contains("the body was changed after signing"));
}

#[tokio::test]
async fn signed_original_attached_to_a_forward_is_found_by_email_parse_and_trusted() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let raw = forward_as_attachment(&original);
    let parsed = parse(&raw);
    assert_eq!(parsed.forwarded.as_ref().map(|f| f.style.as_str()), Some("attachment"));
    assert!(parsed.attached_original.is_some(), "email::parse did not keep the attached original");
    let verdict = bound_to_vendor(&[&paypal_key]).check(raw.as_bytes(), &parsed, &paypal()).await;
    assert_eq!(trusted_by(&verdict), "dkim d=paypal.com");
}

#[tokio::test]
async fn forged_outer_text_around_a_genuine_attached_original_cannot_change_the_order() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let raw = forward_as_attachment(&original).replace("See attached.", "Transaction ID: 8AB99999 Item: Acme Pro");
    let parsed = parse(&raw);
    assert!(parsed.text.contains("Transaction ID: 8AB12345") && !parsed.text.contains("8AB99999"), "{}", parsed.text);
    assert!(bound_to_vendor(&[&paypal_key]).check(raw.as_bytes(), &parsed, &paypal()).await.is_trusted());
}

#[tokio::test]
async fn inline_forward_parsed_by_email_parse_is_refused_from_a_stranger_even_when_sender_only() {
    let original = order_email(FROM, "8AB12345", "49.00").replace("\r\n", "\n");
    let (headers, body) = original.split_once("\n\n").unwrap();
    let quoted = headers.lines().filter(|l| !l.starts_with("MIME") && !l.starts_with("Content-")).collect::<Vec<_>>();
    let forward = |by: &str| {
        format!(
            "From: {by}\r\nTo: vendor@example.org\r\nSubject: Fwd: Notification of payment received\r\n\r\n\
             ---------- Forwarded message ---------\r\n{}\r\n\r\n{body}",
            quoted.join("\r\n")
        )
    };
    let config = TrustConfig {
        sender_only: vec!["paypal".into()],
        forwarders: vec!["vendor@example.org".into()],
        ..config(&[])
    };
    let verifier = Verifier::new(&config).unwrap();
    let stranger = forward("mallory@evil.example");
    let parsed = parse(&stranger);
    assert_eq!(parsed.forwarded.as_ref().map(|f| f.style.as_str()), Some("gmail"));
    let reason = refusal(verifier.check(stranger.as_bytes(), &parsed, &paypal()).await);
    assert!(reason.contains("not among trust.forwarders"), "{reason}");
    let vendor = forward("vendor@example.org");
    let verdict = verifier.check(vendor.as_bytes(), &parse(&vendor), &paypal()).await;
    assert!(verdict.is_trusted(), "{verdict:?}");
}
