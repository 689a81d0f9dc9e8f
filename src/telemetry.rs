//! What the running daemon knows about itself and keeps in memory only: when it last reached the mailbox and the
//! SMTP server, how its last pass went, counts since it started, and the reply latency histogram. `keypost status`
//! reads them over the control socket and the metrics endpoint renders them ([`prometheus`]).
//!
//! Nothing here is persisted: a restart starts them over, and what must survive a restart (orders, the outbox,
//! set-aside mail) is in the store, from which `status` and the metrics read it ([`StateSummary`]). The daemon
//! records, the control socket and the metrics endpoint read; it imports only the store. Never holds a buyer's
//! data.
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;

mod state;
pub use state::StateSummary;

/// What one pass (or the daemon since its start) came to, by outcome. The names are `status --json`'s and the
/// metrics' `outcome` label: stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub messages: u64,
    pub fulfilled: u64,
    pub ignored: u64,
    pub unknown_senders: u64,
    pub set_aside: u64,
    pub review: u64,
    pub revoked: u64,
    pub duplicates: u64,
    pub settled_again: u64,
    pub retrying: u64,
    pub sent: u64,
    pub send_failures: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        for (mine, theirs) in self.fields_mut().into_iter().zip(other.fields()) {
            *mine = mine.saturating_add(theirs);
        }
    }

    fn fields(&self) -> [u64; 12] {
        [
            self.messages,
            self.fulfilled,
            self.ignored,
            self.unknown_senders,
            self.set_aside,
            self.review,
            self.revoked,
            self.duplicates,
            self.settled_again,
            self.retrying,
            self.sent,
            self.send_failures,
        ]
    }

    fn fields_mut(&mut self) -> [&mut u64; 12] {
        [
            &mut self.messages,
            &mut self.fulfilled,
            &mut self.ignored,
            &mut self.unknown_senders,
            &mut self.set_aside,
            &mut self.review,
            &mut self.revoked,
            &mut self.duplicates,
            &mut self.settled_again,
            &mut self.retrying,
            &mut self.sent,
            &mut self.send_failures,
        ]
    }

    /// The messages' outcomes, as the metrics' `outcome` label names them (`unknown_sender` is counted apart
    /// from `ignored`, not inside it).
    fn by_outcome(&self) -> [(&'static str, u64); 8] {
        [
            ("fulfilled", self.fulfilled),
            ("review", self.review),
            ("revoked", self.revoked),
            ("duplicate", self.duplicates),
            ("ignored", self.ignored.saturating_sub(self.unknown_senders)),
            ("unknown_sender", self.unknown_senders),
            ("set_aside", self.set_aside),
            ("retrying", self.retrying),
        ]
    }
}

/// How the last pass ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastPass {
    /// Unix seconds when it ended.
    pub at: i64,
    /// `None` when it went through; the error (its whole chain) when it failed.
    pub error: Option<String>,
    pub counts: Counts,
}

/// Upper bounds (seconds) of the reply latency buckets: the promise is "within seconds", a retry takes minutes
/// to hours.
pub const LATENCY_BUCKETS: [f64; 12] =
    [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 6.0 * 3600.0, 86400.0];

/// A Prometheus histogram: cumulative counts per bucket are computed when rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (not cumulative), then the ones above the last bound.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, value: f64) {
        let value = if value.is_finite() { value.max(0.0) } else { 0.0 };
        let index = LATENCY_BUCKETS.iter().position(|bound| value <= *bound).unwrap_or(LATENCY_BUCKETS.len());
        if let Some(bucket) = self.buckets.get_mut(index) {
            *bucket = bucket.saturating_add(1);
        }
        self.sum += value;
        self.count = self.count.saturating_add(1);
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Everything known, as of one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Unix seconds of the daemon's start.
    pub started_at: i64,
    /// The mailbox keypost reads (`imap://host/INBOX`, a Maildir path).
    pub source: String,
    /// Unix seconds of the last successful fetch from the mailbox (or wait for new mail on it).
    pub mailbox_contact: Option<i64>,
    /// Unix seconds of the last message the SMTP server (or the files outbox) accepted.
    pub smtp_contact: Option<i64>,
    pub last_pass: Option<LastPass>,
    pub passes_failed: u64,
    pub since_start: Counts,
    /// Buyer replies accepted by the server, and given up (refused for good, or out of attempts).
    pub replies_sent: u64,
    pub replies_failed: u64,
    /// Seconds from recording an order to the server's acceptance of its reply (whole-second start: the order's
    /// record time); resends by hand are not counted.
    pub reply_latency: Histogram,
}

/// The daemon's facts, shared between its loop (which records) and the readers.
#[derive(Debug, Default)]
pub struct Telemetry {
    facts: Mutex<Facts>,
}

impl Telemetry {
    pub fn new(started_at: i64, source: String) -> Self {
        Self { facts: Mutex::new(Facts { started_at, source, ..Facts::default() }) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Facts) -> T) -> T {
        f(&mut self.facts.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub fn snapshot(&self) -> Facts {
        self.with(|facts| facts.clone())
    }

    pub fn set_source(&self, source: String) {
        self.with(|facts| facts.source = source);
    }

    pub fn mailbox_reached(&self, at: i64) {
        self.with(|facts| facts.mailbox_contact = Some(at));
    }

    pub fn smtp_reached(&self, at: i64) {
        self.with(|facts| facts.smtp_contact = Some(at));
    }

    /// A pass ended: `Ok` with its counts, or the error it failed with.
    pub fn pass_done(&self, at: i64, result: Result<Counts, String>) {
        self.with(|facts| match result {
            Ok(counts) => {
                facts.since_start.add(&counts);
                facts.last_pass = Some(LastPass { at, error: None, counts });
            }
            Err(error) => {
                facts.passes_failed = facts.passes_failed.saturating_add(1);
                facts.last_pass = Some(LastPass { at, error: Some(error), counts: Counts::default() });
            }
        });
    }

    pub fn reply_sent(&self, latency_secs: Option<f64>) {
        self.with(|facts| {
            facts.replies_sent = facts.replies_sent.saturating_add(1);
            if let Some(latency) = latency_secs {
                facts.reply_latency.observe(latency);
            }
        });
    }

    pub fn reply_failed(&self) {
        self.with(|facts| facts.replies_failed = facts.replies_failed.saturating_add(1));
    }
}

/// The Prometheus text exposition format (version 0.0.4) of the facts and the state's gauges at `now`.
pub fn prometheus(facts: &Facts, state: &StateSummary, now: f64) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {}", number(*value));
        }
    };
    let plain = |value: f64| vec![(String::new(), value)];
    let orders: Vec<_> = facts
        .since_start
        .by_outcome()
        .iter()
        .map(|(outcome, count)| (format!("{{outcome=\"{outcome}\"}}"), *count as f64))
        .collect();
    metric("keypost_messages_total", "counter", "Messages handled since start, by outcome.", &orders);
    let replies = [("sent", facts.replies_sent), ("failed", facts.replies_failed)]
        .map(|(result, count)| (format!("{{result=\"{result}\"}}"), count as f64));
    metric("keypost_replies_total", "counter", "Buyer replies accepted by the server, or given up.", &replies);
    metric(
        "keypost_passes_failed_total",
        "counter",
        "Passes that failed (and were retried).",
        &plain(facts.passes_failed as f64),
    );
    metric(
        "keypost_set_aside",
        "gauge",
        "Messages set aside and not yet released or dropped.",
        &plain(state.set_aside as f64),
    );
    metric("keypost_review_orders", "gauge", "Order lines recorded for review.", &plain(state.review as f64));
    metric("keypost_outbox_waiting", "gauge", "Messages waiting in the outbox.", &plain(state.outbox_waiting as f64));
    metric(
        "keypost_outbox_retrying",
        "gauge",
        "Outbox messages waiting for a retry after a failed send.",
        &plain(state.outbox_retrying as f64),
    );
    let since = |at: Option<i64>| at.map_or(Vec::new(), |at| plain((now - at as f64).max(0.0)));
    metric(
        "keypost_mailbox_contact_age_seconds",
        "gauge",
        "Seconds since keypost last reached its mailbox (absent until it has).",
        &since(facts.mailbox_contact),
    );
    metric(
        "keypost_smtp_contact_age_seconds",
        "gauge",
        "Seconds since the SMTP server last accepted a message (absent until it has).",
        &since(facts.smtp_contact),
    );
    metric(
        "keypost_start_time_seconds",
        "gauge",
        "When the daemon started (Unix seconds).",
        &plain(facts.started_at as f64),
    );
    let histogram = &facts.reply_latency;
    let mut cumulative = 0u64;
    let mut samples = Vec::new();
    for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
        cumulative = cumulative.saturating_add(count);
        samples.push((format!("_bucket{{le=\"{}\"}}", number(*bound)), cumulative as f64));
    }
    samples.push(("_bucket{le=\"+Inf\"}".to_owned(), histogram.count as f64));
    samples.push(("_sum".to_owned(), histogram.sum));
    samples.push(("_count".to_owned(), histogram.count as f64));
    metric(
        "keypost_reply_latency_seconds",
        "histogram",
        "Seconds from recording an order to the SMTP server accepting its reply.",
        &samples,
    );
    out
}

/// A sample value as Prometheus writes it: integers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of a text exposition, as (name with labels, value).
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn the_histogram_is_cumulative_and_ends_with_inf_sum_and_count() {
        let telemetry = Telemetry::new(1_000, "INBOX".into());
        for latency in [0.2, 0.7, 3.0, 100_000.0] {
            telemetry.reply_sent(Some(latency));
        }
        telemetry.reply_sent(None);
        telemetry.reply_failed();
        let text = prometheus(&telemetry.snapshot(), &StateSummary::default(), 2_000.0);
        let samples = samples(&text);
        let value = |name: &str| samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"0.5\"}"), Some(1.0));
        assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"1\"}"), Some(2.0));
        assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"5\"}"), Some(3.0));
        assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"86400\"}"), Some(3.0));
        assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"+Inf\"}"), Some(4.0));
        assert_eq!(value("keypost_reply_latency_seconds_count"), Some(4.0));
        assert_eq!(value("keypost_replies_total{result=\"sent\"}"), Some(5.0));
        assert_eq!(value("keypost_replies_total{result=\"failed\"}"), Some(1.0));
        assert_eq!(value("keypost_mailbox_contact_age_seconds"), None, "absent until the mailbox was reached");
    }

    #[test]
    fn passes_add_up_and_a_failed_pass_is_the_last_one_with_its_error() {
        let telemetry = Telemetry::new(0, "INBOX".into());
        let counts = Counts { messages: 3, fulfilled: 1, ignored: 2, unknown_senders: 1, ..Counts::default() };
        telemetry.pass_done(10, Ok(counts));
        telemetry.pass_done(20, Ok(counts));
        telemetry.mailbox_reached(25);
        telemetry.pass_done(30, Err("IMAP: connection reset".into()));
        let facts = telemetry.snapshot();
        assert_eq!(facts.since_start.fulfilled, 2);
        assert_eq!(facts.passes_failed, 1);
        assert_eq!(facts.last_pass.as_ref().and_then(|p| p.error.as_deref()), Some("IMAP: connection reset"));
        let text = prometheus(&facts, &StateSummary { set_aside: 4, ..StateSummary::default() }, 100.0);
        let samples = samples(&text);
        let value = |name: &str| samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(value("keypost_messages_total{outcome=\"ignored\"}"), Some(2.0), "unknown senders apart");
        assert_eq!(value("keypost_messages_total{outcome=\"unknown_sender\"}"), Some(2.0));
        assert_eq!(value("keypost_set_aside"), Some(4.0));
        assert_eq!(value("keypost_mailbox_contact_age_seconds"), Some(75.0));
        assert!(text.contains("# TYPE keypost_reply_latency_seconds histogram\n"), "{text}");
    }
}
