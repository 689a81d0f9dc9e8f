//! Binding an order to this vendor (`trust.recipients`, `trust.forwarders`), the signed Subject, and a DNS
//! failure that must be a retry, not a refusal. Real Ed25519 signatures, keys pinned, no network.
use keypost::email::{Address, Forward};

use super::*;

/// The PayPal order of [`order_email`], addressed to `to`.
fn order_to(to: &str) -> String {
    order_email(FROM, "8AB12345", "49.00").replace("To: vendor@example.org", &format!("To: {to}"))
}

fn bound(signers: &[&TestSigner], forwarders: &[&str]) -> Verifier {
    let config = TrustConfig {
        recipients: vec!["sales@vendor.example".into(), "@orders.vendor.example".into()],
        forwarders: forwarders.iter().map(|f| (*f).to_owned()).collect(),
        ..config(signers)
    };
    Verifier::new(&config).unwrap()
}

fn forwarded_by(original: &str, by: &str) -> Email {
    let mut email = attachment_forward(original);
    email.forwarded =
        Some(Forward { by: Some(Address { name: None, address: by.into() }), style: "attachment".into() });
    email
}

#[tokio::test]
async fn order_signed_to_a_listed_recipient_is_trusted() {
    let paypal_key = signer("paypal.com");
    let verifier = bound(&[&paypal_key], &[]);
    for to in ["Sales <sales@vendor.example>", "shop@orders.vendor.example", "other@x.example, sales@Vendor.example"] {
        let raw = paypal_key.sign(&order_to(to));
        let verdict = check(&verifier, &raw, &parsed(FROM)).await;
        assert!(verdict.is_trusted(), "{to}: {verdict:?}");
    }
}

#[tokio::test]
async fn genuine_order_of_another_seller_redirected_here_is_refused() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_to("seller@other-shop.example"));
    let reason = refusal(check(&bound(&[&paypal_key], &[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("no signed To or Cc names one of trust.recipients"), "{reason}");
}

#[tokio::test]
async fn recipient_in_an_unsigned_to_header_does_not_bind_the_order() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign_headers(&order_to("sales@vendor.example"), &["From", "Subject", "Date"], false);
    let reason = refusal(check(&bound(&[&paypal_key], &[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("the message has a to header the signature does not cover"), "{reason}");
}

#[tokio::test]
async fn recipient_in_a_display_name_does_not_bind_the_order() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_to("\"sales@vendor.example\" <seller@other-shop.example>"));
    let reason = refusal(check(&bound(&[&paypal_key], &[]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("not sent to this vendor"), "{reason}");
}

#[tokio::test]
async fn another_sellers_genuine_order_forwarded_as_attachment_is_refused() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_to("seller@other-shop.example"));
    let raw = forward_as_attachment(&original);
    let reason = refusal(check(&bound(&[&paypal_key], &[]), &raw, &attachment_forward(&original)).await);
    assert!(reason.contains("DKIM (attached original)") && reason.contains("not sent to this vendor"), "{reason}");
}

#[tokio::test]
async fn signed_original_forwarded_by_someone_not_among_the_forwarders_is_refused() {
    let paypal_key = signer("paypal.com");
    let original = paypal_key.sign(&order_to("sales@vendor.example"));
    let raw = forward_as_attachment(&original);
    let verifier = bound(&[&paypal_key], &["vendor@example.org", "@staff.vendor.example"]);
    let reason = refusal(check(&verifier, &raw, &forwarded_by(&original, "mallory@evil.example")).await);
    assert_eq!(reason, "forwarded by mallory@evil.example, who is not among trust.forwarders");
    for by in ["vendor@example.org", "jo@staff.vendor.example"] {
        let verdict = check(&verifier, &raw, &forwarded_by(&original, by)).await;
        assert_eq!(trusted_by(&verdict), "dkim d=paypal.com", "{by}");
    }
}

#[tokio::test]
async fn signature_that_does_not_cover_the_subject_is_refused() {
    let paypal_key = signer("paypal.com");
    let headers = ["From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"];
    let raw = paypal_key.sign_headers(&order_email(FROM, "8AB12345", "49.00"), &headers, false);
    let reason = refusal(check(&verifier(&[&paypal_key]), &raw, &parsed(FROM)).await);
    assert!(reason.contains("d=paypal.com: the Subject header is not signed"), "{reason}");
}

#[tokio::test]
async fn provider_key_lookup_failing_for_now_is_a_retry_not_a_refusal() {
    let paypal_key = signer("paypal.com");
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let verifier = Verifier::with_dns_down(&TrustConfig { dns: true, ..config(&[]) }).unwrap();
    match check(&verifier, &raw, &parsed(FROM)).await {
        Verdict::Retry { reason } => assert!(reason.contains("DNS lookup of the key failed (temporary)"), "{reason}"),
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pinned_key_is_used_while_dns_is_down_and_a_forgery_is_still_refused() {
    let paypal_key = signer("paypal.com");
    let verifier = Verifier::with_dns_down(&TrustConfig { dns: true, ..config(&[&paypal_key]) }).unwrap();
    let raw = paypal_key.sign(&order_email(FROM, "8AB12345", "49.00"));
    assert!(check(&verifier, &raw, &parsed(FROM)).await.is_trusted());
    let unsigned = order_email(FROM, "8AB12345", "49.00");
    refusal(check(&verifier, &unsigned, &parsed(FROM)).await);
}

#[tokio::test]
async fn authentication_results_pass_for_an_order_to_another_seller_is_refused() {
    let (paypal_key, results) = (signer("paypal.com"), ["mx.vendor.example; dkim=pass header.d=paypal.com"]);
    let to_seller = with_results(&results, &paypal_key.sign(&order_to("seller@x.example")));
    let reason = refusal(check(&bound(&[], &[]), &to_seller, &parsed(FROM)).await);
    assert!(reason.contains("Authentication-Results: dkim=pass for paypal.com: no signed To or Cc names"), "{reason}");
    let to_vendor = with_results(&results, &paypal_key.sign(&order_to("sales@vendor.example")));
    let verdict = check(&bound(&[], &[]), &to_vendor, &parsed(FROM)).await;
    assert!(verdict.is_trusted(), "{verdict:?}");
}

/// mail-parser, whose To the binding reads, drops blanks inside a header name and a colon before it, so `T o:`,
/// `T<TAB>o:`, `T<CR>o:` and `:To:` are a To to it and to nothing else: a thief who adds one to the signed
/// notification of their own sale (or to a copy attached to a forward) must not bind it to this vendor. The
/// same holds for Subject (`Sub ject:` would turn a signed receipt into a sale) and on the Authentication-Results
/// path.
#[tokio::test]
async fn a_header_name_only_the_mail_parser_reads_as_to_or_subject_is_refused() {
    let paypal_key = signer("paypal.com");
    let genuine = paypal_key.sign(&order_to("seller@other-shop.example"));
    let lines = [
        "T o: sales@vendor.example",
        "T\to: sales@vendor.example",
        "T\ro: sales@vendor.example",
        ":To: sales@vendor.example",
        // Blanks before the colon: mail-auth's verifier does not match `Cc ` to the signature's `h=` entry `cc`
        // (which a signer lists whether or not there is a Cc), mail-parser reads it as a Cc.
        "Cc : sales@vendor.example",
        "To\t: sales@vendor.example",
        "Sub ject: Notification of payment received",
    ];
    // `T<CR>o:` is refused for its bare CR, before its name is looked at.
    let refused = |reason: &str| reason.contains("is not a valid field name") || reason.contains("carriage return");
    for line in lines {
        let raw = genuine.replacen("\r\n\r\n", &format!("\r\n{line}\r\n\r\n"), 1);
        let verifier = bound(&[&paypal_key], &[]);
        let reason = refusal(check(&verifier, &raw, &parsed(FROM)).await);
        assert!(refused(&reason), "{line:?}: {reason}");
        let forwards = bound(&[&paypal_key], &["vendor@example.org"]);
        let forward = forward_as_attachment(&raw);
        let attached = refusal(check(&forwards, &forward, &forwarded_by(&raw, "vendor@example.org")).await);
        assert!(refused(&attached), "{line:?} in an attached original: {attached}");
        let results = with_results(&["mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1"], &raw);
        let reason = refusal(check(&bound(&[], &[]), &results, &parsed(FROM)).await);
        assert!(refused(&reason), "{line:?} with the server's verdict: {reason}");
    }
}

/// mail-auth's canonicalisation drops a bare CR (and a blank run ending in a CR or a form feed in a header) that
/// mail-parser reads: in a quoted To name the provider escaped (`"Tom\" sales@vendor.example, \"Shop"`, a seller
/// name the thief chose), a blank and a CR after each backslash leave the signature valid and end the quoted
/// name early for mail-parser, so the vendor's address becomes a recipient.
#[tokio::test]
async fn a_bare_cr_or_a_form_feed_that_splits_a_signed_quoted_to_name_is_refused() {
    let paypal_key = signer("paypal.com");
    let name = r#""Tom\" sales@vendor.example, \"Shop" <seller@thief.example>"#;
    let genuine = paypal_key.sign(&order_to(name));
    let verifier = bound(&[&paypal_key], &[]);
    let reason = refusal(check(&verifier, &genuine, &parsed(FROM)).await);
    assert!(reason.contains("not sent to this vendor"), "the genuine mail names no vendor address: {reason}");
    for split in ["\\ \r", "\\ \x0c"] {
        let raw = genuine.replace(r#"\""#, &format!("{split}\""));
        let reason = refusal(check(&verifier, &raw, &parsed(FROM)).await);
        assert!(reason.contains("the DKIM verifier and the mail parser read differently"), "{split:?}: {reason}");
    }
}

/// DKIM's relaxed canonicalisation makes a line fold and a blank the same, so a signed To that is no address list
/// (`Tom sales@vendor.example`, a seller name the thief chose, or two bare addresses) stays signed when the thief
/// folds it, and mail-parser then reads the vendor's address from it. Such a To names no one.
#[tokio::test]
async fn a_fold_added_to_a_signed_to_that_is_no_address_list_does_not_bind_the_order() {
    let paypal_key = signer("paypal.com");
    let verifier = bound(&[&paypal_key], &[]);
    for to in ["Tom sales@vendor.example", "seller@thief.example sales@vendor.example"] {
        let genuine = paypal_key.sign(&order_to(to));
        let folded = genuine.replace(&format!("To: {to}"), &format!("To: {}", to.replacen(' ', "\r\n ", 1)));
        assert_ne!(folded, genuine, "the To was folded");
        for raw in [&genuine, &folded] {
            let reason = refusal(check(&verifier, raw, &parsed(FROM)).await);
            assert!(reason.contains("not sent to this vendor"), "{to:?}: {reason}");
        }
    }
}
