//! Alerts are throttled: anyone can mail the order address, and each untrusted order is set aside with an alert.
//! Past `limits.alerts_per_hour` the alerts are merged into one digest per hour; every message is still recorded.
use crate::pipeline::fakes::{self, VENDOR};

#[tokio::test]
async fn a_flood_of_untrusted_mail_sends_a_bounded_number_of_alerts_and_records_every_message() {
    let dir = tempfile::tempdir().unwrap();
    // The default limit: 20 alerts an hour.
    let mut daemon = fakes::daemon(dir.path(), "");
    let start = time::OffsetDateTime::now_utc();
    daemon.core.set_clock(move || start);
    for n in 0..30 {
        // From a sender the shop provider does not use: not trusted, set aside with an alert.
        let raw = format!(
            "Message-ID: <f{n}@evil.example>\nFrom: mallory@evil.example\n\n{}\n",
            fakes::sale(&format!("F-{n}"), "m@evil.example")
        );
        daemon.source.deliver(&format!("{n:02}"), raw.as_bytes());
    }
    let outcome = daemon.drain().await.unwrap();
    assert_eq!(outcome.set_aside, 30, "{outcome}");
    assert_eq!(daemon.mailer.vendor_only().len(), 20, "twenty alerts, the rest held");
    let held = daemon.core.store.audit().unwrap().iter().filter(|a| a.event == "alert-held").count();
    assert_eq!(held, 10, "every held alert is recorded");
    for n in 0..30 {
        assert_eq!(daemon.source.disposition(&format!("{n:02}")), Some(keypost::mailbox::Disposition::SetAside));
    }

    daemon.core.set_clock(move || start + time::Duration::minutes(59));
    daemon.poll_once().await.unwrap();
    assert_eq!(daemon.mailer.vendor_only().len(), 20, "no digest before the hour is over");
    daemon.core.set_clock(move || start + time::Duration::hours(1));
    daemon.poll_once().await.unwrap();
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 21, "one digest");
    let digest = alerts.last().unwrap();
    assert!(digest.contains("10 more alerts (digest)"), "{digest}");
    assert!(digest.contains("F-29"), "the digest lists the held alerts: {digest}");
    assert!(daemon.mailer.sent.borrow().iter().all(|m| m.to == [VENDOR]), "nothing to anyone else");
}
