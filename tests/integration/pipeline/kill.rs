//! The built binary, killed with SIGKILL at random moments while it drains a few hundred orders from a Maildir
//! into the files outbox, restarted each time; at the end every order is answered exactly once or, in the one
//! accepted window (after the write, before "sent" is flushed), twice with identical bytes.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keypost::reply::files::SENDS_LOG;

const ORDERS: usize = 300;
const KILLS: usize = 25;

fn config() -> String {
    r#"
[state]
dir = "state"

[mailbox.maildir]
path = "mail"
poll_interval_secs = 1

[outbox.files]
dir = "out"

[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"
vendor_copy = "none"

[trust]
dns = false
sender_only = ["paypal"]

[limits]
per_provider_per_hour = 100000

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }
"#
    .to_owned()
}

/// `ORDERS` PayPal sales built from the template fixture, each with its own order id, buyer and Message-ID.
fn write_orders(maildir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/paypal/sale_plain_text.eml");
    let template = std::fs::read_to_string(&fixture).unwrap();
    std::fs::create_dir_all(maildir.join("new")).unwrap();
    for i in 0..ORDERS {
        let mail = template
            .replace("5TY12345AB678901C", &format!("KILL{i:013}"))
            .replace("jane.buyer@example.com", &format!("buyer{i}@example.com"))
            .replace("Example Labs Ltd", &format!("Licensee {i}"))
            .replace("pp-sale-1@paypal.com", &format!("pp-kill-{i}@paypal.com"));
        std::fs::write(maildir.join("new").join(format!("{i:05}.kill")), mail).unwrap();
    }
}

fn keypost(dir: &Path) -> Command {
    crate::support::keypost(dir, &["--config", "keypost.toml", "run"])
}

/// Message-ID -> the SHA-256 of every copy sent. Read while keypost appends to the log: a line not yet ended by
/// its newline is a write still under way (each record is one write), not a record.
fn sends(out: &Path) -> BTreeMap<String, Vec<String>> {
    let log = std::fs::read_to_string(out.join(SENDS_LOG)).unwrap_or_default();
    let mut sends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.split_inclusive('\n').filter_map(|line| line.strip_suffix('\n')) {
        let (id, hash) = line.split_once(' ').unwrap();
        sends.entry(id.to_owned()).or_default().push(hash.to_owned());
    }
    sends
}

fn replies(sends: &BTreeMap<String, Vec<String>>) -> usize {
    sends.keys().filter(|id| id.starts_with("keypost.reply.")).count()
}

/// Until a random number (1 to 12) of further replies went out, or a random time (10 ms to 3 s) passed,
/// whichever is first: so kills land during start-up, between orders and mid-send, on fast and slow machines.
/// A pass (up to `BATCH` messages, here the whole backlog) is decided whole before its one durable commit, and a
/// kill before that commit loses all of it: the wait must be able to outlast deciding one in a debug build, or
/// no kill ever lands mid-send.
fn wait_for_a_random_moment(out: &Path) {
    let target = replies(&sends(out)) + fastrand::usize(1..=12);
    let deadline = Instant::now() + Duration::from_millis(fastrand::u64(10..3000));
    while Instant::now() < deadline && replies(&sends(out)) < target {
        std::thread::sleep(Duration::from_millis(fastrand::u64(1..4)));
    }
}

#[test]
fn killing_the_daemon_at_random_moments_loses_no_order_and_only_repeats_identical_replies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keypost.toml"), config()).unwrap();
    write_orders(&dir.path().join("mail"));
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut progress = Vec::new();
    for _ in 0..KILLS {
        let mut child = keypost(dir.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_for_a_random_moment(&out);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        progress.push(replies(&sends(&out)));
    }
    let finish = keypost(dir.path()).arg("--once").output().unwrap();
    let summary = String::from_utf8_lossy(&finish.stdout);
    assert!(finish.status.success(), "{summary}\n{}", String::from_utf8_lossy(&finish.stderr));

    let sends = sends(&out);
    let duplicates: usize = sends.values().map(|copies| copies.len() - 1).sum();
    // Mid-drain: the run had sent replies when it was killed, and not all of them.
    let killed_mid_drain = crate::support::killed_mid_drain(&progress, ORDERS);
    println!(
        "kill -9: {KILLS} kills ({killed_mid_drain} mid-drain), replies answered after each kill {progress:?}, \
         {} orders answered, {duplicates} duplicate send(s), {:.1} s\nfinal pass:\n{summary}",
        replies(&sends),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(replies(&sends), ORDERS, "every order answered, none missing");
    for (id, copies) in &sends {
        assert!(copies.iter().all(|hash| hash == &copies[0]), "{id} was sent with different bytes");
        assert!(out.join(format!("{id}.eml")).exists(), "{id} has its file");
    }
    assert!(duplicates <= KILLS, "at most one duplicate per kill, got {duplicates}");
    assert!(killed_mid_drain >= KILLS / 2, "the kills must land while orders are being answered: {progress:?}");
    let month = keypost::mailbox::month(time::OffsetDateTime::now_utc());
    let done = std::fs::read_dir(dir.path().join(format!("mail/.keypost.done.{month}/cur"))).unwrap().count();
    assert_eq!(done, ORDERS, "every message settled, none deleted");
}
