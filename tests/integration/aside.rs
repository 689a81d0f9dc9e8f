//! Integration tests: `keypost aside list | show | release | drop`, as a user runs them: on the demo's Maildir
//! with no daemon (the tool opens the state), and on real Dovecot while `keypost run` holds the state (the
//! daemon carries them out over its control socket).
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::binary::config;
use crate::support::{self, Dovecot, Keypost, Orders, SmtpSink, TestImap};

/// The demo message a template recognises but cannot read (PayPal changed its layout).
const DEMO_ASIDE: &str = "09-paypal-sale-layout-changed";

fn demo(dir: &Path, args: &[&str]) -> Output {
    support::keypost(dir, &["--config", "demo.toml"]).args(args).output().unwrap()
}

fn stdout_of(output: &Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `aside list --json` as (id, reason) pairs.
fn listed(stdout: &str) -> Vec<(String, String)> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(stdout).unwrap();
    let field = |e: &serde_json::Value, name: &str| e[name].as_str().unwrap().to_owned();
    entries.iter().map(|e| (field(e, "id"), field(e, "reason"))).collect()
}

#[test]
fn a_set_aside_message_is_shown_released_read_again_and_dropped_with_its_reason_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    support::copy_demo(dir);
    stdout_of(&demo(dir, &["run", "--once"]), &["run"]);
    let list = stdout_of(&demo(dir, &["aside", "list", "--json"]), &["aside", "list"]);
    let entries = listed(&list);
    let ours = entries.iter().find(|(id, _)| id == DEMO_ASIDE).unwrap_or_else(|| panic!("{list}"));
    assert!(ours.1.contains("template paypal matched but failed"), "{list}");
    let has_ours = |dir: &Path| {
        let list = stdout_of(&demo(dir, &["aside", "list", "--json"]), &["aside", "list"]);
        listed(&list).iter().any(|(id, _)| id == DEMO_ASIDE)
    };

    let shown = stdout_of(&demo(dir, &["aside", "show", DEMO_ASIDE]), &["show"]);
    assert!(shown.contains("reason: template paypal matched but failed"), "{shown}");
    assert!(shown.contains("Message-ID: <pp-sale-broken@paypal.com>"), "the message itself: {shown}");

    stdout_of(&demo(dir, &["aside", "release", DEMO_ASIDE]), &["release"]);
    assert!(dir.join("demo-run/maildir/new").join(DEMO_ASIDE).exists(), "back in the inbox");
    assert!(!has_ours(dir), "released: no longer listed");
    // Still broken: read again, set aside again (a new record, listed again).
    let again = stdout_of(&demo(dir, &["run", "--once"]), &["run"]);
    assert!(again.contains("set aside: 1"), "{again}");
    assert!(has_ours(dir), "set aside again");

    let dropped = stdout_of(&demo(dir, &["aside", "drop", DEMO_ASIDE, "--reason", "test sale"]), &["drop"]);
    assert!(dropped.contains("filed as ignored"), "{dropped}");
    assert!(!has_ours(dir), "dropped: no longer listed");
    let month = keypost::mailbox::month(time::OffsetDateTime::now_utc());
    let ignored = dir.join(format!("demo-run/maildir/.keypost.ignored.{month}/cur/{DEMO_ASIDE}:2,S"));
    assert!(ignored.exists(), "moved to the ignored folder, not deleted");
    let store = keypost::store::Store::open(&dir.join("demo-run/state")).unwrap();
    let audit = store.audit().unwrap();
    let events: Vec<_> = audit.iter().filter(|a| a.subject.ends_with(DEMO_ASIDE)).map(|a| a.event.as_str()).collect();
    assert_eq!(events, ["set-aside", "released", "set-aside", "dropped"]);
    assert!(audit.iter().any(|a| a.event == "dropped" && a.detail == "dropped by the vendor: test sale"));
    drop(store);

    let missing = demo(dir, &["aside", "show", "no-such-id"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing set aside has the id"));
}

/// Until `aside list --json` shows `count` entries.
fn wait_listed(keypost: &Keypost, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = keypost.tool(&["aside", "list", "--json"]);
        if output.status.success() {
            let entries = listed(&String::from_utf8_lossy(&output.stdout));
            if entries.len() == count {
                return entries;
            }
        }
        assert!(Instant::now() < deadline, "never {count} listed: {output:?}\n{}", keypost.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn wait_counts(client: &mut TestImap, expected: &[(&str, u32)], keypost: &Keypost) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = client.folder_counts().await;
        if expected.iter().all(|(folder, n)| counts.get(*folder).copied().unwrap_or(0) == *n) {
            return;
        }
        assert!(Instant::now() < deadline, "folders never reached {expected:?}: {counts:?}\n{}", keypost.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_aside_imap_mail_is_released_and_dropped_over_the_control_socket_while_the_daemon_runs() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let orders = Orders::new();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    keypost.start();
    let mut client = dovecot.client().await;
    // Changed after signing: its DKIM signature fails, so it is set aside, never fulfilled.
    let forged = String::from_utf8(orders.mail(1)).unwrap().replace("Licensee 1", "Mallory");
    client.append("INBOX", forged.as_bytes()).await;
    wait_counts(&mut client, &[("INBOX", 0), ("keypost.set-aside", 1)], &keypost).await;
    let first = wait_listed(&keypost, 1);

    let shown = keypost.tool(&["aside", "show", &first[0].0]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Mallory"), "{shown:?}");
    let released = keypost.tool(&["aside", "release", &first[0].0]);
    assert!(released.status.success(), "{released:?}\n{}", keypost.log());
    // Back in INBOX under a new UID, read again, set aside again: listed once, under its new key.
    let second = wait_listed(&keypost, 1);
    assert_ne!(second[0].0, first[0].0, "read again as a new message");
    wait_counts(&mut client, &[("INBOX", 0), ("keypost.set-aside", 1)], &keypost).await;

    let dropped = keypost.tool(&["aside", "drop", &second[0].0, "--reason", "forged"]);
    assert!(dropped.status.success(), "{dropped:?}\n{}", keypost.log());
    assert!(String::from_utf8_lossy(&dropped.stdout).contains("moved to the ignored folder"));
    let ignored = support::ignored_folder();
    wait_counts(&mut client, &[("keypost.set-aside", 0), (ignored.as_str(), 1)], &keypost).await;
    wait_listed(&keypost, 0);
    keypost.stop();
    let sent = sink.received(10, Duration::ZERO);
    assert!(sent.iter().all(|m| !m.contains("buyer1@example.com")), "never fulfilled: {sent:?}");
    client.logout().await;
}
