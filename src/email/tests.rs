//! Unit tests of [`super::parse`] on small hand-written messages (the provider fixtures cover real layouts).
use super::*;

const MAX: u64 = 5 * 1024 * 1024;

fn msg(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}\r\n\r\n{body}").replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

#[test]
fn plain_text_body_and_headers_are_read() {
    let raw = msg(
        "Authentication-Results: mx.example.com; dkim=pass header.d=paypal.com\nAuthentication-Results: other; \
         dkim=fail\nFrom: PayPal <service@paypal.com>\nSubject: You received a payment\nMessage-ID: <a1@x>\n\
         Date: Mon, 3 Nov 2025 10:12:00 +0000",
        "Hello\nTransaction ID: 1AB",
    );
    let email = parse(&raw, MAX).unwrap();
    assert_eq!(email.from.unwrap().address, "service@paypal.com");
    assert_eq!(email.subject, "You received a payment");
    assert_eq!(email.message_id.as_deref(), Some("a1@x"));
    assert_eq!(email.date.as_deref(), Some("2025-11-03T10:12:00Z"));
    assert_eq!(email.text, "Hello\nTransaction ID: 1AB");
    assert_eq!(email.authentication_results.len(), 2);
    assert!(email.authentication_results[0].starts_with("mx.example.com; dkim=pass"));
    assert_eq!(email.content_hash.len(), 64);
}

#[test]
fn html_only_message_becomes_lines_of_text() {
    let raw = msg(
        "From: a@b.example\nSubject: s\nContent-Type: text/html; charset=utf-8",
        "<table><tr><td>Order</td><td>#42</td></tr><tr><td>Name</td><td>J&ouml;rg</td></tr></table>",
    );
    assert_eq!(parse(&raw, MAX).unwrap().text, "Order\t#42\nName\tJörg");
}

#[test]
fn quoted_printable_latin1_is_decoded() {
    let raw = msg(
        "From: a@b.example\nSubject: =?ISO-8859-1?Q?M=FCller?=\nContent-Type: text/plain; charset=ISO-8859-1\n\
         Content-Transfer-Encoding: quoted-printable",
        "Name: J=F6rg M=FCl=\nler\n",
    );
    let email = parse(&raw, MAX).unwrap();
    assert_eq!(email.subject, "Müller");
    assert_eq!(email.text.trim(), "Name: Jörg Müller");
}

#[test]
fn oversized_message_is_refused_before_parsing() {
    let raw = msg("From: a@b.example", &"x".repeat(2000));
    assert!(matches!(parse(&raw, 1024), Err(EmailError::TooLarge { .. })));
}

#[test]
fn huge_header_section_is_refused() {
    let raw = msg(&format!("From: a@b.example\nX-Junk: {}", "y".repeat(MAX_HEADER_BYTES + 10)), "body");
    assert_eq!(parse(&raw, MAX), Err(EmailError::HeadersTooLarge));
}

#[test]
fn deeply_nested_multiparts_are_refused() {
    let mut raw = String::from("From: a@b.example\r\n");
    for level in 0..40 {
        raw.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
    assert!(matches!(parse(raw.as_bytes(), MAX), Err(EmailError::TooComplex(_))));
}

#[test]
fn attached_original_is_unwrapped_and_kept_byte_for_byte() {
    let original = "From: Paddle <help@paddle.com>\r\nSubject: New order\r\nDKIM-Signature: v=1; d=paddle.com\r\n\r\n\
                    Order 123\r\n";
    let raw = msg(
        "From: Vendor <me@vendor.example>\nSubject: Fwd: New order\nContent-Type: multipart/mixed; boundary=\"XX\"",
        &format!(
            "--XX\nContent-Type: text/plain\n\nsee attached\n--XX\nContent-Type: message/rfc822\n\
             Content-Disposition: attachment\n\n{original}--XX--\n"
        ),
    );
    let email = parse(&raw, MAX).unwrap();
    assert_eq!(email.from.unwrap().address, "help@paddle.com");
    assert_eq!(email.subject, "New order");
    assert_eq!(email.text.trim(), "Order 123");
    let forwarded = email.forwarded.unwrap();
    assert_eq!((forwarded.style.as_str(), forwarded.by.unwrap().address.as_str()), ("attachment", "me@vendor.example"));
    let kept = String::from_utf8(email.attached_original.unwrap()).unwrap();
    assert!(kept.starts_with("From: Paddle <help@paddle.com>\r\n"), "{kept:?}");
    assert!(kept.trim_end().ends_with("Order 123"), "{kept:?}");
}

#[test]
fn inline_forward_gives_the_original_sender_and_the_same_hash_as_the_original() {
    let direct = msg("From: PayPal <service@paypal.com>\nSubject: You received a payment", "Paid: 5.00\n\nThanks");
    let forwarded = msg(
        "From: me@vendor.example\nSubject: Fwd: You received a payment",
        "FYI\n\n---------- Forwarded message ---------\nFrom: PayPal <service@paypal.com>\n\
         Date: Mon, 3 Nov 2025 at 10:12\nSubject: You received a payment\nTo: <me@vendor.example>\n\n\
         > Paid: 5.00\n>\n> Thanks\n",
    );
    let (direct, forwarded) = (parse(&direct, MAX).unwrap(), parse(&forwarded, MAX).unwrap());
    assert_eq!(forwarded.from, direct.from);
    assert_eq!(forwarded.forwarded.as_ref().unwrap().style, "gmail");
    assert_eq!(forwarded.content_hash, direct.content_hash);
}

#[test]
fn inline_from_lines_in_every_client_style_parse() {
    let addr = |s: &str| parse_address(s).map(|a| (a.name, a.address));
    assert_eq!(addr("PayPal <service@paypal.com>"), Some((Some("PayPal".into()), "service@paypal.com".into())));
    assert_eq!(
        addr("FastSpring [mailto:no@fastspring.com]"),
        Some((Some("FastSpring".into()), "no@fastspring.com".into()))
    );
    assert_eq!(addr("no@fastspring.com"), Some((None, "no@fastspring.com".into())));
    assert_eq!(addr("nobody"), None);
}

#[test]
fn garbage_is_an_error_or_an_email_never_a_panic() {
    for raw in
        [&b""[..], b"\0\0\0", b"\xff\xfe", b"From:\r\n\r\n", b"Content-Type: multipart/mixed; boundary=\r\n\r\n--"]
    {
        let _ = parse(raw, MAX);
    }
}

#[test]
fn a_forward_block_typed_into_a_providers_own_message_is_not_unwrapped() {
    // A buyer's note inside a genuine (DKIM-signed) provider message must not become "the original".
    let raw = msg(
        "From: PayPal <service@paypal.com>\nSubject: You received a payment",
        "You received $1.00 USD from Mallory (m@example.com)\nNote from buyer:\n\
         ---------- Forwarded message ---------\nFrom: PayPal <service@paypal.com>\n\
         Subject: You received a payment\n\nYou received $999.00 USD\n",
    );
    let email = parse(&raw, MAX).unwrap();
    assert_eq!(email.forwarded, None);
    assert!(email.text.starts_with("You received $1.00 USD from Mallory"));
}
