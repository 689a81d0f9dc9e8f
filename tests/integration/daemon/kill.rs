//! The daemon binary, SIGKILLed at random moments while it drains 300 orders from real Dovecot into a real
//! SMTP server, restarted each time: every order answered, none missing; duplicates (only possible in the
//! window after the server accepted a reply and before "sent" was flushed) counted, printed, byte-identical.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{append_orders, wait_folders, wait_running};
use crate::support::binary::{VENDOR, config, is_reply, order_ids};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, done_folder};

const ORDERS: usize = 300;
const KILLS: usize = 25;

/// Until a random number (1 to 12) of further replies arrived, or a random time (10 ms to 3 s) passed,
/// whichever is first: so kills land during start-up, between orders and mid-send. A pass (up to `BATCH`
/// messages, here the whole backlog) is decided before its one durable commit, and a kill before that commit
/// loses all of it: the wait must be able to outlast deciding it in a debug build, or no kill lands mid-send.
fn wait_for_a_random_moment(sink: &RecordingSink) {
    let target = sink.count() + fastrand::usize(1..=12);
    let deadline = Instant::now() + Duration::from_millis(fastrand::u64(10..3000));
    while Instant::now() < deadline && sink.count() < target {
        std::thread::sleep(Duration::from_millis(fastrand::u64(1..4)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_again_and_again_against_real_servers_loses_no_order_and_repeats_only_identical_replies() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..ORDERS).await;
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    let started = Instant::now();
    let mut progress = Vec::new();
    for kill in 0..KILLS {
        keypost.start();
        if kill == 0 {
            // The first start creates the state. A kill inside that creation leaves a state the next start
            // refuses ("no schema version"): a separate start-up problem, reported; here kills land after it.
            wait_running(&keypost, Duration::from_secs(20));
        }
        wait_for_a_random_moment(&sink);
        keypost.kill();
        progress.push(sink.count());
    }
    keypost.start();
    // Up before it is stopped, even when the kills left nothing to do: a SIGTERM before the signal handlers are
    // in place ends the process by the signal's default action.
    wait_running(&keypost, Duration::from_secs(20));
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), ORDERS as u32)],
        Duration::from_secs(90),
        &keypost,
    )
    .await;
    keypost.stop();

    let arrivals = sink.arrivals();
    let mut copies: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
    for arrival in &arrivals {
        let text = String::from_utf8_lossy(&arrival.bytes);
        assert!(is_reply(&text), "only replies expected: {text}");
        let ids = order_ids(&text);
        assert_eq!(ids.len(), 1, "one order per reply: {text}");
        copies.entry(ids[0].clone()).or_default().push(&arrival.bytes);
    }
    let duplicates: Vec<(&String, usize)> =
        copies.iter().filter(|(_, c)| c.len() > 1).map(|(id, c)| (id, c.len() - 1)).collect();
    let duplicate_count: usize = duplicates.iter().map(|(_, n)| n).sum();
    // Mid-drain: the run had sent replies when it was killed, and not all of them.
    let killed_mid_drain = crate::support::killed_mid_drain(&progress, ORDERS);
    println!(
        "kill -9 against Dovecot + SMTP: {KILLS} kills ({killed_mid_drain} mid-drain), replies after each kill \
         {progress:?}; {} of {ORDERS} orders answered, {duplicate_count} duplicate(s) {duplicates:?}, {:.1} s",
        copies.len(),
        started.elapsed().as_secs_f64()
    );
    let missing: Vec<String> = (0..ORDERS).map(Orders::id).filter(|id| !copies.contains_key(id)).collect();
    assert!(missing.is_empty(), "orders never answered: {missing:?}");
    assert_eq!(copies.len(), ORDERS, "replies for unknown orders");
    for (id, copies) in &copies {
        assert!(copies.iter().all(|bytes| bytes == &copies[0]), "{id}: a duplicate differs from the first copy");
    }
    // A kill repeats at most the reply each SMTP connection (two by default) had handed over unanswered.
    assert!(duplicate_count <= KILLS * 2, "at most one repeat per kill and SMTP connection, got {duplicate_count}");
    assert!(killed_mid_drain >= KILLS / 2, "the kills must land while orders are being answered: {progress:?}");
    client.logout().await;
}
