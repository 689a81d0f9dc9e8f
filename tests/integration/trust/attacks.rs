//! Attack messages from the security review (issue 10), each sent to the verifier and refused: another seller's
//! genuine order with the vendor's address added, `l=` with appended lines, Authentication-Results that do not
//! speak of the signature in the message, quoted values that hide a `header.d`, header lines the two parsers
//! read differently. Authentication-Results cases sign with a key keypost does not have (not pinned, DNS off),
//! so it is the vendor's server's word that counts, under the same rules as keypost's own check.
use super::*;

const VENDOR: &str = "sales@vendor.example";
const PASS: &str = "mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1";

/// Binds orders to the vendor; pins `signers`; believes `mx.vendor.example`.
fn bound(signers: &[&TestSigner]) -> Verifier {
    Verifier::new(&TrustConfig { recipients: vec![VENDOR.into()], ..config(signers) }).unwrap()
}

/// A genuine order another seller received, signed by the provider.
fn sellers_order(paypal_key: &TestSigner) -> String {
    paypal_key
        .sign(&order_email(FROM, "8AB12345", "49.00").replace("To: vendor@example.org", "To: seller@other.example"))
}

/// A genuine order the vendor received, signed by the provider.
fn vendors_order(paypal_key: &TestSigner) -> String {
    paypal_key.sign(&order_email(FROM, "8AB12345", "49.00").replace("To: vendor@example.org", &format!("To: {VENDOR}")))
}

/// Adds `line` just below the DKIM-Signature header (its folded lines included).
fn below_signature(signed: &str, line: &str) -> String {
    let end = signed.find("\r\nFrom:").expect("a From header after the signature") + 2;
    format!("{}{line}\r\n{}", &signed[..end], &signed[end..])
}

#[tokio::test]
async fn authentication_results_pass_for_another_sellers_order_with_the_vendor_added_as_an_extra_to_on_top_is_refused()
{
    let paypal_key = signer("paypal.com");
    let attack = with_results(&[PASS], &format!("To: {VENDOR}\r\n{}", sellers_order(&paypal_key)));
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(
        reason.contains("Authentication-Results: dkim=pass for paypal.com: the message has a to header"),
        "{reason}"
    );
    // The same order without the added To is refused as another seller's, and the vendor's own one is trusted.
    let plain = with_results(&[PASS], &sellers_order(&paypal_key));
    assert!(refusal(check(&bound(&[]), &plain, &parsed(FROM)).await).contains("not sent to this vendor"));
    let genuine = with_results(&[PASS], &vendors_order(&paypal_key));
    assert!(check(&bound(&[]), &genuine, &parsed(FROM)).await.is_trusted());
}

#[tokio::test]
async fn another_sellers_order_with_the_vendor_added_as_an_extra_to_below_the_signature_is_refused() {
    let paypal_key = signer("paypal.com");
    let attack = below_signature(&sellers_order(&paypal_key), &format!("To: {VENDOR}"));
    let reason = refusal(check(&bound(&[&paypal_key]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("the message has a to header the signature does not cover"), "{reason}");
    let reason = refusal(check(&bound(&[]), &with_results(&[PASS], &attack), &parsed(FROM)).await);
    assert!(reason.contains("the message has a to header the signature does not cover"), "{reason}");
}

#[tokio::test]
async fn an_unsigned_cc_naming_the_vendor_on_another_sellers_order_is_refused() {
    let paypal_key = signer("paypal.com");
    let attack = below_signature(&sellers_order(&paypal_key), &format!("Cc: {VENDOR}"));
    let reason = refusal(check(&bound(&[&paypal_key]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("the message has a cc header the signature does not cover"), "{reason}");
    let reason = refusal(check(&bound(&[]), &with_results(&[PASS], &attack), &parsed(FROM)).await);
    assert!(reason.contains("the message has a cc header the signature does not cover"), "{reason}");
}

#[tokio::test]
async fn authentication_results_pass_for_an_l_signature_with_an_appended_item_line_is_refused() {
    let paypal_key = signer("paypal.com");
    let signed =
        paypal_key.sign_with(&order_email(FROM, "8AB12345", "49.00").replace("vendor@example.org", VENDOR), true);
    let attack = with_results(&[PASS], &format!("{signed}Item: Acme Pro\r\nQuantity: 100\r\n"));
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("Authentication-Results: dkim=pass for paypal.com: the signature covers only"), "{reason}");
    assert!(reason.contains("keypost refuses every l= signature"), "{reason}");
}

#[tokio::test]
async fn authentication_results_pass_for_a_body_changed_after_signing_is_refused() {
    // keypost needs no key to see that the body hash does not match: its own verdict, final.
    let paypal_key = signer("paypal.com");
    let attack = with_results(&[PASS], &vendors_order(&paypal_key).replace("49.00 USD", "0.49 USD"));
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("d=paypal.com: the body was changed after signing"), "{reason}");
    assert!(reason.contains("Authentication-Results: not consulted"), "{reason}");
}

#[tokio::test]
async fn authentication_results_pass_is_not_consulted_when_keypost_checks_the_signature_itself_and_it_fails() {
    let paypal_key = signer("paypal.com");
    let attack = with_results(&[PASS], &vendors_order(&paypal_key).replace("Item: Acme Pro", "Item: Acme Pro x100"));
    let reason = refusal(check(&bound(&[&paypal_key]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("the body was changed after signing"), "{reason}");
    assert!(reason.contains("Authentication-Results: not consulted"), "{reason}");
}

#[tokio::test]
async fn authentication_results_pass_without_a_provider_signature_in_the_message_is_refused() {
    let attack = with_results(&[PASS], &order_email(FROM, "8AB12345", "49.00").replace("vendor@example.org", VENDOR));
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("dkim=pass for paypal.com, but no DKIM-Signature in the message matches it"), "{reason}");
}

#[tokio::test]
async fn authentication_results_pass_naming_another_selector_than_the_signature_in_the_message_is_refused() {
    let attack = with_results(
        &["mx.vendor.example; dkim=pass header.d=paypal.com header.s=other"],
        &vendors_order(&signer("paypal.com")),
    );
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("no DKIM-Signature in the message matches it"), "{reason}");
}

#[tokio::test]
async fn authentication_results_with_header_d_hidden_in_a_quoted_header_i_is_refused() {
    let attack = with_results(
        &["mx.vendor.example; dkim=pass header.i=\"x header.d=paypal.com y\"@evil.example"],
        &vendors_order(&signer("paypal.com")),
    );
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(reason.contains("shows no aligned dkim=pass for provider paypal"), "{reason}");
}

#[tokio::test]
async fn the_servers_header_with_a_job_id_is_its_own_and_a_pass_written_below_it_is_not_read() {
    // OpenDKIM and OpenDMARC with AuthservIDWithJobID write `authserv-id/queue-id`, unquoted or quoted.
    for ours in ["mx.vendor.example/4ZxY7s1Kq2z9Ab", "\"mx.vendor.example/4ZxY7s1Kq2z9Ab\""] {
        let genuine = with_results(
            &[&format!("{ours}; dkim=pass header.d=paypal.com header.s=s1")],
            &vendors_order(&signer("paypal.com")),
        );
        assert!(check(&bound(&[]), &genuine, &parsed(FROM)).await.is_trusted(), "{ours}");
        // The server found no valid signature; a sender's header below claims a pass under the plain id.
        let attack = with_results(
            &[&format!("{ours}; dkim=fail header.d=paypal.com header.s=s1"), PASS],
            &vendors_order(&signer("paypal.com")),
        );
        let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
        assert!(reason.contains("shows no aligned dkim=pass for provider paypal"), "{ours}: {reason}");
    }
}

#[tokio::test]
async fn unreadable_topmost_authentication_results_of_the_vendor_is_refused_not_skipped() {
    let attack = with_results(
        &["mx.vendor.example; dkim=pass header.d=\"paypal.com", PASS],
        &vendors_order(&signer("paypal.com")),
    );
    let reason = refusal(check(&bound(&[]), &attack, &parsed(FROM)).await);
    assert!(
        reason.contains("the topmost header from mx.vendor.example cannot be read (unclosed quoted string"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_header_line_without_a_colon_is_refused_on_both_paths() {
    let paypal_key = signer("paypal.com");
    let signed = vendors_order(&paypal_key);
    let attack = below_signature(&signed, "X-Note no colon on this line");
    for (name, verifier, raw) in [
        ("dkim", bound(&[&paypal_key]), attack.clone()),
        ("authentication-results", bound(&[]), with_results(&[PASS], &attack)),
    ] {
        let reason = refusal(check(&verifier, &raw, &parsed(FROM)).await);
        assert!(reason.contains("disagree on where the body starts"), "{name}: {reason}");
    }
}
