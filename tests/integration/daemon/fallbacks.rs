//! The daemon binary against a Dovecot that hides IDLE and MOVE (polling; COPY + \Deleted + UID EXPUNGE), and
//! against one stopped and restarted while keypost drains orders.
use std::time::Duration;

use keypost::daemon::BATCH;

use super::{append_orders, wait_folders, wait_running};
use crate::support::binary::{VENDOR, assert_one_reply_each, config};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, done_folder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idle_and_move_keypost_polls_and_copies_then_expunges_each_order_once() {
    let dovecot = Dovecot::start_hiding(&["IDLE", "MOVE"]);
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..5).await;
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    append_orders(&mut client, &orders, 5..10).await;

    let count = sink.wait_count(Duration::from_secs(30), |n| n >= 10);
    assert_eq!(count, 10, "replies within 30 s:\n{}", keypost.log());
    wait_folders(&mut client, &[("INBOX", 0), (done_folder().as_str(), 10)], Duration::from_secs(10), &keypost).await;
    keypost.stop();

    let log = keypost.log();
    let connected = log.lines().find(|line| line.contains("IMAP connected.")).unwrap_or_default();
    assert!(connected.contains("idle=false") && connected.contains("move=false"), "{connected}");
    assert_one_reply_each(sink.messages().iter().map(String::as_str), 10);
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_restarted_mid_run_keypost_reconnects_and_answers_every_order_once() {
    // Large enough that the restart lands mid-drain: a batch is moved and the next fetched while replies go out,
    // so a backlog of a batch and a half was all answered before Dovecot was back.
    const BACKLOG: usize = 3 * BATCH;
    const TOTAL: usize = BACKLOG + 30;
    let mut dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..BACKLOG).await;
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();

    let before = sink.wait_count(Duration::from_secs(30), |n| n >= 10);
    assert!(before >= 10, "keypost did not start answering:\n{}", keypost.log());
    drop(client);
    dovecot.restart();
    let mid_drain = sink.count();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, BACKLOG..TOTAL).await;

    let count = sink.wait_count(Duration::from_secs(60), |n| n >= TOTAL);
    assert_eq!(count, TOTAL, "replies within 60 s of the restart:\n{}", keypost.log());
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), TOTAL as u32)],
        Duration::from_secs(20),
        &keypost,
    )
    .await;
    keypost.stop();

    assert!(mid_drain < BACKLOG, "the restart must land while orders were still waiting ({mid_drain} answered)");
    let connections = keypost.log().matches("IMAP connected.").count();
    assert!(connections >= 2, "keypost reconnected after the restart:\n{}", keypost.log());
    assert_one_reply_each(sink.messages().iter().map(String::as_str), TOTAL);
    println!("Dovecot restarted after {before} replies; {mid_drain} answered by the time it was back");
    client.logout().await;
}
