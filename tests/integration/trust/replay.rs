//! A genuine signed order mailed in again with headers its signature does not cover changed, through the daemon
//! (real parse, built-in templates, verifier and store; in-memory mailbox and mailer). Gumroad's order id is the
//! Message-ID, which SendGrid does not sign: a new one, with a re-declared charset so the text (the content hash)
//! differs too, read as a second sale. The provider signature that proved the first order is what gives it away.
//! And the Message-ID index is per provider: another provider's genuine order that happens to carry the same
//! Message-ID is not a duplicate.
use keypost::daemon::replay::{Finding, Replayer};
use keypost::mailbox::{MailContent, RawMail};

use super::serials::{VENDOR_ADDRESS, daemon_pinning, loaded, sale};
use super::*;

const GUMROAD_ID: &str = "6908a2c1d3e4f_1a2b3c4d5e6f7a80";

/// The Gumroad sale fixture (a render of Gumroad's own mail views), its Authentication-Results dropped, sent to
/// the vendor, signed over the headers given.
fn gumroad_sale(key: &TestSigner, signed_headers: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gumroad/sale_html_only_base64.eml");
    let fixture = std::fs::read_to_string(path).unwrap();
    assert!(fixture.contains(GUMROAD_ID) && fixture.contains("charset=UTF-8"), "the fixture changed");
    let lines: Vec<_> = fixture
        .lines()
        .filter(|line| !line.starts_with("Authentication-Results:") && !line.starts_with("X-Keypost-Fixture"))
        .collect();
    let message = (lines.join("\r\n") + "\r\n").replace("To: creator@vendor.example", &format!("To: {VENDOR_ADDRESS}"));
    key.sign_headers(&message, signed_headers, false)
}

#[tokio::test]
async fn a_signed_gumroad_sale_resent_under_a_new_message_id_and_charset_is_set_aside_not_sold_again() {
    let gumroad = TestSigner::rsa("gumroad.com", "s1");
    let paypal = TestSigner::rsa("paypal.com", "s1");
    // Signed without Message-ID and Content-Type: a signer that leaves both out (SendGrid leaves out the first).
    let genuine = gumroad_sale(&gumroad, &["From", "To", "Subject", "MIME-Version"]);
    let replayed =
        genuine.replace(GUMROAD_ID, "7a19b3d2e4f5a_9f8e7d6c5b4a3921").replace("charset=UTF-8", "charset=ISO-8859-1");
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon_pinning(dir.path(), &[&paypal, &gumroad]);
    daemon.source.deliver("00-genuine", genuine.as_bytes());
    let first = daemon.drain().await.unwrap();
    assert_eq!(first.fulfilled, 1, "{first}");
    daemon.source.deliver("01-replayed", replayed.as_bytes());
    let second = daemon.drain().await.unwrap();

    assert_eq!((second.fulfilled, second.review, second.set_aside), (0, 0, 1), "{second}");
    assert_eq!(daemon.mailer.to("sorina@example.no").len(), 1, "one reply, to the first mail only");
    assert!(daemon.core.store.order_lines("gumroad", "7a19b3d2e4f5a_9f8e7d6c5b4a3921").unwrap().is_empty());
    let alerts = daemon.mailer.vendor_only().join("\n").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(alerts.contains(&format!("already proved order gumroad/{GUMROAD_ID}")), "{alerts}");

    // `keypost replay` over an archive holding the re-sent copy says the same, and would not apply it.
    drop(daemon);
    let loaded = loaded(dir.path(), &[&paypal, &gumroad]);
    let core = keypost::daemon::build::core(&loaded).unwrap();
    let reader = keypost::daemon::build::reader(&loaded).unwrap();
    let replayer = Replayer::new(core, reader, Verifier::new(&loaded.config.trust).unwrap());
    let raw = RawMail { key: "archive/1".into(), content: MailContent::Bytes(replayed.into_bytes()) };
    let finding = replayer.look(&raw).await.unwrap();
    assert!(
        matches!(&finding, Finding::SetAside { reason } if reason.contains("signature already proved order gumroad/")),
        "{finding:?}"
    );
}

/// A sale signed twice by the provider (two selectors; real senders sometimes add a second signature), re-sent
/// with only the signature that was not the first to pass: every provider signature that verified is remembered,
/// not only the one that proved the order.
#[tokio::test]
async fn a_twice_signed_sale_resent_with_only_its_other_signature_is_set_aside_not_sold_again() {
    let gumroad = TestSigner::rsa("gumroad.com", "s1");
    let second_key = TestSigner::rsa("gumroad.com", "s2");
    let paypal = TestSigner::rsa("paypal.com", "s1");
    let headers = ["From", "To", "Subject", "MIME-Version"];
    let once = gumroad_sale(&gumroad, &headers);
    let twice = second_key.sign_headers(&once, &headers, false);
    // The copy: the top signature (s2, the one checked first) dropped, a new Message-ID and charset.
    let (top, rest) = twice.split_once("\r\nDKIM-Signature:").expect("two signatures");
    assert!(top.contains("s=s2"), "the second signature is on top");
    let replayed = format!("DKIM-Signature:{rest}")
        .replace(GUMROAD_ID, "7a19b3d2e4f5a_9f8e7d6c5b4a3921")
        .replace("charset=UTF-8", "charset=ISO-8859-1");
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon_pinning(dir.path(), &[&paypal, &gumroad, &second_key]);
    daemon.source.deliver("00-genuine", twice.as_bytes());
    let first = daemon.drain().await.unwrap();
    assert_eq!(first.fulfilled, 1, "{first}");
    daemon.source.deliver("01-replayed", replayed.as_bytes());
    let second = daemon.drain().await.unwrap();

    assert_eq!((second.fulfilled, second.set_aside), (0, 1), "{second}");
    assert_eq!(daemon.mailer.to("sorina@example.no").len(), 1, "one reply, to the first mail only");
    let alerts = daemon.mailer.vendor_only().join("\n").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(alerts.contains(&format!("already proved order gumroad/{GUMROAD_ID}")), "{alerts}");
}

#[tokio::test]
async fn another_providers_genuine_order_with_a_message_id_seen_before_is_fulfilled_not_filed_as_a_duplicate() {
    let gumroad = TestSigner::rsa("gumroad.com", "s1");
    let paypal = TestSigner::rsa("paypal.com", "s1");
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon_pinning(dir.path(), &[&paypal, &gumroad]);
    daemon.source.deliver("00-gumroad", gumroad_sale(&gumroad, &["From", "To", "Subject", "Message-ID"]).as_bytes());
    let first = daemon.drain().await.unwrap();
    assert_eq!(first.fulfilled, 1, "{first}");
    // PayPal's own signed sale under the Message-ID Gumroad's mail had (a careless generator, or a copy).
    let paypal_sale = sale(0, VENDOR_ADDRESS).replace("attack-0@paypal.com", &format!("{GUMROAD_ID}@worker-17.mail"));
    assert!(paypal_sale.contains(&format!("<{GUMROAD_ID}@worker-17.mail>")), "the PayPal fixture changed");
    daemon.source.deliver("01-paypal", paypal.sign(&paypal_sale).as_bytes());
    let second = daemon.drain().await.unwrap();

    assert_eq!((second.fulfilled, second.skipped), (1, 0), "{second}");
    assert_eq!(daemon.mailer.to("buyer0@example.com").len(), 1, "the PayPal buyer got their serial");
}
