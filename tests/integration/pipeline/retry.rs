//! A DKIM key lookup that fails for now (DNS down) is not a refusal: the message stays unsettled, nothing final
//! is recorded, it is checked again on later passes, and after `trust.retry_hours` it is set aside with an alert.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keypost::daemon::{Daemon, Reader, Reading};
use keypost::mailbox::Disposition;
use keypost::trust::{PinnedKey, ProviderTrust, TrustConfig, Verifier};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

use super::fakes::{TestDaemon, TestReader, daemon, sale};

/// The test reader, with the `shop` provider proven by a DKIM signature of `shop.example` (not its sender).
struct SignedShop;

impl Reader for SignedShop {
    fn read(&self, bytes: &[u8]) -> Reading {
        TestReader.read(bytes)
    }

    fn provider_trust(&self, provider: &str) -> Option<ProviderTrust> {
        Some(ProviderTrust {
            provider: provider.to_owned(),
            dkim_domains: vec!["shop.example".into()],
            senders: vec!["@shop.example".into()],
            read_headers: Vec::new(),
        })
    }
}

/// A sale signed by `shop.example`, and the key to pin to verify it.
fn signed_sale(order_id: &str) -> (Vec<u8>, PinnedKey) {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public_key = data_encoding::BASE64.encode(&key.public_key());
    let message = format!(
        "Message-ID: {order_id}@shop.example\r\nFrom: shop@shop.example\r\nSubject: Order\r\n\r\n{}\r\n",
        sale(order_id, "asa@example.com").replace('\n', "\r\n")
    );
    let signature = DkimSigner::from_key(key)
        .domain("shop.example")
        .selector("s1")
        .headers(["From", "Subject", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap();
    let pinned = PinnedKey { domain: "shop.example".into(), selector: "s1".into(), public_key };
    (format!("{}{message}", signature.to_header()).into_bytes(), pinned)
}

/// The fake daemon's core with a clock `offset` seconds ahead of now, behind `verifier`.
fn with_verifier(base: TestDaemon, verifier: Verifier, offset: &Arc<AtomicI64>) -> TestDaemon {
    let mut core = base.core;
    let (offset, start) = (Arc::clone(offset), time::OffsetDateTime::now_utc());
    core.set_clock(move || start + time::Duration::seconds(offset.load(Ordering::SeqCst)));
    Daemon::new(base.source, base.mailer, core, Box::new(SignedShop), verifier)
}

fn dns_down() -> Verifier {
    Verifier::with_dns_down(&TrustConfig { dns: true, ..TrustConfig::default() }).unwrap()
}

#[tokio::test]
async fn an_order_whose_key_cannot_be_looked_up_waits_unsettled_then_is_set_aside_after_retry_hours() {
    let dir = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let mut daemon = with_verifier(daemon(dir.path(), ""), dns_down(), &offset);
    let (raw, _) = signed_sale("R-1");
    daemon.source.deliver("r1", &raw);
    for hours in [0, 1, 23] {
        offset.store(hours * 3600, Ordering::SeqCst);
        let outcome = daemon.poll_once().await.unwrap();
        assert_eq!(
            (outcome.messages, outcome.retrying, outcome.set_aside, outcome.fulfilled),
            (1, 1, 0, 0),
            "{hours}h"
        );
        assert!(daemon.source.waiting.contains_key("r1") && daemon.source.settled.is_empty(), "{hours}h");
        assert!(daemon.core.store.source_record("memory", "r1").unwrap().is_none(), "nothing final at {hours}h");
        assert!(daemon.mailer.sent.borrow().is_empty(), "nothing sent at {hours}h");
    }
    let retries = daemon.core.store.audit().unwrap().into_iter().filter(|e| e.event == "retry").count();
    assert_eq!(retries, 1, "the first retry is audited, not every pass");
    offset.store(24 * 3600, Ordering::SeqCst);
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.retrying, outcome.set_aside), (0, 1), "{outcome}");
    assert_eq!(daemon.source.disposition("r1"), Some(Disposition::SetAside));
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("could not be verified for 24 hour(s)"), "{}", alerts[0]);
    assert!(daemon.mailer.to("asa@example.com").is_empty(), "never fulfilled");
    assert_eq!(daemon.core.store.retrying_since("memory/r1").unwrap(), None);
}

#[tokio::test]
async fn an_order_left_waiting_for_dns_is_fulfilled_once_its_key_can_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let mut down = with_verifier(daemon(dir.path(), ""), dns_down(), &offset);
    let (raw, pinned) = signed_sale("R-2");
    down.source.deliver("r2", &raw);
    assert_eq!(down.poll_once().await.unwrap().retrying, 1);
    assert!(down.core.store.retrying_since("memory/r2").unwrap().is_some());
    // The key becomes checkable (here: pinned) on a later pass; the message is handled as any other.
    let config = TrustConfig { dns: false, pinned_keys: vec![pinned], ..TrustConfig::default() };
    let base = Daemon::new(down.source, down.mailer, down.core, Box::new(SignedShop), dns_down());
    let mut up = with_verifier(base, Verifier::new(&config).unwrap(), &offset);
    offset.store(3600, Ordering::SeqCst);
    let outcome = up.poll_once().await.unwrap();
    assert_eq!((outcome.retrying, outcome.fulfilled), (0, 1), "{outcome}");
    assert_eq!(up.source.disposition("r2"), Some(Disposition::Done));
    assert_eq!(up.mailer.to("asa@example.com").len(), 1);
    assert_eq!(up.core.store.retrying_since("memory/r2").unwrap(), None, "the retry note is gone once settled");
}
