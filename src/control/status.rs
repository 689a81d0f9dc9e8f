//! `keypost status`: what the running daemon knows about itself (over the control socket) and what the state
//! says, as text or as JSON with stable field names (README "Status"). Formats only; reads the store.
use std::fmt::Write as _;

use serde::Serialize;

use super::protocol::Answer;
use crate::store::Store;
use crate::telemetry::{Counts, Facts, StateSummary};

/// The exit code of `status` when no daemon runs (as `systemctl status` does for a stopped unit).
pub const EXIT_NOT_RUNNING: u8 = 3;

/// `keypost status --json`. Times are RFC 3339 (UTC); a field the daemon cannot know yet is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Whether a `keypost run` holds the state and answered over its control socket.
    pub running: bool,
    /// The rest of the daemon's facts: `null` when it is not running.
    pub daemon: Option<Daemon>,
    pub outbox: Outbox,
    pub set_aside: u64,
    pub review: u64,
    pub unknown_senders: u64,
    /// Each code pool's stock (products with codes in the state), in product order.
    pub pools: Vec<PoolStock>,
    /// Providers silent for much longer than usual (`[watch]`), alerted and with no order since, in order.
    pub silent_providers: Vec<SilentProvider>,
}

/// A provider whose silence was alerted and has not ended (`keypost status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilentProvider {
    pub provider: String,
    /// When its last order was recorded.
    pub last_order: String,
    /// The median gap between its recent orders, in seconds.
    pub usual_gap_seconds: i64,
    /// When the vendor was alerted.
    pub alerted_at: String,
}

fn silent_providers(store: &Store) -> anyhow::Result<Vec<SilentProvider>> {
    let silent = store.silent_providers()?.into_iter().map(|(provider, record)| SilentProvider {
        provider,
        last_order: rfc3339(record.since),
        usual_gap_seconds: record.usual_gap,
        alerted_at: rfc3339(record.alerted_at),
    });
    Ok(silent.collect())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Daemon {
    pub started_at: String,
    /// The mailbox it reads.
    pub source: String,
    pub mailbox: Contact,
    pub smtp: Contact,
    pub last_pass: Option<Pass>,
    /// What its passes came to since it started.
    pub since_start: Counts,
    pub passes_failed: u64,
}

/// The last successful contact with a server: `null` fields until there was one since the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub last_contact: Option<String>,
    pub seconds_ago: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pass {
    pub at: String,
    pub ok: bool,
    pub error: Option<String>,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outbox {
    pub waiting: u64,
    pub retrying: u64,
    /// When the earliest waiting message is tried next.
    pub next_attempt: Option<String>,
}

/// One code pool's stock (`keypost pool status` has the details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStock {
    /// The product id.
    pub pool: String,
    pub available: u64,
    pub handed_out: u64,
}

fn pool_stock(store: &Store) -> anyhow::Result<Vec<PoolStock>> {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut stock = Vec::new();
    for product in store.pool_products()? {
        let counts = store.pool_counts(&product)?;
        stock.push(PoolStock {
            available: count(counts.available),
            handed_out: count(counts.handed_out),
            pool: product,
        });
    }
    Ok(stock)
}

/// Reads the state and, with `facts`, the daemon's own; `now` is Unix seconds.
pub fn gather(store: &Store, facts: Option<&Facts>, now: i64) -> anyhow::Result<Status> {
    let summary = StateSummary::read(store)?;
    Ok(Status {
        running: facts.is_some(),
        daemon: facts.map(|facts| daemon(facts, now)),
        outbox: Outbox {
            waiting: summary.outbox_waiting,
            retrying: summary.outbox_retrying,
            next_attempt: summary.next_attempt.map(rfc3339),
        },
        set_aside: summary.set_aside,
        review: summary.review,
        unknown_senders: summary.unknown_senders,
        pools: pool_stock(store)?,
        silent_providers: silent_providers(store)?,
    })
}

fn daemon(facts: &Facts, now: i64) -> Daemon {
    let contact = |at: Option<i64>| Contact {
        last_contact: at.map(rfc3339),
        seconds_ago: at.map(|at| now.saturating_sub(at).max(0)),
    };
    Daemon {
        started_at: rfc3339(facts.started_at),
        source: facts.source.clone(),
        mailbox: contact(facts.mailbox_contact),
        smtp: contact(facts.smtp_contact),
        last_pass: facts.last_pass.as_ref().map(|pass| Pass {
            at: rfc3339(pass.at),
            ok: pass.error.is_none(),
            error: pass.error.clone(),
            counts: pass.counts,
        }),
        since_start: facts.since_start,
        passes_failed: facts.passes_failed,
    }
}

/// What `status` prints, and its exit code: 0 while the daemon runs, [`EXIT_NOT_RUNNING`] when it does not.
pub fn answer(status: &Status, json: bool) -> anyhow::Result<Answer> {
    let exit = if status.running { 0 } else { EXIT_NOT_RUNNING };
    let stdout = if json { serde_json::to_string_pretty(status)? + "\n" } else { text(status) };
    Ok(Answer { stdout, exit })
}

fn text(status: &Status) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:>16}: {value}");
    };
    match &status.daemon {
        Some(daemon) => {
            line("keypost", format!("running since {}, reading {}", daemon.started_at, daemon.source));
            line("mailbox", contact(&daemon.mailbox, "reached"));
            line("smtp", contact(&daemon.smtp, "accepted a message"));
            let pass = match &daemon.last_pass {
                None => "none yet".to_owned(),
                Some(Pass { at, error: Some(error), .. }) => format!("{at} FAILED: {error}"),
                Some(Pass { at, counts, .. }) => format!("{at}: {}", counts_text(counts)),
            };
            line("last pass", pass);
            line("since start", counts_text(&daemon.since_start));
            if daemon.passes_failed > 0 {
                line("failed passes", daemon.passes_failed.to_string());
            }
        }
        None => line("keypost", "not running (no daemon holds the state); what the state says:".to_owned()),
    }
    let next = status.outbox.next_attempt.as_ref().map(|at| format!(", next attempt {at}")).unwrap_or_default();
    line("outbox", format!("{} waiting, {} retrying{next}", status.outbox.waiting, status.outbox.retrying));
    line("set aside", format!("{} (keypost aside list)", status.set_aside));
    line("for review", format!("{} order line(s), all time", status.review));
    line("unknown senders", format!("{} message(s), all time", status.unknown_senders));
    if !status.pools.is_empty() {
        let stock: Vec<String> = status.pools.iter().map(|p| format!("{} {} available", p.pool, p.available)).collect();
        line("code pools", stock.join(", "));
    }
    for silent in &status.silent_providers {
        let usual = crate::watch::span(silent.usual_gap_seconds);
        line(
            "silent",
            format!("{}: no order since {} (usually one every {usual})", silent.provider, silent.last_order),
        );
    }
    out
}

fn contact(contact: &Contact, verb: &str) -> String {
    match (&contact.last_contact, contact.seconds_ago) {
        (Some(at), Some(ago)) => format!("last {verb} {at} ({} ago)", ago_text(ago)),
        _ => format!("not {verb} since the start"),
    }
}

fn ago_text(secs: i64) -> String {
    match secs {
        ..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

fn counts_text(c: &Counts) -> String {
    format!(
        "{} message(s): fulfilled {}, ignored {} ({} unknown senders), set aside {}, review {}, revoked {}, \
         duplicates {}, retrying {}; replies sent {}, send failures {}",
        c.messages,
        c.fulfilled,
        c.ignored,
        c.unknown_senders,
        c.set_aside,
        c.review,
        c.revoked,
        c.duplicates,
        c.retrying,
        c.sent,
        c.send_failures
    )
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_daemon_exits_3_and_says_what_the_state_alone_tells() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let status = gather(&store, None, 0).unwrap();
        let answer = answer(&status, false).unwrap();
        assert_eq!(answer.exit, EXIT_NOT_RUNNING);
        assert!(answer.stdout.contains("not running"), "{}", answer.stdout);
        assert!(answer.stdout.contains("0 waiting, 0 retrying"), "{}", answer.stdout);
        let json: serde_json::Value = serde_json::from_str(&super::answer(&status, true).unwrap().stdout).unwrap();
        assert_eq!(json["running"], false);
        assert!(json["daemon"].is_null());
    }

    #[test]
    fn a_running_daemon_shows_its_contacts_and_last_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let telemetry = crate::telemetry::Telemetry::new(1_000, "Maildir /m".into());
        telemetry.mailbox_reached(1_990);
        telemetry.pass_done(1_995, Err("Failed to fetch from Maildir /m: gone".into()));
        let status = gather(&store, Some(&telemetry.snapshot()), 2_000).unwrap();
        let answer = answer(&status, false).unwrap();
        assert_eq!(answer.exit, 0);
        assert!(answer.stdout.contains("(10 s ago)"), "{}", answer.stdout);
        assert!(answer.stdout.contains("not accepted a message since the start"), "{}", answer.stdout);
        assert!(answer.stdout.contains("FAILED: Failed to fetch"), "{}", answer.stdout);
    }
}
