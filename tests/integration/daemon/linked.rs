//! One purchase, two notifications, through the daemon binary with real Dovecot and smtp-sink: E-junkie's notice
//! and PayPal's notice of the same payment (the fixture pair sharing transaction id 8DE45678FG901234H), each
//! signed by its provider, answered once in either arrival order, across a SIGKILL between the two; a refund
//! through either notice revokes the one license, and `keypost lookup` shows both notices as one purchase.
use std::time::Duration;

use super::{wait_folders, wait_running};
use crate::support::binary::{VENDOR, config, is_reply};
use crate::support::{Dovecot, Keypost, Orders, SmtpSink, TestImap, TestSigner, done_folder};

const TXN: &str = "8DE45678FG901234H";
const EJUNKIE: &str = "fixtures/ejunkie/sale_paid_through_paypal_same_payment_as_a_paypal_fixture.eml";
const PAYPAL: &str = "fixtures/paypal/sale_notification_of_payment_received_two_items.eml";
const PAYPAL_REFUND: &str = "fixtures/paypal/refund.eml";

/// Both providers' signers, pinned, and a product for each of the pair's two SKUs.
struct Pair {
    paypal: TestSigner,
    ejunkie: TestSigner,
}

impl Pair {
    fn new() -> Self {
        Self { paypal: TestSigner::new("paypal.com", "pair"), ejunkie: TestSigner::new("e-junkie.com", "pair") }
    }

    fn config(&self, dovecot: &Dovecot, sink: &SmtpSink) -> String {
        let extra = format!(
            "{}{}\n[[product]]\nid = \"support\"\nname = \"Acme Pro Support\"\nskus = [\"ACME-SUP\"]\n\
             serial = {{ scheme = \"name-cbc\", key = {{ inline = \"00112233445566778899aabbccddeeff\" }} }}\n",
            self.paypal.pinned_toml(),
            self.ejunkie.pinned_toml()
        );
        config(dovecot.port, sink.port, &Orders::new(), &extra)
    }

    /// A fixture as its provider sends it: without the fixture's notes and the recorded Authentication-Results,
    /// CRLF, with `replace` applied, signed.
    fn mail(&self, signer: &TestSigner, fixture: &str, replace: &[(&str, &str)]) -> Vec<u8> {
        let raw = std::fs::read_to_string(format!("{}/{fixture}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut lines = Vec::new();
        let mut in_note = false;
        for line in raw.lines() {
            in_note = line.starts_with("X-Keypost-Fixture-Source:") || (in_note && line.starts_with(' '));
            if !in_note && !line.starts_with("Authentication-Results:") {
                lines.push(line);
            }
        }
        let mut text = lines.join("\r\n") + "\r\n";
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        signer.sign(&text).into_bytes()
    }

    fn ejunkie_sale(&self) -> Vec<u8> {
        self.mail(&self.ejunkie, EJUNKIE, &[])
    }

    fn paypal_sale(&self) -> Vec<u8> {
        self.mail(&self.paypal, PAYPAL, &[])
    }

    /// PayPal's refund of the pair's payment.
    fn paypal_refund(&self) -> Vec<u8> {
        self.mail(&self.paypal, PAYPAL_REFUND, &[("5TY12345AB678901C", TXN)])
    }

    /// E-junkie's refund of the pair's payment: the sale's transaction data under E-junkie's refund subject (no
    /// real E-junkie refund mail was found; the template's refund rule reads the subject and `txn_id`).
    fn ejunkie_refund(&self) -> Vec<u8> {
        let replace = [
            ("Subject: E-junkie: Sale of", "Subject: E-junkie: Refund of"),
            ("payment_status: Completed", "payment_status: Refunded"),
            ("<ej-paypal-pair-1@e-junkie.com>", "<ej-paypal-pair-refund@e-junkie.com>"),
        ];
        self.mail(&self.ejunkie, EJUNKIE, &replace)
    }
}

fn lookup(keypost: &Keypost) -> String {
    let output = keypost.tool(&["lookup", TXN]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The license replies among what the sink received.
fn replies(received: &[String]) -> Vec<&String> {
    received.iter().filter(|m| is_reply(m)).collect()
}

async fn settled(client: &mut TestImap, count: u32, keypost: &Keypost) {
    wait_folders(client, &[("INBOX", 0), (done_folder().as_str(), count)], Duration::from_secs(30), keypost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypals_notice_after_e_junkies_and_a_crash_between_them_gets_no_second_serial_and_its_refund_revokes_the_one()
{
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let pair = Pair::new();
    let mut keypost = Keypost::new(&pair.config(&dovecot, &sink));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    client.append("INBOX", &pair.ejunkie_sale()).await;
    settled(&mut client, 1, &keypost).await;
    let received = sink.received(2, Duration::from_secs(30));
    assert_eq!(replies(&received).len(), 2, "one reply per license line:\n{}", keypost.log());

    // A crash between the two notices: the first one's outcome is in the state, nothing else survives.
    keypost.kill();
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    client.append("INBOX", &pair.paypal_sale()).await;
    settled(&mut client, 2, &keypost).await;
    let found = lookup(&keypost);
    assert_eq!(found.lines().count(), 3, "{found}");
    assert!(found.contains(&format!("paypal/{TXN}#0 sale link: no license;")), "{found}");
    assert!(found.contains(&format!("one purchase with ejunkie/{TXN} (answered there)")), "{found}");
    assert_eq!(found.matches(&format!("payment paypal:{TXN}")).count(), 3, "{found}");

    // PayPal's refund of the payment takes back the licenses E-junkie's notice got.
    client.append("INBOX", &pair.paypal_refund()).await;
    settled(&mut client, 3, &keypost).await;
    let found = lookup(&keypost);
    let revoked: Vec<&str> =
        found.lines().filter(|l| l.starts_with("ejunkie/") && l.ends_with("REVOKED (refund)")).collect();
    assert_eq!(revoked.len(), 2, "{found}");
    keypost.stop();

    let received = sink.received(usize::MAX, Duration::ZERO);
    assert_eq!(replies(&received).len(), 2, "no license went out for PayPal's notice:\n{}", keypost.log());
    let alerts: Vec<&String> = received.iter().filter(|m| !is_reply(m)).collect();
    assert_eq!(alerts.len(), 1, "the one revocation alert, nothing for the link: {alerts:?}");
    assert!(alerts[0].contains(&format!("ejunkie/{TXN}")) && alerts[0].contains(VENDOR), "{}", alerts[0]);
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_junkies_notice_after_paypals_is_linked_and_a_refund_through_e_junkie_revokes_paypals_license() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let pair = Pair::new();
    let mut client = dovecot.client().await;
    // Both waiting before the start: decided in one pass, PayPal's first.
    client.append("INBOX", &pair.paypal_sale()).await;
    client.append("INBOX", &pair.ejunkie_sale()).await;
    let mut keypost = Keypost::new(&pair.config(&dovecot, &sink));
    keypost.start();
    settled(&mut client, 2, &keypost).await;
    let found = lookup(&keypost);
    assert!(found.contains(&format!("ejunkie/{TXN}#0 sale link: no license;")), "{found}");
    assert!(found.contains(&format!("one purchase with paypal/{TXN} (answered there)")), "{found}");

    client.append("INBOX", &pair.ejunkie_refund()).await;
    settled(&mut client, 3, &keypost).await;
    let found = lookup(&keypost);
    let revoked: Vec<&str> =
        found.lines().filter(|l| l.starts_with("paypal/") && l.ends_with("REVOKED (refund)")).collect();
    assert_eq!(revoked.len(), 2, "{found}");
    keypost.stop();

    let received = sink.received(usize::MAX, Duration::ZERO);
    assert_eq!(replies(&received).len(), 2, "one reply per license line of PayPal's order:\n{}", keypost.log());
    client.logout().await;
}
