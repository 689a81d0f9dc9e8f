//! In-process fakes at the pipeline's seams: an in-memory source, a recording mailer, a reader for a tiny
//! test mail shape, predictable serials, and a daemon built from them over a real store.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use keypost::config::{Loaded, Problems};
use keypost::daemon::{Core, Daemon, Licenser, Reader, Reading};
use keypost::email::{Address, Email};
use keypost::fulfil::Grant;
use keypost::mailbox::{Disposition, MailContent, RawMail, Source};
use keypost::order::{BuyerEmail, Licensee, LineItem, Money, Order, OrderId, OrderKind, PaymentId, Sequence, Sku};
use keypost::reply::{Mailer, Outgoing, SendError};
use keypost::store::Store;
use keypost::trust::{ProviderTrust, Verifier};

/// The configuration every in-process test runs with: two products, a vendor, the `shop` provider trusted on
/// its sender address (the test reader has no DKIM to offer).
const CONFIG: &str = r#"
[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"
send_attempts = 3

[trust]
dns = false
sender_only = ["shop", "processor"]

[limits]
per_provider_per_hour = 1000

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }
"#;

pub(crate) const VENDOR: &str = "vendor@acme.example";

/// A source whose waiting messages the test controls.
#[derive(Default)]
pub struct MemorySource {
    pub waiting: BTreeMap<String, Vec<u8>>,
    pub settled: Vec<(String, Disposition)>,
}

impl MemorySource {
    pub fn deliver(&mut self, key: &str, bytes: &[u8]) {
        self.waiting.insert(key.to_owned(), bytes.to_vec());
    }

    pub fn disposition(&self, key: &str) -> Option<Disposition> {
        self.settled.iter().rev().find(|(k, _)| k == key).map(|(_, d)| *d)
    }
}

impl Source for MemorySource {
    fn name(&self) -> String {
        "memory".into()
    }
    fn more_waiting(&self) -> bool {
        false
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        let take = self.waiting.iter().take(max);
        Ok(take.map(|(key, bytes)| RawMail { key: key.clone(), content: MailContent::Bytes(bytes.clone()) }).collect())
    }
    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        self.waiting.remove(key);
        self.settled.push((key.to_owned(), disposition));
        Ok(())
    }
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        keypost::mailbox::settle_one_by_one(self, settled).await
    }
    async fn wait_for_new(&mut self, _max_wait: Duration) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A mailer that records every send, and fails while told to (for every message, or for one recipient).
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: RefCell<Vec<Outgoing>>,
    pub failure: RefCell<Option<SendError>>,
    pub failure_for: RefCell<Option<(String, SendError)>>,
}

impl RecordingMailer {
    /// Messages sent with this address among the recipients.
    pub fn to(&self, address: &str) -> Vec<Outgoing> {
        self.sent.borrow().iter().filter(|m| m.to.iter().any(|t| t == address)).cloned().collect()
    }

    /// Messages sent to the vendor alone (alerts and notices, not Bcc copies).
    pub fn vendor_only(&self) -> Vec<String> {
        let sent = self.sent.borrow();
        sent.iter().filter(|m| m.to == [VENDOR]).map(|m| String::from_utf8_lossy(&m.bytes).into_owned()).collect()
    }
}

impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        if let Some(err) = self.failure.borrow().clone() {
            return Err(err);
        }
        if let Some((address, err)) = self.failure_for.borrow().clone()
            && mail.to.contains(&address)
        {
            return Err(err);
        }
        self.sent.borrow_mut().push(mail.clone());
        Ok(())
    }
}

/// Reads the test shape: headers `Message-ID:` and `From:`, then `key: value` lines; a line
/// `-- forwarded --` starts the original, whose lines alone make the content hash (as `email::parse` does).
pub struct TestReader;

impl Reader for TestReader {
    fn read(&self, bytes: &[u8]) -> Reading {
        let text = String::from_utf8_lossy(bytes);
        if text.contains("PANIC") {
            panic!("a parser bug");
        }
        let fields: BTreeMap<&str, &str> =
            text.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.trim(), v.trim())).collect();
        let body = text.split_once("\n\n").map_or(text.as_ref(), |(_, body)| body);
        let original = text.split_once("-- forwarded --").map_or(body, |(_, original)| original);
        let email = Email {
            message_id: fields.get("Message-ID").map(|s| s.to_string()),
            from: fields.get("From").map(|address| Address { name: None, address: address.to_string() }),
            subject: String::new(),
            date: None,
            text: original.to_owned(),
            forwarded: None,
            attached_original: None,
            authentication_results: vec![],
            content_hash: format!("{:x}", fnv(original.lines().map(str::trim).filter(|l| !l.is_empty()))),
            ..Email::default()
        };
        match fields.get("kind").copied() {
            None if text.contains("broken") => {
                Reading::Broken { template: "shop".into(), problems: vec!["no order id".into()] }
            }
            None => Reading::Unrecognised { near_misses: vec![], order_like: None },
            Some("payout") => Reading::NotAnOrder { template: "shop".into(), reason: "a payout".into() },
            Some(kind) => Reading::Order {
                email: Box::new(email),
                template: "shop".into(),
                order: Box::new(order(&fields, kind)),
            },
        }
    }

    fn provider_trust(&self, provider: &str) -> Option<ProviderTrust> {
        Some(ProviderTrust {
            provider: provider.to_owned(),
            dkim_domains: vec![],
            senders: vec!["@shop.example".into()],
            read_headers: Vec::new(),
        })
    }
}

fn fnv<'a>(lines: impl Iterator<Item = &'a str>) -> u64 {
    lines.flat_map(str::bytes).fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

fn order(fields: &BTreeMap<&str, &str>, kind: &str) -> Order {
    let kind = match kind {
        "refund" => OrderKind::Refund,
        "chargeback" => OrderKind::Chargeback,
        _ => OrderKind::Sale,
    };
    let items = fields
        .get("sku")
        .map(|sku| LineItem {
            sku: Sku::parse(sku).ok(),
            product_name: None,
            quantity: fields.get("qty").and_then(|q| q.parse().ok()).unwrap_or(1),
            unit_price: Some(Money { hundredths: 1900, currency: Some("EUR".into()) }),
        })
        .into_iter()
        .collect();
    Order {
        provider: fields.get("provider").copied().unwrap_or("shop").to_owned(),
        kind,
        id: OrderId::parse(fields.get("order").copied().unwrap_or("?")).unwrap(),
        test: fields.get("test").is_some(),
        licensee: fields.get("name").and_then(|n| Licensee::parse(n).ok()),
        buyer_name: None,
        buyer_email: fields.get("email").and_then(|e| BuyerEmail::parse(e).ok()),
        items,
        total: None,
        subscription: None,
        period_end: None,
        payment_id: fields.get("payment").and_then(|p| PaymentId::parse(p).ok()),
        sequence: fields.get("seq").and_then(|n| n.parse().ok()).map(|number| {
            Box::new(Sequence { scope: fields.get("provider").copied().unwrap_or("shop").to_owned(), number })
        }),
    }
}

/// Serials the tests can predict.
pub struct TestLicenser;

impl Licenser for TestLicenser {
    fn make(&self, grant: &Grant, _issued: time::Date) -> Result<String, String> {
        Ok(format!("SERIAL-{}-{}-{}", grant.product, grant.seats, grant.licensee.as_str().len()))
    }
}

/// A test mail in the [`TestReader`] shape.
pub fn mail(message_id: &str, lines: &str) -> Vec<u8> {
    format!("Message-ID: {message_id}\nFrom: shop@shop.example\n\n{lines}\n").into_bytes()
}

pub fn sale(order_id: &str, email: &str) -> String {
    format!("kind: sale\norder: {order_id}\nname: Åsa Öberg\nemail: {email}\nsku: ACME-PRO\nqty: 2")
}

pub type TestDaemon = Daemon<MemorySource, RecordingMailer>;

/// A daemon over a state folder (reopening the same folder is a restart).
pub fn daemon(state: &std::path::Path, extra_config: &str) -> TestDaemon {
    let mut problems = Problems::new("test.toml");
    let config = keypost::config::parse(&format!("{extra_config}\n{CONFIG}"), &mut problems).unwrap();
    assert!(problems.items().iter().all(|p| p.key.contains("serial")), "{:?}", problems.items());
    let loaded = Loaded { config, path: state.join("keypost.toml"), base_dir: state.to_owned(), warnings: vec![] };
    let renderer = keypost::daemon::build::renderer(&loaded).unwrap();
    let verifier = Verifier::new(&loaded.config.trust).unwrap();
    let core = Core::new(Store::open(&state.join("state")).unwrap(), loaded.config, renderer, Box::new(TestLicenser));
    Daemon::new(MemorySource::default(), RecordingMailer::default(), core, Box::new(TestReader), verifier)
}

/// The real reader (email parse + built-in templates), serial makers and trust checks over a store in `state`;
/// PayPal trusted on its sender address (the fixtures carry no usable DKIM).
pub fn real_parts(state: &std::path::Path) -> (Core, Box<dyn Reader>, Verifier) {
    real_parts_with(state, "")
}

/// [`real_parts`] with `extra` appended to the configuration (more tables, or keys of a table it lacks).
pub fn real_parts_with(state: &std::path::Path, extra: &str) -> (Core, Box<dyn Reader>, Verifier) {
    let config = r#"
[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"

[trust]
dns = false
sender_only = ["paypal"]

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = { product_code = 7, key = { inline = "00112233445566778899aabbccddeeff" } }
"#;
    let config = format!("{extra}\n{config}");
    let mut problems = Problems::new("test.toml");
    let config = keypost::config::parse(&config, &mut problems).unwrap();
    config.validate(&mut problems);
    assert!(!problems.has_errors(), "{:?}", problems.items());
    let loaded = Loaded { config, path: state.join("keypost.toml"), base_dir: state.to_owned(), warnings: vec![] };
    let core = keypost::daemon::build::core(&loaded).unwrap();
    let reader = keypost::daemon::build::reader(&loaded).unwrap();
    (core, reader, Verifier::new(&loaded.config.trust).unwrap())
}

/// [`real_parts`] with the in-memory source and the recording mailer.
pub fn real_daemon(state: &std::path::Path) -> TestDaemon {
    real_daemon_with(state, "")
}

/// [`real_daemon`] with [`real_parts_with`]'s extra configuration.
pub fn real_daemon_with(state: &std::path::Path, extra: &str) -> TestDaemon {
    let (core, reader, verifier) = real_parts_with(state, extra);
    Daemon::new(MemorySource::default(), RecordingMailer::default(), core, reader, verifier)
}

/// A template fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)).unwrap()
}
