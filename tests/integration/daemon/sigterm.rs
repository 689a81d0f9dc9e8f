//! The daemon binary under a service manager: SIGTERM while it is busy with a batch stops deciding after the
//! message in hand, sends and files everything it decided, flushes and exits 0; READY, STATUS, WATCHDOG and STOPPING
//! reach NOTIFY_SOCKET.
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keypost::daemon::BATCH;

use super::{append_orders, wait_folders};
use crate::support::binary::{VENDOR, assert_one_reply_each, config};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, done_folder};

/// Collects every datagram sent to the socket, on a thread, until the socket's read timeout passes idle.
fn listen(socket: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&messages);
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            collected.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_busy_finishes_the_message_in_hand_exits_0_and_notifies_the_service_manager() {
    // Three batches: one whose replies are on their way at the stop, one decided beside them, one left waiting.
    const ORDERS: usize = 3 * BATCH;
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut client = dovecot.client().await;
    append_orders(&mut client, &orders, 0..ORDERS).await;
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    let socket_path = keypost.dir().join("notify.sock");
    let notifications = listen(UnixDatagram::bind(&socket_path).unwrap());
    keypost.start_with(|command| {
        command.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "2000000").env_remove("WATCHDOG_PID");
    });

    let before = sink.wait_count(Duration::from_secs(30), |n| n >= 20);
    assert!(before >= 20, "keypost did not start answering:\n{}", keypost.log());
    keypost.terminate();
    let status = keypost.wait_exit(Duration::from_secs(20));
    let after = sink.count();
    assert!(status.is_some_and(|s| s.success()), "exit after SIGTERM: {status:?}\n{}", keypost.log());

    // Stopping between messages finishes the batches in hand (the one whose replies are on their way, and the
    // next, decided beside them up to the stop), and the rest stays.
    assert!(after < ORDERS && after <= before + 2 * BATCH, "{before} replies at SIGTERM, {after} at exit");
    let messages = sink.messages();
    assert_one_reply_each(messages.iter().map(String::as_str), after);
    // Flushed: every answered order is recorded as sent and its message filed; nothing half done.
    wait_folders(
        &mut client,
        &[("INBOX", (ORDERS - after) as u32), (done_folder().as_str(), after as u32)],
        Duration::ZERO,
        &keypost,
    )
    .await;
    let export = keypost.tool(&["export"]);
    let export = String::from_utf8_lossy(&export.stdout);
    let sent = export.lines().filter(|line| line.contains("\"state\":\"sent\"")).count();
    assert_eq!((export.lines().count(), sent), (after, after), "{export}");

    // The datagrams are all sent by now; the listening thread may still be reading them.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while notifications.lock().unwrap().last().is_none_or(|n| n != "STOPPING=1\n")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let notifications = notifications.lock().unwrap().clone();
    let first = notifications.first().map(String::as_str);
    assert_eq!(first, Some("READY=1\n"), "{notifications:?}");
    assert!(notifications.iter().any(|n| n.starts_with("STATUS=Since start: fulfilled")), "{notifications:?}");
    assert!(notifications.iter().any(|n| n == "WATCHDOG=1\n"), "{notifications:?}");
    assert_eq!(notifications.last().map(String::as_str), Some("STOPPING=1\n"), "{notifications:?}");
    println!("SIGTERM after {before} replies; {after} at exit; {} notifications", notifications.len());
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_keypost_starts_ends_it_cleanly_once_it_is_up() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    // The config's first warning is written while keypost loads it, before the templates and the state: a
    // service manager's stop (or a test's) may come that early.
    let started = std::time::Instant::now();
    while !keypost.log().contains("inline secret") {
        assert!(started.elapsed() < Duration::from_secs(20), "keypost did not start:\n{}", keypost.log());
        std::thread::sleep(Duration::from_millis(1));
    }
    keypost.terminate();
    let status = keypost.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "exit after an early SIGTERM: {status:?}\n{}", keypost.log());
}
