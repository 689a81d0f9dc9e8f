//! Integration tests: the periodic digest, sent through a real SMTP server (aiosmtpd) once per period, across a
//! restart, with the figures of the period it covers.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keypost::config::{Loaded, Problems};
use keypost::daemon::{Daemon, build};
use keypost::reply::smtp::SmtpMailer;
use keypost::trust::Verifier;

use crate::pipeline::fakes::{MemorySource, fixture};
use crate::support::RecordingSink;

const VENDOR: &str = "vendor@acme.example";

fn config(extra: &str) -> String {
    format!(
        r#"
[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "{VENDOR}"
vendor_copy = "none"

[trust]
dns = false
sender_only = ["paypal"]

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = {{ product_code = 7, key = {{ inline = "00112233445566778899aabbccddeeff" }} }}

{extra}
"#
    )
}

type Clock = Arc<Mutex<time::OffsetDateTime>>;

/// A daemon over the state in `dir` (a second one over the same folder is a restart), sending through `sink`,
/// with a clock the test sets.
fn daemon(dir: &std::path::Path, sink: &RecordingSink, clock: &Clock) -> Daemon<MemorySource, SmtpMailer> {
    let mut problems = Problems::new("test.toml");
    let text = config("[digest]\nat = \"08:00\"\ntime_zone = \"Europe/Berlin\"\nto = \"Boss <boss@acme.example>\"");
    let config = keypost::config::parse(&text, &mut problems).unwrap();
    config.validate(&mut problems);
    assert!(!problems.has_errors(), "{:?}", problems.items());
    let loaded = Loaded { config, path: dir.join("keypost.toml"), base_dir: dir.to_owned(), warnings: vec![] };
    let mut core = build::core(&loaded).unwrap();
    let clock = clock.clone();
    core.set_clock(move || *clock.lock().unwrap());
    let reader = build::reader(&loaded).unwrap();
    let mailer = SmtpMailer::new(&sink.smtp_config(), dir).unwrap();
    Daemon::new(MemorySource::default(), mailer, core, reader, Verifier::new(&loaded.config.trust).unwrap())
}

fn digests(sink: &RecordingSink) -> Vec<String> {
    sink.messages().into_iter().filter(|m| m.contains("Message-ID: <keypost.digest.")).collect()
}

#[tokio::test]
async fn the_daily_digest_reports_the_day_before_and_is_sent_once_per_period_across_a_restart() {
    let sink = RecordingSink::start(VENDOR);
    let dir = tempfile::tempdir().unwrap();
    let clock: Clock = Arc::new(Mutex::new(time::macros::datetime!(2026-11-29 12:00 UTC)));
    {
        let mut daemon = daemon(dir.path(), &sink, &clock);
        daemon.source.deliver("sale", &fixture("paypal/sale_plain_text.eml"));
        daemon.source.deliver("payout", &fixture("paypal/payout_not_an_order.eml"));
        daemon.source.deliver("broken", &fixture("paypal/layout_changed_is_broken.eml"));
        let outcome = daemon.drain().await.unwrap();
        assert_eq!((outcome.fulfilled, outcome.ignored, outcome.set_aside), (1, 1, 1), "{outcome}");
        // 29 November 12:00 UTC is after 08:00 Berlin: that day's digest (for the 28th) is due, and went out
        // in the same pass, before this sale's period.
    }
    sink.wait_count(Duration::from_secs(10), |n| n >= 3);
    let first_day: Vec<String> = digests(&sink);
    assert_eq!(first_day.len(), 1, "the digest for the period ending 29 November");
    assert!(first_day[0].contains("Sales (licenses issued)\r\n  none"), "{}", first_day[0]);

    // The next morning, 08:00 in Berlin is 07:00 UTC.
    *clock.lock().unwrap() = time::macros::datetime!(2026-11-30 07:05 UTC);
    {
        let mut daemon = daemon(dir.path(), &sink, &clock);
        daemon.poll_once().await.unwrap();
    }
    sink.wait_count(Duration::from_secs(10), |n| n >= 4);
    {
        // A restart in the same period sends nothing more.
        let mut daemon = daemon(dir.path(), &sink, &clock);
        daemon.poll_once().await.unwrap();
        daemon.poll_once().await.unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let all = digests(&sink);
    assert_eq!(all.len(), 2, "one digest per period: {all:#?}");
    let digest = &all[1];
    println!("--- the digest as the SMTP server received it ---\n{digest}");
    assert!(digest.contains("To: Boss <boss@acme.example>"), "{digest}");
    assert!(digest.contains("Subject: [keypost] digest 2026-11-30: 1 license(s) sold, 1 need(s) you"), "{digest}");
    assert!(
        digest.contains("2026-11-29 07:00 UTC to 2026-11-30 07:00 UTC\r\n(sent 08:00 Europe/Berlin, daily)"),
        "{digest}"
    );
    assert!(digest.contains("pro                      1 license(s)      2 seat(s)  58.00 USD"), "{digest}");
    assert!(digest.contains("set aside:                1 (waiting now: 1)"), "{digest}");
    assert!(digest.contains("ignored (not orders):     1"), "{digest}");
    assert!(digest.contains("Code pools: none configured"), "{digest}");
    let arrival = sink.arrivals().into_iter().find(|a| String::from_utf8_lossy(&a.bytes).contains("digest 2026-11-30"));
    let recipients = arrival.unwrap().recipients;
    assert!(recipients.len() == 1 && recipients[0].contains("boss@acme.example"), "{recipients:?}");
}

#[test]
fn a_digest_with_a_bad_time_zone_stops_the_configuration_with_its_key() {
    let mut problems = Problems::new("test.toml");
    let config = keypost::config::parse(&config("[digest]\ntime_zone = \"Europe/Atlantis\"\n"), &mut problems).unwrap();
    config.validate(&mut problems);
    let keys: Vec<_> = problems.items().iter().map(|p| p.key.clone()).collect();
    assert!(keys.contains(&"digest.time_zone".to_owned()), "{:?}", problems.items());
}
