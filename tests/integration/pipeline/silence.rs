//! A provider that goes quiet for much longer than its usual gap between orders (`[watch]`): the daemon alerts
//! once per silence, across a restart; the next order ends the silence, and a second silence alerts again.
//! In-process fakes, the daemon's clock set by the test.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keypost::control::Request;

use super::fakes::{self, TestDaemon, mail, sale};

const HOUR: i64 = 60 * 60;

/// A daemon over `state` whose clock reads `start + offset` (seconds).
fn daemon_at(state: &std::path::Path, config: &str, offset: &Arc<AtomicI64>) -> TestDaemon {
    let start = time::macros::datetime!(2026-11-01 00:00 UTC);
    let mut daemon = fakes::daemon(state, config);
    let offset = Arc::clone(offset);
    daemon.core.set_clock(move || start + time::Duration::seconds(offset.load(Ordering::SeqCst)));
    daemon
}

fn silence_alerts(daemon: &TestDaemon) -> Vec<String> {
    daemon.mailer.vendor_only().into_iter().filter(|m| m.contains("no order mail from shop")).collect()
}

/// Delivers a sale at `at` hours and runs a pass then.
async fn sale_at(daemon: &mut TestDaemon, offset: &AtomicI64, at: i64, n: usize) {
    offset.store(at * HOUR, Ordering::SeqCst);
    let text = sale(&format!("A-{n}"), &format!("b{n}@example.com"));
    daemon.source.deliver(&n.to_string(), &mail(&format!("m{n}@shop.example"), &text));
    assert_eq!(daemon.poll_once().await.unwrap().fulfilled, 1);
}

/// A pass at `at` hours; `keypost status --json` afterwards.
async fn pass_at(daemon: &mut TestDaemon, offset: &AtomicI64, at: i64) -> serde_json::Value {
    offset.store(at * HOUR, Ordering::SeqCst);
    daemon.poll_once().await.unwrap();
    let status = daemon.core.execute(&daemon.mailer, &Request::Status { json: true }).await.unwrap();
    serde_json::from_str(&status.stdout).unwrap()
}

#[tokio::test]
async fn a_provider_silent_for_ten_usual_gaps_alerts_once_per_silence_and_its_next_order_ends_the_silence() {
    let dir = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let mut daemon = daemon_at(dir.path(), "", &offset);
    // An order every 4 hours: silent after max(24 h, 10 × 4 h) = 40 h without one.
    for n in 0..6 {
        sale_at(&mut daemon, &offset, 4 * n as i64, n).await;
    }
    let last = 20;
    let status = pass_at(&mut daemon, &offset, last + 39).await;
    assert!(silence_alerts(&daemon).is_empty(), "39 hours is not yet silent");
    assert_eq!(status["silent_providers"], serde_json::json!([]));

    let status = pass_at(&mut daemon, &offset, last + 41).await;
    let alerts = silence_alerts(&daemon);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].contains("Subject: [keypost] no order mail from shop for 41 hours"), "{}", alerts[0]);
    assert!(alerts[0].contains("usually gets one every 4 hours"), "{}", alerts[0]);
    let silent = &status["silent_providers"];
    assert_eq!(silent[0]["provider"], "shop", "{status:#}");
    assert_eq!(
        (&silent[0]["usual_gap_seconds"], &silent[0]["last_order"]),
        (&serde_json::json!(4 * HOUR), &serde_json::json!("2026-11-01T20:00:00Z"))
    );
    pass_at(&mut daemon, &offset, last + 50).await;
    assert_eq!(silence_alerts(&daemon).len(), 1, "the same silence, a later pass: no second alert");

    // A restart: the alert is remembered in the state, not in memory.
    drop(daemon);
    let mut daemon = daemon_at(dir.path(), "", &offset);
    let text = keypost::control::answer::status(&daemon.core.store, None, false).unwrap().stdout;
    assert!(text.contains("silent: shop: no order since 2026-11-01T20:00:00Z (usually one every 4 hours)"), "{text}");
    pass_at(&mut daemon, &offset, last + 60).await;
    assert!(silence_alerts(&daemon).is_empty(), "no second alert after the restart");

    // The next order ends the silence.
    sale_at(&mut daemon, &offset, last + 61, 6).await;
    let status = pass_at(&mut daemon, &offset, last + 62).await;
    assert_eq!(status["silent_providers"], serde_json::json!([]), "{status:#}");
    let events: Vec<String> = daemon.core.store.audit().unwrap().into_iter().map(|a| a.event).collect();
    assert_eq!(events.iter().filter(|e| *e == "silence").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "silence-ended").count(), 1, "{events:?}");
    assert!(silence_alerts(&daemon).is_empty());

    // A second silence is a second alert (the usual gap is still 4 hours: the median).
    pass_at(&mut daemon, &offset, last + 61 + 39).await;
    assert!(silence_alerts(&daemon).is_empty());
    pass_at(&mut daemon, &offset, last + 61 + 41).await;
    pass_at(&mut daemon, &offset, last + 61 + 45).await;
    let alerts = silence_alerts(&daemon);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].contains("for 41 hours"), "{}", alerts[0]);

    // Turned off for the provider afterwards: the silence is no longer listed.
    drop(daemon);
    let mut daemon = daemon_at(dir.path(), "[watch.provider.shop]\nsilence_min_hours = 0\n", &offset);
    let status = pass_at(&mut daemon, &offset, last + 61 + 46).await;
    assert_eq!(status["silent_providers"], serde_json::json!([]), "{status:#}");
}

#[tokio::test]
async fn silence_is_not_watched_with_silence_min_hours_0_nor_for_a_provider_with_too_few_orders() {
    for (config, orders) in [("[watch]\nsilence_min_hours = 0\n", 6), ("", 4)] {
        let dir = tempfile::tempdir().unwrap();
        let offset = Arc::new(AtomicI64::new(0));
        let mut daemon = daemon_at(dir.path(), config, &offset);
        for n in 0..orders {
            sale_at(&mut daemon, &offset, n as i64, n).await;
        }
        let status = pass_at(&mut daemon, &offset, 24 * 30).await;
        assert!(silence_alerts(&daemon).is_empty(), "{config:?}, {orders} orders");
        assert_eq!(status["silent_providers"], serde_json::json!([]));
    }
}
