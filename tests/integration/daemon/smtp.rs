//! The daemon binary against an SMTP server that refuses: 4xx for a while (retried until accepted, one reply
//! per order), and 5xx for the buyers only (the reply is failed, and the alert still reaches the vendor).
use std::time::{Duration, Instant};

use super::{append_orders, wait_folders, wait_running};
use crate::support::binary::{VENDOR, assert_one_reply_each, config, is_reply};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, SinkMode, done_folder};

fn wait_until(timeout: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_answering_4xx_for_a_while_then_accepting_gets_one_reply_per_order() {
    const ORDERS: usize = 3;
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    sink.set_mode(SinkMode::Defer);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..ORDERS).await;

    // Every order tried and deferred at least twice (first send, then a retry) before the server recovers.
    wait_until(Duration::from_secs(30), "each order was deferred twice", || sink.deferred() >= 2 * ORDERS);
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), ORDERS as u32)],
        Duration::from_secs(10),
        &keypost,
    )
    .await;
    assert_eq!(sink.count(), 0, "nothing accepted while deferring");
    sink.set_mode(SinkMode::Accept);

    let count = sink.wait_count(Duration::from_secs(30), |n| n >= ORDERS);
    assert_eq!(count, ORDERS, "replies within 30 s of the server recovering:\n{}", keypost.log());
    keypost.stop();
    assert_one_reply_each(sink.messages().iter().map(String::as_str), ORDERS);
    for n in 0..ORDERS {
        let lookup = keypost.tool(&["lookup", &Orders::id(n)]);
        let text = String::from_utf8_lossy(&lookup.stdout);
        assert!(text.contains("reply sent"), "{text}");
    }
    println!("{} deferrals before the server accepted", sink.deferred());
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_answering_5xx_for_the_buyer_fails_the_order_once_and_the_alert_reaches_the_vendor() {
    const ORDERS: usize = 2;
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    sink.set_mode(SinkMode::RefuseBuyers);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..ORDERS).await;

    let count = sink.wait_count(Duration::from_secs(30), |n| n >= ORDERS);
    assert_eq!(count, ORDERS, "one alert per order within 30 s:\n{}", keypost.log());
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), ORDERS as u32)],
        Duration::from_secs(10),
        &keypost,
    )
    .await;
    keypost.stop();

    // The state says "failed after 1 attempt" (below) and the outbox is empty: nothing left to retry later.
    assert_eq!(sink.refused(), ORDERS, "each reply tried once: a 5xx is not retried");
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), ORDERS, "alerts only");
    for n in 0..ORDERS {
        let id = Orders::id(n);
        let alert = arrivals
            .iter()
            .map(|a| (a, String::from_utf8_lossy(&a.bytes)))
            .find(|(_, text)| text.contains(&format!("send failed: paypal/{id}")))
            .unwrap_or_else(|| panic!("no alert for {id}"));
        assert_eq!(alert.0.recipients, [VENDOR]);
        assert!(!is_reply(&alert.1), "an alert, not the license");
        let lookup = keypost.tool(&["lookup", &id]);
        let text = String::from_utf8_lossy(&lookup.stdout);
        assert!(text.contains("reply failed after 1 attempt(s)") && text.contains("550"), "{text}");
    }
    let export = keypost.tool(&["export"]);
    let export = String::from_utf8_lossy(&export.stdout);
    let failed = export.lines().filter(|line| line.contains("\"state\":\"failed\"")).count();
    assert_eq!((export.lines().count(), failed), (ORDERS, ORDERS), "{export}");
    client.logout().await;
}
