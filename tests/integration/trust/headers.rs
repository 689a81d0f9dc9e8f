//! Headers keypost reads besides From, To, Cc and Subject: a header a template reads a field from (Reply-To gives
//! WooCommerce's and Zen Cart's buyer address) must be signed in every copy; Message-ID and the MIME headers, which
//! real providers do not all sign, may stand unsigned but never twice. Both paths: keypost's own DKIM check and
//! the vendor's Authentication-Results.
use super::*;

const PASS: &str = "mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1";

/// The headers SendGrid signs on a Gumroad sale (`h=content-type:from:mime-version:subject:x-feedback-id:to:cc:…`,
/// seen on real 2025 SendGrid mail): no Message-ID, no Date, no Content-Transfer-Encoding.
const SENDGRID_SIGNS: [&str; 5] = ["Content-Type", "From", "MIME-Version", "Subject", "To"];

/// A provider whose template reads the buyer's address from Reply-To, as WooCommerce's does.
fn reads_reply_to() -> ProviderTrust {
    ProviderTrust { read_headers: vec!["reply-to".into()], ..paypal() }
}

fn with_reply_to(message: &str, reply_to: &str) -> String {
    message.replace("Subject:", &format!("Reply-To: {reply_to}\r\nSubject:"))
}

/// Adds `line` on top of the message (below the signature the signer put first, so after it).
fn on_top(signed: &str, line: &str) -> String {
    format!("{line}\r\n{signed}")
}

/// The verdicts on the DKIM path (key pinned) and on the Authentication-Results path (key unknown).
async fn both_paths(raw: &str, provider: &ProviderTrust) -> [Verdict; 2] {
    let key = signer("paypal.com");
    let dkim = verifier(&[&key]).check(raw.as_bytes(), &parsed(FROM), provider).await;
    let results = verifier(&[]).check(with_results(&[PASS], raw).as_bytes(), &parsed(FROM), provider).await;
    [dkim, results]
}

#[tokio::test]
async fn an_unsigned_reply_to_on_a_signed_order_is_refused_when_the_template_reads_it_on_both_paths() {
    let key = signer("paypal.com");
    // Signed without a Reply-To (a shop whose buyer address is only in the body), then a thief adds one.
    let signed = key.sign(&order_email(FROM, "8AB12345", "49.00"));
    let attack = on_top(&signed, "Reply-To: Thief <thief@evil.example>");
    for verdict in both_paths(&attack, &reads_reply_to()).await {
        let reason = refusal(verdict);
        assert!(reason.contains("the message has a reply-to header the signature does not cover"), "{reason}");
    }
    // A template that does not read Reply-To does not care (replies never go to it).
    for verdict in both_paths(&attack, &paypal()).await {
        assert!(verdict.is_trusted(), "{verdict:?}");
    }
}

#[tokio::test]
async fn a_reply_to_the_provider_signed_is_read_and_a_second_unsigned_one_is_refused() {
    let key = signer("paypal.com");
    let headers = ["From", "To", "Subject", "Reply-To", "Message-ID", "Content-Type"];
    let message = with_reply_to(&order_email(FROM, "8AB12345", "49.00"), "Jo Buyer <jo@buyer.example>");
    let signed = key.sign_headers(&message, &headers, false);
    for verdict in both_paths(&signed, &reads_reply_to()).await {
        assert!(verdict.is_trusted(), "{verdict:?}");
    }
    let attack = on_top(&signed, "Reply-To: thief@evil.example");
    for verdict in both_paths(&attack, &reads_reply_to()).await {
        let reason = refusal(verdict);
        assert!(reason.contains("the message has a reply-to header the signature does not cover"), "{reason}");
    }
}

#[tokio::test]
async fn an_order_signed_as_sendgrid_signs_without_message_id_or_transfer_encoding_is_trusted() {
    let key = signer("paypal.com");
    let message = order_email(FROM, "8AB12345", "49.00")
        .replace("Content-Type:", "Content-Transfer-Encoding: 7bit\r\nContent-Type:");
    let signed = key.sign_headers(&message, &SENDGRID_SIGNS, false);
    let provider = ProviderTrust { read_headers: vec!["message-id".into()], ..paypal() };
    for verdict in both_paths(&signed, &provider).await {
        assert!(verdict.is_trusted(), "{verdict:?}");
    }
}

#[tokio::test]
async fn a_second_message_id_or_mime_header_on_a_signed_order_is_refused_on_both_paths() {
    let key = signer("paypal.com");
    let message = order_email(FROM, "8AB12345", "49.00")
        .replace("Content-Type:", "Content-Transfer-Encoding: 7bit\r\nContent-Type:");
    let provider = ProviderTrust { read_headers: vec!["message-id".into()], ..paypal() };
    // Unsigned (as SendGrid sends them) and signed (the test signer's list has Message-ID and Content-Type).
    for signed in [key.sign_headers(&message, &SENDGRID_SIGNS, false), key.sign(&message)] {
        for (extra, name) in [
            ("Message-ID: <9ZZ99999@paypal.example>", "message-id"),
            ("Content-Type: multipart/mixed; boundary=\"Item\"", "content-type"),
            ("Content-Transfer-Encoding: quoted-printable", "content-transfer-encoding"),
            ("MIME-Version: 1.0", "mime-version"),
        ] {
            let attack = on_top(&signed, extra);
            for verdict in both_paths(&attack, &provider).await {
                let reason = refusal(verdict);
                let unsigned = format!("the message has a {name} header the signature does not cover");
                let second = format!("the message has 2 {name} headers and the signature covers fewer");
                assert!(reason.contains(&unsigned) || reason.contains(&second), "{extra}: {reason}");
            }
        }
    }
}
