//! The vendor's Authentication-Results in the header orders real receiving servers write. Postfix passes its own
//! Received header to its milters, and OpenDKIM and OpenDMARC insert their Authentication-Results at index 1,
//! just below it (`dkimf_insheader(ctx, 1, AUTHRESULTSHDR, ...)` in opendkim.c, `dmarcf_insheader(ctx, 1, ...)`
//! in opendmarc.c), the later milter's above the earlier's; Dovecot's LMTP delivery and every relay hop add a
//! Received on top. So the server's header is never above the topmost Received, and its topmost header may be
//! OpenDMARC's, with no DKIM result in it. A sender-written header that came with the message sits below the
//! server's own (at best directly below, when the sender put it first and the milters inserted theirs above it).
use super::*;

const VENDOR: &str = "sales@vendor.example";

/// A genuine order to the vendor, signed with a key keypost does not have: only the vendor's server checked it.
fn genuine() -> String {
    signer("paypal.com")
        .sign(&order_email(FROM, "8AB12345", "49.00").replace("To: vendor@example.org", &format!("To: {VENDOR}")))
}

/// The first 8 characters of the signature's `b=`, as OpenDKIM writes `header.b`.
fn b_prefix(signed: &str) -> String {
    let start = signed.find(" b=").expect("a b= tag") + 3;
    signed[start..].chars().filter(|c| !c.is_whitespace()).take(8).collect()
}

fn bound() -> Verifier {
    Verifier::new(&TrustConfig { recipients: vec![VENDOR.into()], ..config(&[]) }).unwrap()
}

/// Postfix with the OpenDKIM and OpenDMARC milters on `mx.vendor.example`, delivered by Dovecot LMTP: the
/// header section above the provider's signature, topmost first, with the two milters' results.
fn postfix_opendkim_opendmarc_dovecot(dkim: &str, dmarc: &str) -> String {
    format!(
        "Return-Path: <bounce@paypal.com>\r\n\
         Delivered-To: {VENDOR}\r\n\
         Received: from mx.vendor.example\r\n\tby mx.vendor.example with LMTP\r\n\tid kP3mKxQbZWbJJgAAYBRaHg\r\n\
         \t(envelope-from <bounce@paypal.com>)\r\n\tfor <{VENDOR}>; Sun, 22 Nov 2026 02:00:03 +0000\r\n\
         Received: from mx0.paypal.com (mx0.paypal.com [173.0.84.225])\r\n\
         \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
         \tby mx.vendor.example (Postfix) with ESMTPS id 4Q1x2Y3zKLz9rxG\r\n\
         \tfor <{VENDOR}>; Sun, 22 Nov 2026 02:00:02 +0000 (UTC)\r\n\
         Authentication-Results: mx.vendor.example; {dmarc}\r\n\
         Authentication-Results: mx.vendor.example; spf=pass smtp.mailfrom=paypal.com\r\n\
         Authentication-Results: mx.vendor.example;\r\n\t{dkim}\r\n"
    )
}

#[tokio::test]
async fn postfix_with_opendkim_and_opendmarc_delivered_by_dovecot_lmtp_is_trusted() {
    let signed = genuine();
    let dkim = format!(
        "dkim=pass (2048-bit key; unprotected) header.d=paypal.com header.i=@paypal.com header.a=rsa-sha256 \
         header.s=s1 header.b={}",
        b_prefix(&signed)
    );
    let dmarc = "dmarc=pass (p=reject dis=none) header.from=paypal.com";
    let raw = format!("{}{signed}", postfix_opendkim_opendmarc_dovecot(&dkim, dmarc));
    let verdict = check(&bound(), &raw, &parsed(FROM)).await;
    assert!(verdict.is_trusted(), "{verdict:?}");
}

#[tokio::test]
async fn a_dkim_pass_the_sender_wrote_below_the_servers_own_dkim_fail_is_not_read() {
    let signed = genuine();
    // The sender put its own "pass" first; the milters inserted theirs above it.
    let forged = "Authentication-Results: mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1\r\n";
    let dkim = "dkim=fail (signature verification failed) header.d=paypal.com header.s=s1";
    let raw =
        format!("{}{forged}{signed}", postfix_opendkim_opendmarc_dovecot(dkim, "dmarc=none header.from=paypal.com"));
    let reason = refusal(check(&bound(), &raw, &parsed(FROM)).await);
    assert!(reason.contains("topmost header from mx.vendor.example shows no aligned dkim=pass"), "{reason}");
}

#[tokio::test]
async fn a_dmarc_failure_the_server_reports_above_its_dkim_result_refuses_the_order() {
    let signed = genuine();
    let dkim = "dkim=pass header.d=paypal.com header.s=s1";
    let dmarc = "dmarc=fail (p=reject dis=none) header.from=paypal.com";
    let raw = format!("{}{signed}", postfix_opendkim_opendmarc_dovecot(dkim, dmarc));
    let reason = refusal(check(&bound(), &raw, &parsed(FROM)).await);
    assert!(reason.contains("a header from mx.vendor.example reports dmarc=fail for the From domain"), "{reason}");
}

#[tokio::test]
async fn rspamd_on_the_mx_behind_a_relay_and_lmtp_hop_is_trusted() {
    // MX (Postfix + rspamd, one header with every result) -> internal relay -> Dovecot: two Received on top of it.
    let signed = genuine();
    let raw = format!(
        "Received: from relay.vendor.example\r\n\tby imap.vendor.example with LMTP id 8fZ0Lw; Sun, 22 Nov 2026 \
         02:00:04 +0000\r\n\
         Received: from mx.vendor.example (mx.vendor.example [10.0.0.2])\r\n\tby relay.vendor.example (Postfix) \
         with ESMTP id 4Q1x3Dq; Sun, 22 Nov 2026 02:00:03 +0000\r\n\
         Received: from mx0.paypal.com (mx0.paypal.com [173.0.84.225])\r\n\tby mx.vendor.example (Postfix) with \
         ESMTPS id 4Q1x2Y3; Sun, 22 Nov 2026 02:00:02 +0000\r\n\
         Authentication-Results: mx.vendor.example;\r\n\tdkim=pass header.d=paypal.com header.s=s1 \
         header.b={};\r\n\tspf=pass (mx.vendor.example: domain of bounce@paypal.com designates 173.0.84.225 as \
         permitted sender) smtp.mailfrom=bounce@paypal.com;\r\n\tdmarc=pass (policy=reject) header.from=paypal.com\r\n\
         {signed}",
        b_prefix(&signed)
    );
    let verdict = check(&bound(), &raw, &parsed(FROM)).await;
    assert!(verdict.is_trusted(), "{verdict:?}");
}
