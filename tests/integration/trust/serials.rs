//! The attack messages of the security review through the daemon itself (real `email::parse`, real PayPal
//! template, real verifier, real store and serial maker; in-memory mailbox and mailer): none gets a serial, each
//! is set aside, and genuine orders delivered with them are fulfilled. RSA-2048 signatures; the key of selector
//! `s1` is pinned (DKIM path), the one of `s2` is not (the vendor's Authentication-Results decide).
use keypost::config::{Loaded, Problems};
use keypost::daemon::Daemon;

use super::*;
use crate::pipeline::fakes::{MemorySource, RecordingMailer, TestDaemon};

pub(super) const VENDOR_ADDRESS: &str = "sales@vendor.example";
const FIXTURE_ID: &str = "5TY12345AB678901C";
const AR_PASS: &str = "mx.vendor.example; dkim=pass header.d=paypal.com header.s=s2";

/// The PayPal sale fixture (its Authentication-Results dropped) as order `n`: its own id, Message-ID and buyer.
pub(super) fn sale(n: usize, to: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/paypal/sale_plain_text.eml");
    let fixture = std::fs::read_to_string(path).unwrap();
    assert!(fixture.contains(FIXTURE_ID) && fixture.contains("To: sales@vendor.example"), "the fixture changed");
    let lines: Vec<_> = fixture.lines().filter(|line| !line.starts_with("Authentication-Results:")).collect();
    (lines.join("\r\n") + "\r\n")
        .replace(FIXTURE_ID, &format!("ATTACK{n:011}"))
        .replace("pp-sale-1@paypal.com", &format!("attack-{n}@paypal.com"))
        .replace("jane.buyer@example.com", &format!("buyer{n}@example.com"))
        .replace("To: sales@vendor.example", &format!("To: {to}"))
}

fn buyer(n: usize) -> String {
    format!("buyer{n}@example.com")
}

fn below_signature(signed: &str, line: &str) -> String {
    let end = signed.find("\r\nFrom:").unwrap() + 2;
    format!("{}{line}\r\n{}", &signed[..end], &signed[end..])
}

fn daemon(state: &std::path::Path, pinned: &TestSigner) -> TestDaemon {
    daemon_pinning(state, &[pinned])
}

/// The daemon with the PayPal template and the others built in, `pinned` keys, orders bound to the vendor.
pub(super) fn daemon_pinning(state: &std::path::Path, pinned: &[&TestSigner]) -> TestDaemon {
    let loaded = loaded(state, pinned);
    let core = keypost::daemon::build::core(&loaded).unwrap();
    let reader = keypost::daemon::build::reader(&loaded).unwrap();
    let verifier = Verifier::new(&loaded.config.trust).unwrap();
    Daemon::new(MemorySource::default(), RecordingMailer::default(), core, reader, verifier)
}

/// The configuration `daemon_pinning` runs with, its state in `state`.
pub(super) fn loaded(state: &std::path::Path, pinned: &[&TestSigner]) -> Loaded {
    let config = format!(
        r#"
[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"

[trust]
dns = false
authserv_id = "mx.vendor.example"
recipients = ["{VENDOR_ADDRESS}"]
{}
[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO", "Acme Pro"]
min_price = [{{ currency = "USD", amount = "20.00" }}]
serial = {{ product_code = 7, key = {{ inline = "00112233445566778899aabbccddeeff" }} }}
"#,
        pinned.iter().map(|key| key.pinned_toml()).collect::<String>()
    );
    let mut problems = Problems::new("test.toml");
    let config = keypost::config::parse(&config, &mut problems).unwrap_or_else(|| panic!("{:?}", problems.items()));
    config.validate(&mut problems);
    assert!(!problems.has_errors(), "{:?}", problems.items());
    Loaded { config, path: state.join("keypost.toml"), base_dir: state.to_owned(), warnings: vec![] }
}

#[tokio::test]
async fn the_review_attack_messages_through_the_daemon_get_no_serial_and_genuine_orders_do() {
    let (pinned, unpinned) = (TestSigner::rsa("paypal.com", "s1"), TestSigner::rsa("paypal.com", "s2"));
    let appended = "Acme Pro License                    $29.00 USD      100    $2900.00 USD\r\n";
    let attacks: Vec<(&str, String)> = vec![
        ("A-R: another seller's order with the vendor as an extra To on top", {
            let signed = unpinned.sign(&sale(2, "seller@other.example"));
            with_results(&[AR_PASS], &format!("To: {VENDOR_ADDRESS}\r\n{signed}"))
        }),
        ("A-R: l= signature with an item line appended", {
            with_results(&[AR_PASS], &format!("{}{appended}", unpinned.sign_with(&sale(3, VENDOR_ADDRESS), true)))
        }),
        ("A-R: header.d hidden in a quoted header.i", {
            let results = "mx.vendor.example; dkim=pass header.i=\"x header.d=paypal.com y\"@evil.example";
            with_results(&[results], &unpinned.sign(&sale(4, VENDOR_ADDRESS)))
        }),
        ("A-R: pass while keypost's own check of the pinned key fails", {
            let signed = pinned.sign(&sale(5, VENDOR_ADDRESS)).replace("$2", "$1");
            with_results(&["mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1"], &signed)
        }),
        ("DKIM: another seller's order with the vendor as an extra To", {
            below_signature(&pinned.sign(&sale(6, "seller@other.example")), &format!("To: {VENDOR_ADDRESS}"))
        }),
        ("DKIM: another seller's order with the vendor as an unsigned Cc", {
            below_signature(&pinned.sign(&sale(7, "seller@other.example")), &format!("Cc: {VENDOR_ADDRESS}"))
        }),
        ("DKIM: l= signature with an item line appended", {
            format!("{}{appended}", pinned.sign_with(&sale(8, VENDOR_ADDRESS), true))
        }),
        ("DKIM: a header line without a colon", {
            below_signature(&pinned.sign(&sale(9, VENDOR_ADDRESS)), "X-Note no colon on this line")
        }),
        ("DKIM: a zero-width space in the registration name", {
            pinned.sign(&sale(10, VENDOR_ADDRESS).replace("Example Labs Ltd", "Example\u{200B} Labs Ltd"))
        }),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), &pinned);
    daemon.source.deliver("00-genuine-dkim", pinned.sign(&sale(0, VENDOR_ADDRESS)).as_bytes());
    daemon.source.deliver(
        "01-genuine-authentication-results",
        with_results(&[AR_PASS], &unpinned.sign(&sale(1, VENDOR_ADDRESS))).as_bytes(),
    );
    for (n, (_, raw)) in attacks.iter().enumerate() {
        daemon.source.deliver(&format!("{:02}-attack", n + 2), raw.as_bytes());
    }
    let outcome = daemon.drain().await.unwrap();

    assert_eq!(outcome.fulfilled, 2, "{outcome}");
    assert_eq!(daemon.mailer.to(&buyer(0)).len(), 1, "the genuine DKIM order");
    assert_eq!(daemon.mailer.to(&buyer(1)).len(), 1, "the genuine Authentication-Results order");
    for (n, (name, _)) in attacks.iter().enumerate() {
        let n = n + 2;
        assert!(daemon.mailer.to(&buyer(n)).is_empty(), "{name}: a reply went out");
        let lines = daemon.core.store.order_lines("paypal", &format!("ATTACK{n:011}")).unwrap();
        assert!(lines.iter().all(|line| line.license.is_none()), "{name}: a serial was made");
        let disposition = daemon.source.disposition(&format!("{n:02}-attack"));
        assert_eq!(disposition, Some(keypost::mailbox::Disposition::SetAside), "{name}");
    }
    assert_eq!(outcome.set_aside, attacks.len(), "{outcome}");
    println!("{} attack messages refused, {} genuine orders fulfilled", attacks.len(), outcome.fulfilled);
}
