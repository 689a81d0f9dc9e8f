//! Integration tests: the IMAP source against a real Dovecot on loopback.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use keypost::endpoint::Security;
use keypost::mailbox::imap::ImapSource;
use keypost::mailbox::{Disposition, ImapAuth, ImapConfig, MailContent, RawMail, Source};

use crate::support::{
    Dovecot, OrPanic, TestCa, done_folder, ignored_folder, imap_config, order_mail, order_number, show_logs,
};

const MAX_BYTES: u64 = 1 << 20;

fn source(config: &ImapConfig) -> ImapSource {
    ImapSource::new(config, Path::new("."), MAX_BYTES).unwrap()
}

fn bytes(mail: &RawMail) -> &[u8] {
    match &mail.content {
        MailContent::Bytes(bytes) => bytes,
        other => panic!("{} came back as {other:?}", mail.key),
    }
}

/// Orders 3, 6, 9, ... are ignored, 5, 10, ... set aside (15 counts as ignored), the rest done.
fn disposition_of(n: usize) -> Disposition {
    match (n % 3, n % 5) {
        (0, _) => Disposition::Ignored,
        (_, 0) => Disposition::SetAside,
        _ => Disposition::Done,
    }
}

/// Fetches in batches of `batch` until nothing is waiting, settling each message as the daemon would.
async fn drain(source: &mut ImapSource, batch: usize) -> Vec<(String, usize)> {
    let mut seen = Vec::new();
    loop {
        let mails = source.fetch_new(batch).await.or_panic();
        if mails.is_empty() {
            return seen;
        }
        assert!(mails.len() <= batch);
        for mail in mails {
            let n = order_number(bytes(&mail));
            source.settle(&mail.key, disposition_of(n)).await.or_panic();
            seen.push((mail.key, n));
        }
    }
}

fn counts(pairs: &[(&str, u32)]) -> std::collections::BTreeMap<String, u32> {
    pairs.iter().map(|(name, count)| (name.to_string(), *count)).collect()
}

#[tokio::test]
async fn a_backlog_of_500_is_handed_out_oldest_first_once_and_settled_into_folders() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=500).await;
    let mut source = source(&dovecot.imap_config());

    let started = Instant::now();
    let seen = drain(&mut source, 64).await;
    eprintln!("500 messages fetched and settled in {:?}", started.elapsed());

    let numbers: Vec<usize> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=500).collect::<Vec<_>>());
    let keys: BTreeSet<&String> = seen.iter().map(|(key, _)| key).collect();
    assert_eq!(keys.len(), 500, "every key is distinct");
    let ignored = (1..=500).filter(|n| disposition_of(*n) == Disposition::Ignored).count() as u32;
    let set_aside = (1..=500).filter(|n| disposition_of(*n) == Disposition::SetAside).count() as u32;
    assert_eq!(
        client.folder_counts().await,
        counts(&[
            ("INBOX", 0),
            (done_folder().as_str(), 500 - ignored - set_aside),
            (ignored_folder().as_str(), ignored),
            ("keypost.set-aside", set_aside),
        ])
    );
    assert!(source.fetch_new(64).await.or_panic().is_empty());
}

#[tokio::test]
async fn a_batch_settled_at_once_is_filed_by_month_and_settling_it_again_moves_nothing_twice() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=120).await;
    let mut source = source(&dovecot.imap_config());

    let mails = source.fetch_new(200).await.or_panic();
    assert_eq!(mails.len(), 120);
    let settled: Vec<(String, Disposition)> =
        mails.iter().map(|mail| (mail.key.clone(), disposition_of(order_number(bytes(mail))))).collect();
    source.settle_all(&settled).await.or_panic();
    // After a crash the daemon settles again from its records: UIDs already gone are skipped.
    source.settle_all(&settled).await.or_panic();

    let ignored = (1..=120).filter(|n| disposition_of(*n) == Disposition::Ignored).count() as u32;
    let set_aside = (1..=120).filter(|n| disposition_of(*n) == Disposition::SetAside).count() as u32;
    assert_eq!(
        client.folder_counts().await,
        counts(&[
            ("INBOX", 0),
            (done_folder().as_str(), 120 - ignored - set_aside),
            (ignored_folder().as_str(), ignored),
            ("keypost.set-aside", set_aside),
        ])
    );
    assert!(source.fetch_new(200).await.or_panic().is_empty(), "nothing is handed out again");
}

#[tokio::test]
async fn a_message_handed_out_but_not_settled_is_handed_out_again_once_nothing_newer_waits() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=3).await;
    let mut source = source(&dovecot.imap_config());

    let first = source.fetch_new(2).await.or_panic();
    let second = source.fetch_new(2).await.or_panic();
    assert_eq!(first.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(second.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [3]);
    source.settle(&first[0].key, Disposition::Done).await.or_panic();
    source.settle(&second[0].key, Disposition::Done).await.or_panic();

    let again = source.fetch_new(10).await.or_panic();
    assert_eq!(again, vec![first[1].clone()], "only the unsettled order 2 comes back, under the same key");
}

#[tokio::test]
async fn wait_for_new_with_idle_returns_soon_after_an_append() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut config = dovecot.imap_config();
    config.poll_interval_secs = 3600; // only IDLE can end the wait early
    let mut source = source(&config);
    assert!(source.fetch_new(10).await.or_panic().is_empty());

    let mut client = dovecot.client().await;
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.append("INBOX", &order_mail(1)).await;
    });
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), source.wait_for_new(Duration::from_secs(60)))
        .await
        .unwrap()
        .or_panic();
    let waited = started.elapsed();
    append.await.unwrap();
    eprintln!("wait_for_new returned {waited:?} after it started (append at 300 ms)");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1]);
}

#[tokio::test]
async fn idle_keepalives_do_not_end_the_wait_before_its_deadline() {
    show_logs();
    let dovecot = Dovecot::start(); // sends "* OK Still here" every 3 s during IDLE
    let mut config = dovecot.imap_config();
    config.poll_interval_secs = 3600;
    let mut source = source(&config);
    assert!(source.fetch_new(10).await.or_panic().is_empty());

    let started = Instant::now();
    source.wait_for_new(Duration::from_secs(7)).await.or_panic();
    let waited = started.elapsed();
    assert!((Duration::from_millis(6500)..Duration::from_secs(10)).contains(&waited), "{waited:?}");
    assert!(source.is_connected(), "the session survives a completed IDLE");
    assert!(source.fetch_new(10).await.or_panic().is_empty());
}

#[tokio::test]
async fn without_idle_and_move_polling_and_copy_then_uid_expunge_still_work() {
    show_logs();
    let dovecot = Dovecot::start_hiding(&["IDLE", "MOVE"]);
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=3).await;
    // Another client's message marked \Deleted: a plain EXPUNGE or CLOSE would remove it too.
    client.session_append_flagged("INBOX", &order_mail(99), "(\\Deleted)").await;
    let mut source = source(&dovecot.imap_config());

    let mails = source.fetch_new(10).await.or_panic();
    let numbers: Vec<usize> = mails.iter().map(|m| order_number(bytes(m))).collect();
    assert_eq!(numbers, [1, 2, 3, 99]);
    for mail in mails.iter().filter(|m| order_number(bytes(m)) != 99) {
        source.settle(&mail.key, Disposition::Done).await.or_panic();
    }
    assert_eq!(client.folder_counts().await, counts(&[("INBOX", 1), (done_folder().as_str(), 3)]));

    // Polling: with IDLE hidden the wait ends at the poll interval (1 s), not at max_wait.
    let started = Instant::now();
    source.wait_for_new(Duration::from_secs(30)).await.or_panic();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(source.is_connected(), "polling keeps its session");
    client.append("INBOX", &order_mail(4)).await;
    source.wait_for_new(Duration::from_secs(30)).await.or_panic();
    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [4]);
}

#[tokio::test]
async fn without_uidplus_settled_messages_stay_flagged_and_are_not_handed_out_again() {
    show_logs();
    let dovecot = Dovecot::start_hiding(&["IDLE", "MOVE", "UIDPLUS"]);
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=2).await;
    let config = dovecot.imap_config();
    let mut source = source(&config);
    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.len(), 2);
    source.settle(&mails[0].key, Disposition::SetAside).await.or_panic();

    // Nothing deleted: the settled copy is in set-aside, the original stays flagged \Deleted in INBOX.
    assert_eq!(client.folder_counts().await, counts(&[("INBOX", 2), ("keypost.set-aside", 1)]));
    let mut restarted = self::source(&config);
    let again = restarted.fetch_new(10).await.or_panic();
    assert_eq!(again.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn a_dovecot_restart_mid_run_loses_and_doubles_nothing() {
    show_logs();
    let mut dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 1..=20).await;
    client.logout().await;
    let mut source = source(&dovecot.imap_config());
    let mut seen: Vec<usize> = Vec::new();
    for mail in source.fetch_new(5).await.or_panic() {
        source.settle(&mail.key, Disposition::Done).await.or_panic();
        seen.push(order_number(bytes(&mail)));
    }

    dovecot.stop();
    assert!(source.fetch_new(5).await.is_err(), "with the server down the call fails (the daemon retries)");
    dovecot.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 20 && Instant::now() < deadline {
        match source.fetch_new(5).await {
            Ok(mails) => {
                for mail in mails {
                    source.settle(&mail.key, Disposition::Done).await.or_panic();
                    seen.push(order_number(bytes(&mail)));
                }
            }
            Err(err) => eprintln!("retrying after: {err:#}"),
        }
    }
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    // A restart with a live session in hand is invisible: the source reconnects within the call.
    dovecot.restart();
    let mut client = dovecot.client().await;
    client.append_orders("INBOX", 21..=22).await;
    let late: Vec<usize> = source.fetch_new(5).await.or_panic().iter().map(|m| order_number(bytes(m))).collect();
    assert_eq!(late, [21, 22]);
    assert_eq!(client.folder_counts().await.get(&done_folder()), Some(&20));
}

#[tokio::test]
async fn a_new_uidvalidity_makes_the_source_scan_the_folder_again() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut config = dovecot.imap_config();
    config.folder = "Orders".into();
    dovecot.doveadm(&["mailbox", "create", "-u", "orders", "Orders"]);
    let mut client = dovecot.client().await;
    client.append_orders("Orders", 1..=3).await;
    let mut source = source(&config);
    let old = source.fetch_new(10).await.or_panic();
    assert_eq!(old.len(), 3);

    dovecot.doveadm(&["mailbox", "delete", "-u", "orders", "Orders"]);
    dovecot.doveadm(&["mailbox", "create", "-u", "orders", "Orders"]);
    client.append_orders("Orders", 4..=5).await; // UIDs 1 and 2 again, below the old cursor

    let mut new = Vec::new();
    for _ in 0..3 {
        match source.fetch_new(10).await {
            Ok(mails) if !mails.is_empty() => {
                new = mails;
                break;
            }
            Ok(_) => panic!("the re-created folder was not scanned again"),
            Err(err) => eprintln!("retrying after: {err:#}"),
        }
    }
    assert_eq!(new.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [4, 5]);
    let validity = |mail: &RawMail| mail.key.split_once(':').unwrap().0.to_owned();
    assert_ne!(validity(&new[0]), validity(&old[0]));
    // A key from before the change no longer names a message: settling it moves nothing.
    source.settle(&old[0].key, Disposition::Done).await.or_panic();
    source.settle(&new[0].key, Disposition::Done).await.or_panic();
    let counts = client.folder_counts().await;
    assert_eq!((counts.get("Orders"), counts.get(&done_folder())), (Some(&1), Some(&1)));
}

#[tokio::test]
async fn an_oversize_message_comes_back_as_too_large_without_being_downloaded() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    let mut big = order_mail(2);
    big.extend(
        std::iter::repeat_n(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 4096).flatten(),
    );
    client.append("INBOX", &order_mail(1)).await;
    client.append("INBOX", &big).await;
    client.append("INBOX", &order_mail(3)).await;
    let mut source = ImapSource::new(&dovecot.imap_config(), Path::new("."), 10_000).unwrap();

    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.len(), 3);
    assert_eq!(order_number(bytes(&mails[0])), 1);
    assert_eq!(mails[1].content, MailContent::TooLarge { size: big.len() as u64 });
    assert_eq!(order_number(bytes(&mails[2])), 3);
    source.settle(&mails[1].key, Disposition::SetAside).await.or_panic();
    source.close().await;

    // Dovecot logs the bytes it sent each session at logout: far less than the 256 KiB message.
    let out = logged_bytes_out(&dovecot).await;
    assert!(out < 64 * 1024, "the source downloaded {out} bytes");
    assert_eq!(client.folder_counts().await.get("keypost.set-aside"), Some(&1));
}

#[tokio::test]
async fn a_pass_stops_at_its_byte_budget_and_the_rest_follows_without_a_wait() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    // Six orders of about 2.5 KB each; with a 3,000-byte size limit a pass holds four messages' worth.
    for n in 1..=6 {
        let mut mail = order_mail(n);
        mail.extend(std::iter::repeat_n(b"Thank you for your order.\r\n", 85).flatten());
        client.append("INBOX", &mail).await;
    }
    let mut source = ImapSource::new(&dovecot.imap_config(), Path::new("."), 3_000).unwrap();

    let first = source.fetch_new(10).await.or_panic();
    assert_eq!(first.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(source.more_waiting());
    source.settle_all(&first.iter().map(|m| (m.key.clone(), Disposition::Done)).collect::<Vec<_>>()).await.or_panic();
    let wait = source.wait_for_new(Duration::from_secs(3600));
    tokio::time::timeout(Duration::from_secs(60), wait).await.expect("no IDLE with mail waiting").or_panic();
    let rest = source.fetch_new(10).await.or_panic();
    assert_eq!(rest.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [5, 6]);
    assert!(!source.more_waiting());
}

/// The `out=` of the first "Logged out" line in Dovecot's log (the source's session; the test client stays in).
async fn logged_bytes_out(dovecot: &Dovecot) -> u64 {
    for _ in 0..100 {
        if let Some(line) = dovecot.log().lines().find(|line| line.contains("Logged out")) {
            let out = line.split_whitespace().find_map(|word| word.strip_prefix("out=")).unwrap();
            return out.parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no logout in Dovecot's log:\n{}", dovecot.log());
}

fn tls_config(dovecot: &Dovecot, ca: &TestCa, security: Security, port: u16) -> ImapConfig {
    let mut config = dovecot.imap_config();
    config.host = "127.0.0.1".into();
    config.security = security;
    config.allow_plaintext = false;
    config.port = Some(port);
    config.ca_file = Some(ca.ca_cert.clone());
    config
}

#[tokio::test]
async fn implicit_tls_with_a_private_ca_and_authenticate_plain_fetches_mail() {
    show_logs();
    let ca = TestCa::new();
    let dovecot = Dovecot::start_tls(&ca);
    dovecot.client().await.append_orders("INBOX", 1..=2).await;
    let mut config = tls_config(&dovecot, &ca, Security::Tls, dovecot.imaps_port);
    config.auth = ImapAuth::Plain;
    let mut source = source(&config);

    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1, 2]);
    source.settle(&mails[0].key, Disposition::Done).await.or_panic();
}

#[tokio::test]
async fn starttls_with_a_private_ca_fetches_mail() {
    show_logs();
    let ca = TestCa::new();
    let dovecot = Dovecot::start_tls(&ca);
    dovecot.client().await.append_orders("INBOX", 1..=1).await;
    let mut source = source(&tls_config(&dovecot, &ca, Security::Starttls, dovecot.port));

    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1]);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start_tls(&ca);
    let mut config = tls_config(&dovecot, &ca, Security::Tls, dovecot.imaps_port);
    config.ca_file = None;
    let mut source = source(&config);

    let err = format!("{:#}", source.fetch_new(10).await.unwrap_err());
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn plaintext_to_a_host_that_is_not_loopback_is_refused_before_connecting() {
    let mut config = imap_config(143);
    config.host = "imap.example.com".into();
    let mut source = source(&config);

    let err = format!("{:#}", source.fetch_new(10).await.unwrap_err());
    assert!(err.contains("refusing plaintext IMAP to imap.example.com"), "{err}");
}

#[tokio::test]
async fn a_server_that_greets_and_then_falls_silent_times_out_instead_of_hanging() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut socket, b"* OK IMAP4rev1 ready\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await; // never answers LOGIN
    });
    let mut config = imap_config(port);
    config.command_timeout_secs = 1;
    let mut source = source(&config);

    let started = Instant::now();
    let err = format!("{:#}", source.fetch_new(10).await.unwrap_err());
    assert!(err.contains("Timed out after 1 s waiting to LOGIN"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!source.is_connected());
    server.abort();
}

#[tokio::test]
async fn a_wait_cancelled_mid_idle_leaves_a_source_that_still_works() {
    show_logs();
    let dovecot = Dovecot::start();
    let mut config = dovecot.imap_config();
    config.poll_interval_secs = 3600;
    let mut source = source(&config);
    assert!(source.fetch_new(10).await.or_panic().is_empty());

    // The daemon's shutdown select! drops the wait while IDLE is running.
    let cancelled =
        tokio::time::timeout(Duration::from_millis(500), source.wait_for_new(Duration::from_secs(60))).await;
    assert!(cancelled.is_err(), "the wait was still in IDLE");
    assert!(!source.is_connected(), "the session IDLE owned is gone with the dropped future");

    dovecot.client().await.append_orders("INBOX", 1..=1).await;
    let mails = source.fetch_new(10).await.or_panic();
    assert_eq!(mails.iter().map(|m| order_number(bytes(m))).collect::<Vec<_>>(), [1]);
}

/// Collects log output for one test (`#[tokio::test]` runs on the current thread).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passwords_never_reach_the_log_or_the_error() {
    let dovecot = Dovecot::start();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_env_filter("keypost=trace").with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    dovecot.client().await.append_orders("INBOX", 1..=1).await;
    let mut right = source(&dovecot.imap_config());
    let mails = right.fetch_new(10).await.or_panic();
    right.settle(&mails[0].key, Disposition::Done).await.or_panic();
    // Last: Dovecot delays logins from an address that just failed one.
    let mut wrong = dovecot.imap_config();
    wrong.password = crate::support::inline_secret("hunter2-wrong-password");
    let err = format!("{:#} {:?}", source(&wrong).fetch_new(10).await.unwrap_err(), wrong);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("IMAP connected."), "the capture works: {log}");
    assert!(log.contains("Failed to LOGIN"), "{log}");
    for secret in ["hunter2-wrong-password", crate::support::IMAP_PASSWORD] {
        assert!(!log.contains(secret), "{log}");
        assert!(!err.contains(secret), "{err}");
    }
}

/// How the scripted server answers UID SEARCH.
#[derive(Clone, Copy)]
enum Search {
    /// `* BYE` and the connection closed, as a server going down does.
    Cut,
    /// A tagged NO.
    Refused,
    Answered,
}

/// A scripted IMAP server for one connection: answers what the source asks with two messages in INBOX
/// (UIDNEXT 3), and UID SEARCH as `search` says.
async fn scripted_imap(socket: tokio::net::TcpStream, search: Search) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let (read, mut write) = socket.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    write.write_all(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE IDLE] ready\r\n").await.unwrap();
    let message = b"From: a@shop.example\r\n\r\nhi\r\n";
    while let Ok(Some(line)) = lines.next_line().await {
        let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("CAPABILITY") {
            "* CAPABILITY IMAP4rev1 UIDPLUS MOVE IDLE\r\n".to_owned()
        } else if upper.starts_with("LIST") {
            "* LIST (\\Noselect) \"/\" \"\"\r\n".to_owned()
        } else if upper.starts_with("SELECT") {
            "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n".to_owned()
        } else if upper.starts_with("UID SEARCH") {
            match search {
                Search::Cut => {
                    write.write_all(b"* BYE shutting down\r\n").await.unwrap();
                    return;
                }
                Search::Refused => {
                    write.write_all(format!("{tag} NO [SERVERBUG] try again\r\n").as_bytes()).await.unwrap();
                    continue;
                }
                Search::Answered => "* SEARCH 1 2\r\n".to_owned(),
            }
        } else if upper.starts_with("UID FETCH") && upper.contains("RFC822.SIZE") {
            let size = message.len();
            format!("* 1 FETCH (UID 1 RFC822.SIZE {size})\r\n* 2 FETCH (UID 2 RFC822.SIZE {size})\r\n")
        } else if upper.starts_with("UID FETCH") {
            let body = String::from_utf8_lossy(message);
            let size = message.len();
            format!(
                "* 1 FETCH (UID 1 BODY[] {{{size}}}\r\n{body})\r\n* 2 FETCH (UID 2 BODY[] {{{size}}}\r\n{body})\r\n"
            )
        } else if upper.starts_with("LOGOUT") {
            "* BYE bye\r\n".to_owned()
        } else {
            String::new() // LOGIN, NOOP: nothing but the tagged OK
        };
        write.write_all(format!("{answer}{tag} OK done\r\n").as_bytes()).await.unwrap();
    }
}

#[tokio::test]
async fn a_search_cut_short_or_refused_is_an_error_and_no_message_is_passed_over() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        for search in [Search::Cut, Search::Refused, Search::Answered] {
            let (socket, _) = listener.accept().await.unwrap();
            scripted_imap(socket, search).await;
        }
    });
    let mut source = source(&imap_config(port));

    // async-imap's own search reads either answer as an empty result; taken as such, the cursor would move to
    // UIDNEXT, past both messages.
    let cut = source.fetch_new(400).await;
    assert!(cut.is_err(), "a cut-short SEARCH read as nothing new: {cut:?}");
    let refused = source.fetch_new(400).await;
    let err = format!("{:#}", refused.as_ref().map(Vec::len).unwrap_err());
    assert!(err.contains("NO"), "a refused SEARCH read as nothing new: {err}");
    let mails = source.fetch_new(400).await.or_panic();
    let keys: Vec<&str> = mails.iter().map(|mail| mail.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "both messages handed out once the server is back: {keys:?}");
    server.abort();
}
