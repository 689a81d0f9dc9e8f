//! A subscription's life through `keypost run` against real Dovecot and SMTP: Paddle's first payment, its
//! renewal (mailed twice, and once more as another message about the same payment), its cancellation and the
//! renewal's refund, then `keypost extend` over the control socket; what the buyer and the vendor receive, and
//! what `lookup` and `verify` say. The mails are the Paddle fixtures (reconstructed from Paddle's documentation),
//! with dates moved to today and DKIM-signed by a key the config pins. Gumroad's subscription mails (renders of
//! its own mail views) take the same path without any id: the renewal finds the licence by the buyer.
use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::{wait_folders, wait_running};
use crate::support::binary::{VENDOR, config, is_reply};
use crate::support::{Dovecot, Keypost, Orders, SmtpSink, TestImap, TestSigner, done_folder};

/// The test's mail, appended to INBOX one message at a time: each is waited for until keypost filed it as done.
#[derive(Default)]
struct Inbox {
    done: u32,
}

impl Inbox {
    async fn deliver(&mut self, client: &mut TestImap, keypost: &Keypost, mail: Vec<u8>) {
        client.append("INBOX", &mail).await;
        self.done += 1;
        let done = done_folder();
        let folders = [("INBOX", 0), (done.as_str(), self.done)];
        wait_folders(client, &folders, Duration::from_secs(30), keypost).await;
    }
}

const BUYER: &str = "tomas.nowak@example.com";
const LICENSEE: &str = "Nowak Consulting";

fn product_toml(signer: &TestSigner) -> String {
    format!(
        r#"{pinned}
[[product]]
id = "acme"
name = "Acme Pro"
skus = ["8201"]
[product.serial]
product_code = 41
key = {{ inline = "00112233445566778899aabbccddeeff" }}
editions = ["standard", "pro"]
terms = {{ "8201" = {{ edition = "pro", term = "365d" }} }}
"#,
        pinned = signer.pinned_toml()
    )
}

/// A Paddle fixture, its dates moved (`next_bill_date` to `period_end`) and its Message-ID made `message_id`,
/// signed.
fn paddle(signer: &TestSigner, fixture: &str, period_end: Date, message_id: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/paddle/{fixture}.eml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with("Authentication-Results:") && !line.starts_with("X-Keypost-"))
        .map(|line| match line {
            l if l.starts_with("next_bill_date:") => format!("next_bill_date: {period_end}"),
            l if l.starts_with("Message-ID:") => format!("Message-ID: <{message_id}@paddle.com>"),
            l => l.to_owned(),
        })
        .collect();
    signer.sign(&(lines.join("\r\n") + "\r\n")).into_bytes()
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// The dumps addressed to `to` (by the envelope's RCPT line), with folded headers and quoted-printable soft
/// line breaks undone so a subject or a sentence is found whole.
fn to(dumps: &[String], to: &str) -> Vec<String> {
    let addressed = dumps.iter().filter(|dump| dump.lines().any(|l| l.starts_with("X-Rcpt-Args:") && l.contains(to)));
    addressed
        .map(|dump| dump.replace("=\r\n", "").replace("=\n", "").replace("\r\n ", " ").replace("\n ", " "))
        .collect()
}

/// The serial in a `lookup` line of `order`.
fn serial_of(lookup: &str, order: &str) -> String {
    let line = lookup.lines().find(|l| l.starts_with(&format!("{order}#0"))).unwrap_or_else(|| panic!("{lookup}"));
    let license = line.split("; buyer").next().unwrap();
    license.rsplit(": ").next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_sold_renewed_once_cancelled_refunded_and_extended_with_the_replies_the_buyer_gets() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let signer = TestSigner::new("paddle.com", "e2e");
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &Orders::new(), &product_toml(&signer)));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    let today = OffsetDateTime::now_utc().date();
    let (first_end, renewed_end) = (today + days(365), today + days(730));
    let mut inbox = Inbox::default();

    // The first payment: a serial valid through its next billing date.
    inbox.deliver(&mut client, &keypost, paddle(&signer, "subscription_first_payment", first_end, "sub-1")).await;
    assert_eq!(to(&sink.received(1, Duration::from_secs(20)), BUYER).len(), 1, "{}", keypost.log());

    // The renewal, the same mail again, and another message about the same payment: one new serial.
    let renewal = paddle(&signer, "subscription_renewal", renewed_end, "sub-2");
    inbox.deliver(&mut client, &keypost, renewal.clone()).await;
    inbox.deliver(&mut client, &keypost, renewal).await;
    inbox.deliver(&mut client, &keypost, paddle(&signer, "subscription_renewal", renewed_end, "sub-2-again")).await;
    let dumps = sink.received(2, Duration::from_secs(20));
    assert_eq!(to(&dumps, BUYER).len(), 2, "one renewal reply: {dumps:#?}");

    // The cancellation: the vendor is told, the buyer gets nothing (Paddle confirms it to them).
    inbox.deliver(&mut client, &keypost, paddle(&signer, "subscription_cancelled", renewed_end, "sub-3")).await;
    let dumps = sink.received(3, Duration::from_secs(20));
    let vendor = to(&dumps, VENDOR);
    assert!(vendor.iter().any(|m| m.contains("subscription cancelled: paddle/5120044-3310#0")), "{vendor:#?}");
    assert_eq!(to(&dumps, BUYER).len(), 2, "nothing to the buyer on a cancellation");

    // The renewal's refund revokes its serial at once.
    inbox.deliver(&mut client, &keypost, paddle(&signer, "subscription_payment_refunded", renewed_end, "sub-4")).await;
    let dumps = sink.received(4, Duration::from_secs(20));
    assert!(to(&dumps, VENDOR).iter().any(|m| m.contains("revoked: paddle/5120044-7781 (refund)")), "{dumps:#?}");

    // lookup by the first order shows the chain and each licence's state.
    let lookup = keypost.tool(&["lookup", "5120044-3310"]);
    let lookup = String::from_utf8(lookup.stdout).unwrap();
    let (first, renewed) = (serial_of(&lookup, "paddle/5120044-3310"), serial_of(&lookup, "paddle/5120044-7781"));
    assert!(lookup.contains(&format!("valid through {first_end}; subscription CANCELLED")), "{lookup}");
    assert!(lookup.contains("renew: acme x1") && lookup.contains("REVOKED (refund); renewal of paddle/5120044-3310#0"));

    // The vendor extends the licence by hand: 30 days past what is still paid for (the refunded period is not).
    let extended = keypost.tool(&["extend", "paddle", "5120044-3310", "--days", "30"]);
    let said = String::from_utf8(extended.stdout).unwrap();
    assert!(said.starts_with("extended as manual/X-") && said.contains(&(first_end + days(30)).to_string()), "{said}");
    let dumps = sink.received(5, Duration::from_secs(20));
    keypost.stop();

    // The buyer received three serials, each once: the first, the renewal's, the extension's.
    let buyer: Vec<String> = to(&dumps, BUYER).into_iter().filter(|m| is_reply(m)).collect();
    assert_eq!(buyer.len(), 3, "{buyer:#?}");
    let lookup = String::from_utf8(keypost.tool(&["lookup", BUYER]).stdout).unwrap();
    let extension = lookup.lines().find(|l| l.contains("extension of paddle/5120044-3310#0")).unwrap();
    let extension_serial = extension.split("; buyer").next().unwrap().rsplit(": ").next().unwrap();
    for serial in [first.as_str(), renewed.as_str(), extension_serial] {
        assert_eq!(buyer.iter().filter(|m| m.contains(serial)).count(), 1, "{serial} in {buyer:#?}");
    }
    // Each serial carries its own expiry.
    for (serial, last_day) in
        [(&first, first_end), (&renewed, renewed_end), (&extension_serial.to_owned(), first_end + days(30))]
    {
        let verify = |at: Date| {
            let args = ["verify", "-p", "acme", "-n", LICENSEE, "-s", serial, "--at", &at.to_string()];
            keypost.tool(&args).status.code()
        };
        assert_eq!((verify(last_day), verify(last_day + days(1))), (Some(0), Some(1)), "{serial} through {last_day}");
    }
    client.logout().await;
}

const SUBSCRIBER: &str = "jo.example@example.com";

fn gumroad_toml(signer: &TestSigner) -> String {
    format!(
        r#"{pinned}
[[product]]
id = "monthly"
name = "Acme Pro Monthly"
skus = ["Acme Pro Monthly"]
[product.serial]
product_code = 42
key = {{ inline = "00112233445566778899aabbccddeeff" }}
terms = {{ "Acme Pro Monthly" = {{ term = "31d" }} }}
"#,
        pinned = signer.pinned_toml()
    )
}

/// A Gumroad fixture addressed to the mailbox keypost trusts, signed.
fn gumroad(signer: &TestSigner, fixture: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/gumroad/{fixture}.eml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with("Authentication-Results:") && !line.starts_with("X-Keypost-"))
        .map(|line| if line.starts_with("To:") { "To: sales@vendor.example".to_owned() } else { line.to_owned() })
        .collect();
    signer.sign(&(lines.join("\r\n") + "\r\n")).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gumroad_recurring_charge_renews_the_subscribers_licence_instead_of_selling_a_second_one() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let signer = TestSigner::new("gumroad.com", "e2e");
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &Orders::new(), &gumroad_toml(&signer)));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    let today = OffsetDateTime::now_utc().date();
    let (first_end, renewed_end) = (today + days(31), today + days(62));
    let mut inbox = Inbox::default();

    // The first charge ("You have a new subscriber for ...") is a sale: a serial for the SKU's 31 days.
    inbox.deliver(&mut client, &keypost, gumroad(&signer, "subscription_first_sale")).await;
    let first_reply = to(&sink.received(1, Duration::from_secs(20)), SUBSCRIBER);
    assert_eq!(first_reply.len(), 1, "{}", keypost.log());
    assert!(first_reply[0].contains("Subject: Your Acme Pro Monthly license"), "{first_reply:#?}");

    // The next charge, delivered twice: one renewal, through the SKU's term after the first expiry.
    let renewal = gumroad(&signer, "subscription_renewal");
    inbox.deliver(&mut client, &keypost, renewal.clone()).await;
    inbox.deliver(&mut client, &keypost, renewal).await;
    let dumps = sink.received(2, Duration::from_secs(20));
    let buyer = to(&dumps, SUBSCRIBER);
    assert_eq!(buyer.len(), 2, "one renewal reply: {dumps:#?}");
    let renewed = buyer.iter().find(|m| m.contains("Subject: Your Acme Pro Monthly license, renewed")).unwrap();
    assert!(renewed.contains(&format!("Valid until: {renewed_end}")), "{renewed}");

    // The subscriber cancels: the vendor is told, the licence runs to the end of what was paid.
    inbox.deliver(&mut client, &keypost, gumroad(&signer, "subscription_cancelled_by_customer")).await;
    let dumps = sink.received(3, Duration::from_secs(20));
    keypost.stop();
    assert!(to(&dumps, VENDOR).iter().any(|m| m.contains("subscription cancelled: gumroad/")), "{dumps:#?}");
    assert_eq!(to(&dumps, SUBSCRIBER).len(), 2, "nothing to the buyer on a cancellation");

    // One licence chain: the first serial and its renewal, each valid through its own last day.
    let lookup = String::from_utf8(keypost.tool(&["lookup", SUBSCRIBER]).stdout).unwrap();
    assert_eq!(lookup.lines().filter(|l| l.contains("renewal of gumroad/")).count(), 1, "{lookup}");
    assert!(lookup.contains(&format!("valid through {first_end}; subscription CANCELLED")), "{lookup}");
    let serials: Vec<String> = lookup
        .lines()
        .filter(|l| l.starts_with("gumroad/") && (l.contains(" issue: ") || l.contains(" renew: ")))
        .map(|l| l.split("; buyer").next().unwrap().rsplit(": ").next().unwrap().to_owned())
        .collect();
    assert_eq!(serials.len(), 2, "{lookup}");
    for (serial, last_day) in serials.iter().zip([first_end, renewed_end]) {
        assert_eq!(buyer.iter().filter(|m| m.contains(serial.as_str())).count(), 1, "{serial} in {buyer:#?}");
        let verify = |at: Date| {
            let args = ["verify", "-p", "monthly", "-n", "Jo Example", "-s", serial, "--at", &at.to_string()];
            keypost.tool(&args).status.code()
        };
        assert_eq!((verify(last_day), verify(last_day + days(1))), (Some(0), Some(1)), "{serial} through {last_day}");
    }
    client.logout().await;
}
