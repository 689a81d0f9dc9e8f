//! Integration tests: `keypost replay` as a user runs it: an mbox of the demo's messages against the state the
//! demo left (and against a fresh one, with `--apply`), and a folder of real Dovecot with DKIM-signed orders,
//! replies through a real SMTP server.
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::binary::{config, order_ids, replies_by_order};
use crate::support::{self, Dovecot, Keypost, Orders, RecordingSink};

fn demo(dir: &Path, args: &[&str]) -> Output {
    support::keypost(dir, &["--config", "demo.toml"]).args(args).output().unwrap()
}

fn stdout_of(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// An mboxrd file of these messages (postmark lines, `>From ` quoting, LF line ends).
fn mbox(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend_from_slice(b"From MAILER-DAEMON Mon Nov 30 07:00:00 2026\n");
        let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
        for line in text.trim_end_matches('\n').split('\n') {
            if line.trim_start_matches('>').starts_with("From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

fn demo_messages() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-maildir/new");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|path| std::fs::read(path).unwrap()).collect()
}

/// The listing's line for mbox message `n`.
fn line(stdout: &str, n: usize) -> &str {
    stdout.lines().find(|l| l.trim_start().starts_with(&format!("{n} "))).unwrap_or_else(|| panic!("{stdout}"))
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn replaying_an_mbox_shows_each_message_against_the_state_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    support::copy_demo(dir);
    stdout_of(&demo(dir, &["run", "--once"]));
    let outbox = dir.join("demo-run/outbox");
    let sent_before = files_in(&outbox);
    let mut messages = demo_messages();
    // The first sale again, with another registration name: the state says otherwise.
    let first = String::from_utf8(messages[0].clone()).unwrap();
    messages.push(first.replace("Example Labs Ltd", "Example Labs GmbH").into_bytes());
    // The Gumroad sale again under another Message-ID (Gumroad's order id comes from it): the same email, one order.
    let gumroad = String::from_utf8(messages[3].clone()).unwrap();
    messages.push(gumroad.replace("<6908a2c1d3e4f_1a2b3c4d5e6f7a80@", "<0000copy0000_1a2b3c4d5e6f7a80@").into_bytes());
    std::fs::write(dir.join("archive.mbox"), mbox(&messages)).unwrap();

    let stdout = stdout_of(&demo(dir, &["replay", "archive.mbox"]));
    assert!(line(&stdout, 1).contains("answered  paypal/5TY12345AB678901C"), "{stdout}");
    assert!(line(&stdout, 1).contains("revoked since"), "the refund came later: {stdout}");
    assert!(line(&stdout, 3).contains("answered  fastspring/"), "{stdout}");
    assert!(line(&stdout, 6).contains("ignored"), "the payout: {stdout}");
    assert!(line(&stdout, 9).contains("set-aside template paypal matched but failed"), "{stdout}");
    let differs = line(&stdout, 10);
    assert!(differs.contains("differs   paypal/5TY12345AB678901C"), "{stdout}");
    assert!(differs.contains(r#"licensee: state "Example Labs Ltd", mail "Example Labs GmbH""#), "{stdout}");
    let copy = line(&stdout, 11);
    assert!(copy.contains("answered") && copy.contains("the same email as order gumroad/6908a2c1d3e4f_"), "{stdout}");
    assert!(
        stdout.contains("11 message(s): new 0, answered 8, differs 1, review 0, set aside 1, ignored 1"),
        "{stdout}"
    );
    assert_eq!(files_in(&outbox), sent_before, "a replay without --apply sends nothing");
    let again = stdout_of(&demo(dir, &["run", "--once"]));
    assert!(again.contains("messages: 0"), "the replay put nothing into the mailbox: {again}");
}

#[test]
fn replay_with_apply_fulfils_the_orders_never_answered_once_and_a_second_apply_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    support::copy_demo(dir);
    std::fs::write(dir.join("archive.mbox"), mbox(&demo_messages())).unwrap();
    let stdout = stdout_of(&demo(dir, &["replay", "archive.mbox", "--apply"]));
    assert!(line(&stdout, 1).contains("new       paypal/5TY12345AB678901C") && line(&stdout, 1).contains("Fulfilled"));
    assert!(line(&stdout, 5).contains("answered"), "the forwarded copy of order 1, answered a moment before");
    assert!(line(&stdout, 7).contains("review"), "the test sale without a name is not applied: {stdout}");
    assert!(!line(&stdout, 7).contains("->"), "{stdout}");
    assert!(line(&stdout, 8).contains("differs") && !line(&stdout, 8).contains("->"), "a refund is shown, not applied");
    assert!(stdout.contains("applied: fulfilled 4"), "{stdout}");
    let outbox = dir.join("demo-run/outbox");
    let replies = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("keypost.reply."));
    assert_eq!(replies.count(), 5, "one reply per license: 1 + 1 + 2 (two products) + 1");
    let sent = files_in(&outbox);

    let second = stdout_of(&demo(dir, &["replay", "archive.mbox", "--apply"]));
    assert!(second.contains("new 0") && second.contains("applied: fulfilled 0, replies sent 0"), "{second}");
    assert_eq!(files_in(&outbox), sent, "nothing sent twice");
    let export = stdout_of(&demo(dir, &["export"]));
    assert!(export.contains(r#""origin":"replay:mbox:"#), "each order's origin names the archive: {export}");
}

#[tokio::test]
async fn replaying_an_imap_folder_answers_only_the_missed_signed_order_and_refuses_a_forged_one() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(support::binary::VENDOR);
    let orders = Orders::new();
    let keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, ""));
    let mut client = dovecot.client().await;
    // Orders 0 and 1 arrived and were answered; 2 never reached keypost's inbox.
    client.append("INBOX", &orders.mail(0)).await;
    client.append("INBOX", &orders.mail(1)).await;
    let once = keypost.tool(&["run", "--once"]);
    assert!(String::from_utf8_lossy(&once.stdout).contains("fulfilled: 2"), "{once:?}");
    sink.wait_count(Duration::from_secs(10), |n| n >= 2);
    client.create("Archive").await;
    for n in 0..3 {
        client.append("Archive", &orders.mail(n)).await;
    }
    // A forged copy: order 3's signature over another body.
    let forged = String::from_utf8(orders.mail(3)).unwrap().replace("Licensee 3", "Mallory");
    client.append("Archive", forged.as_bytes()).await;

    let look = keypost.tool(&["replay", "--folder", "Archive"]);
    let look = stdout_of(&look);
    assert!(look.contains("new 1, answered 2, differs 0, review 0, set aside 1"), "{look}");
    assert!(look.contains(&format!("new       paypal/{}", Orders::id(2))), "{look}");
    assert!(look.contains(&format!("paypal/{} not trusted", Orders::id(3))), "{look}");

    let applied = stdout_of(&keypost.tool(&["replay", "--folder", "Archive", "--apply"]));
    assert!(applied.contains("applied: fulfilled 1, replies sent 1"), "{applied}");
    let again = stdout_of(&keypost.tool(&["replay", "--folder", "Archive", "--apply"]));
    assert!(again.contains("applied: fulfilled 0, replies sent 0"), "{again}");
    sink.wait_count(Duration::from_secs(10), |n| n >= 3);
    std::thread::sleep(Duration::from_millis(500));
    let messages = sink.messages();
    let by_order = replies_by_order(messages.iter().map(String::as_str));
    assert_eq!(by_order.keys().cloned().collect::<Vec<_>>(), (0..3).map(Orders::id).collect::<Vec<_>>());
    assert!(by_order.values().all(|replies| replies.len() == 1), "one reply each: {by_order:?}");
    assert!(messages.iter().all(|m| !order_ids(m).contains(&Orders::id(3))), "the forged order got nothing");
    let counts = client.folder_counts().await;
    assert_eq!(counts.get("Archive"), Some(&4), "the archive is left as it was: {counts:?}");
    client.logout().await;
}
