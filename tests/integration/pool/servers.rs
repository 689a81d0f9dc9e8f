//! Code pools through the built binary against real Dovecot and a real SMTP server (aiosmtpd) on loopback,
//! with signed PayPal orders for a product whose licences are pool codes: stock running out while the daemon
//! runs and an import through the control socket answering the order that waited; and the daemon SIGKILLed
//! again and again while it hands out codes.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::daemon::{append_orders, wait_folders, wait_running};
use crate::support::binary::{VENDOR, config, is_reply, order_ids};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, done_folder};

/// The test config's product, with its serial settings replaced by a pool alerting below `low_water`.
fn pool_config(imap_port: u16, smtp_port: u16, orders: &Orders, low_water: u32) -> String {
    let config = config(imap_port, smtp_port, orders, "");
    let serial = r#"serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }"#;
    assert!(config.contains(serial), "the test config changed");
    config.replace(serial, &format!("pool = {{ low_water = {low_water} }}"))
}

fn code(n: usize) -> String {
    format!("POOLCODE-{n:04}-XYZ")
}

/// Every pool code a message carries.
fn codes_in(message: &str) -> Vec<String> {
    let mut codes: Vec<String> =
        message.match_indices("POOLCODE-").filter_map(|(at, _)| message.get(at..at + 17)).map(str::to_owned).collect();
    codes.sort();
    codes.dedup();
    codes
}

/// Writes `codes` to `name` in the tool's folder and runs `keypost pool import pro name`; returns its stdout.
fn import(keypost: &Keypost, name: &str, codes: &[String]) -> String {
    std::fs::write(keypost.dir().join(name), codes.join("\n") + "\n").unwrap();
    let output = keypost.tool(&["pool", "import", "pro", name]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn wait_until(timeout: Duration, what: &str, keypost: &Keypost, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}:\n{}", keypost.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_codes_answers_two_of_three_orders_and_an_import_while_it_runs_answers_the_third() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&pool_config(dovecot.port, sink.port, &orders, 1));
    assert!(import(&keypost, "first.txt", &[code(1), code(2)]).starts_with("pro: 2 code(s) added"));
    keypost.start();
    wait_running(&keypost, Duration::from_secs(20));
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..3).await;
    wait_folders(&mut client, &[("INBOX", 0), (done_folder().as_str(), 3)], Duration::from_secs(30), &keypost).await;
    let replies = || sink.messages().into_iter().filter(|m| is_reply(m)).collect::<Vec<_>>();
    wait_until(Duration::from_secs(30), "two replies arrived", &keypost, || replies().len() >= 2);
    let alerts = || sink.messages().into_iter().filter(|m| !is_reply(m)).collect::<Vec<_>>();
    wait_until(Duration::from_secs(30), "the review alert arrived", &keypost, || {
        alerts().iter().any(|a| a.contains("review: paypal/") && a.contains("once codes are imported"))
    });

    let first = replies();
    assert_eq!(first.len(), 2, "two orders answered, the third waits: {first:?}");
    let mut handed: BTreeMap<String, String> = BTreeMap::new();
    for reply in &first {
        let (ids, codes) = (order_ids(reply), codes_in(reply));
        assert_eq!((ids.len(), codes.len()), (1, 1), "one order, one code: {reply}");
        handed.insert(ids[0].clone(), codes[0].clone());
    }
    let mut given: Vec<&String> = handed.values().collect();
    given.sort();
    assert_eq!(given, [&code(1), &code(2)], "two distinct codes");
    let waiting = (0..3).map(Orders::id).find(|id| !handed.contains_key(id)).unwrap();
    let status = String::from_utf8_lossy(&keypost.tool(&["pool", "status"]).stdout).into_owned();
    assert!(
        status.contains("pro: 0 available, 2 handed out, 0 revoked; low-water mark 1; 1 order(s) waiting"),
        "{status}"
    );
    assert!(alerts().iter().any(|a| a.contains("pool empty: pro")), "{:?}", alerts());

    // While the daemon runs: the tool hands the codes over the control socket, the loop answers the order.
    let printed = import(&keypost, "second.txt", &[code(2), code(3)]);
    assert!(printed.contains("1 code(s) added; skipped: 0 already in the pool, 1 already handed out"), "{printed}");
    assert!(printed.contains("1 order(s) that waited for codes answered"), "{printed}");
    wait_until(Duration::from_secs(30), "the third reply arrived", &keypost, || replies().len() >= 3);
    let third = replies().into_iter().find(|r| order_ids(r) == [waiting.clone()]).expect("the waiting order's reply");
    assert_eq!(codes_in(&third), [code(3)]);
    let lookup = String::from_utf8_lossy(&keypost.tool(&["lookup", &waiting]).stdout).into_owned();
    assert!(lookup.contains(&code(3)) && lookup.contains("reply sent"), "{lookup}");
    keypost.stop();
    assert_eq!(replies().len(), 3, "nothing sent twice");
    client.logout().await;
}

const KILL_ORDERS: usize = 150;
const KILLS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_while_it_hands_out_codes_answers_every_order_with_one_code_and_never_gives_a_code_twice() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..KILL_ORDERS).await;
    let mut keypost = Keypost::new(&pool_config(dovecot.port, sink.port, &orders, 0));
    let codes: Vec<String> = (0..KILL_ORDERS).map(code).collect();
    assert!(import(&keypost, "codes.txt", &codes).starts_with(&format!("pro: {KILL_ORDERS} code(s) added")));
    let mut progress = Vec::new();
    for kill in 0..KILLS {
        keypost.start();
        // Past start-up (the IMAP login), then until 1 to 6 further messages arrived or 20 ms to 3 s passed:
        // between orders, mid-send, just after a commit. A batch is decided whole before its one durable commit
        // (60 orders took ~0.6 s in a debug build) and a kill before that commit loses all of it, so a shorter
        // wait would kill every run before its first reply.
        let started = Instant::now();
        while keypost.log().matches("keypost is running.").count() <= kill {
            assert!(started.elapsed() < Duration::from_secs(20), "keypost did not start:\n{}", keypost.log());
            std::thread::sleep(Duration::from_millis(5));
        }
        let target = sink.count() + fastrand::usize(1..=6);
        let deadline = Instant::now() + Duration::from_millis(fastrand::u64(20..3000));
        while Instant::now() < deadline && sink.count() < target {
            std::thread::sleep(Duration::from_millis(fastrand::u64(1..4)));
        }
        keypost.kill();
        progress.push(sink.count());
    }
    keypost.start();
    wait_folders(
        &mut client,
        &[("INBOX", 0), (done_folder().as_str(), KILL_ORDERS as u32)],
        Duration::from_secs(90),
        &keypost,
    )
    .await;
    let replies = || sink.messages().into_iter().filter(|m| is_reply(m)).collect::<Vec<_>>();
    wait_until(Duration::from_secs(60), "every order answered", &keypost, || {
        replies().iter().flat_map(|r| order_ids(r)).collect::<std::collections::BTreeSet<_>>().len() >= KILL_ORDERS
    });
    keypost.stop();

    let mut by_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for reply in replies() {
        let ids = order_ids(&reply);
        assert_eq!(ids.len(), 1, "one order per reply: {reply}");
        by_order.entry(ids[0].clone()).or_default().push(reply);
    }
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = 0;
    for (id, copies) in &by_order {
        assert!(copies.iter().all(|c| c == &copies[0]), "{id}: a repeated reply differs from the first");
        duplicates += copies.len() - 1;
        let codes = codes_in(&copies[0]);
        assert_eq!(codes.len(), 1, "{id}: exactly one code: {}", copies[0]);
        if let Some(other) = owner.insert(codes[0].clone(), id.clone()) {
            panic!("code {} given to {other} and to {id}", codes[0]);
        }
    }
    let missing: Vec<String> = (0..KILL_ORDERS).map(Orders::id).filter(|id| !by_order.contains_key(id)).collect();
    assert!(missing.is_empty(), "orders never answered: {missing:?}");
    assert_eq!(owner.len(), KILL_ORDERS, "{KILL_ORDERS} distinct codes");
    let status = String::from_utf8_lossy(&keypost.tool(&["pool", "status"]).stdout).into_owned();
    assert!(status.starts_with(&format!("pro: 0 available, {KILL_ORDERS} handed out, 0 revoked")), "{status}");
    // A kill "mid-drain" came after the daemon answered something in its run and before it answered everything.
    let killed_mid_drain = crate::support::killed_mid_drain(&progress, KILL_ORDERS);
    println!(
        "pool under kill -9: {KILLS} kills ({killed_mid_drain} mid-drain), messages after each kill {progress:?}; \
         {} orders answered with {} distinct codes, {duplicates} identical repeat(s)",
        by_order.len(),
        owner.len()
    );
    // The kills aim at the moment the sink took a reply, and replies go out over `outbox.smtp.pool_size` (2 by
    // default) connections at once: each kill can catch one accepted-but-unrecorded reply per connection.
    assert!(duplicates <= KILLS * 2, "at most one repeat per kill and SMTP connection, got {duplicates}");
    assert!(killed_mid_drain >= KILLS / 2, "the kills must land while codes are handed out: {progress:?}");
    client.logout().await;
}
