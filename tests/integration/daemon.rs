//! Integration tests: the keypost daemon binary (`keypost run`, as a user runs it) against real Dovecot and
//! SMTP servers on loopback, with signed PayPal orders. Here: one order while it idles, and a backlog of 500.
//! `fallbacks`: a Dovecot without IDLE and MOVE, and one restarted mid-run; `smtp`: 4xx for a while, and 5xx;
//! `kill`: SIGKILLed 25 times while draining 300 orders; `sigterm`: a clean stop mid-batch, with sd_notify;
//! `linked`: E-junkie's and PayPal's notices of one purchase answered once.
use std::time::{Duration, Instant};

use crate::support::binary::{assert_one_reply_each, config, order_ids};
use crate::support::{Dovecot, Keypost, Orders, SmtpSink, TestImap, done_folder};

mod fallbacks;
mod kill;
mod linked;
mod sigterm;
mod smtp;
mod subscription;

/// Waits up to `timeout` until keypost's log shows it is running (connected, ready).
pub(crate) fn wait_running(keypost: &Keypost, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    // The latest start's own line: after a restart, the earlier starts' logs hold it already.
    while !keypost.last_run_log().contains("keypost is running.") {
        assert!(Instant::now() < deadline, "keypost did not start:\n{}", keypost.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `timeout` until the folders hold these counts (absent folders count as 0); fails showing
/// keypost's log.
pub(crate) async fn wait_folders(
    client: &mut TestImap,
    expected: &[(&str, u32)],
    timeout: Duration,
    keypost: &Keypost,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = client.folder_counts().await;
        let matches = expected.iter().all(|(folder, n)| counts.get(*folder).copied().unwrap_or(0) == *n);
        if matches {
            return;
        }
        assert!(Instant::now() < deadline, "folders never reached {expected:?}: {counts:?}\n{}", keypost.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn append_orders(client: &mut TestImap, orders: &Orders, numbers: std::ops::Range<usize>) {
    for n in numbers {
        client.append("INBOX", &orders.mail(n)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_appended_while_keypost_runs_gets_one_reply_and_is_filed_as_done() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));

    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..1).await;
    let received = sink.received(1, Duration::from_secs(30));
    assert_eq!(received.len(), 1, "no reply within 30 s:\n{}", keypost.log());
    wait_folders(&mut client, &[("INBOX", 0), (done_folder().as_str(), 1)], Duration::from_secs(10), &keypost).await;
    keypost.stop();

    let received = sink.received(2, Duration::ZERO);
    assert_one_reply_each(received.iter().map(String::as_str), 1);
    let reply = &received[0];
    assert!(reply.contains("buyer0@example.com"), "to the buyer: {reply}");
    assert!(reply.contains("Licensee 0"), "the licensee to type: {reply}");
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_500_orders_present_before_start_gets_exactly_one_reply_each() {
    const ORDERS: usize = 500;
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..ORDERS).await;

    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    let started = Instant::now();
    keypost.start();
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), ORDERS as u32)],
        Duration::from_secs(90),
        &keypost,
    )
    .await;
    let drained = started.elapsed();
    keypost.stop();

    let received = sink.received(ORDERS + 1, Duration::ZERO);
    assert_one_reply_each(received.iter().map(String::as_str), ORDERS);
    assert_eq!(received.len(), ORDERS, "nothing but the replies");
    println!("{ORDERS} orders drained in {:.1} s", drained.as_secs_f64());
    client.logout().await;
}

#[test]
fn order_ids_are_found_once_per_message() {
    let text = format!("order {} and again {}; not E2E12 nor E2Exyz", Orders::id(7), Orders::id(7));
    assert_eq!(order_ids(&text), [Orders::id(7)]);
}
