//! The periodic digest to the vendor ([`crate::digest`] says when): gathered from the state and queued once per
//! period. The period's record and the mail go into the outbox in one durable commit, as a reply does, so a crash
//! or a restart neither loses the digest nor sends it twice (the deterministic Message-ID makes a resend after
//! a crash between send and record the same message).
use anyhow::Context as _;

use super::core::Core;
use crate::digest::Window;
use crate::mailbox::Disposition;
use crate::reply::digest::Report;
use crate::store::{Change, DigestRecord, OutboxEntry, Purpose, ReplyState, Store};

impl Core {
    /// Queues the latest period's digest when `[digest]` is on and it was not queued before; sent by the pass's
    /// `send_due`, which follows. Returns whether it queued one.
    pub async fn queue_digest(&self) -> anyhow::Result<bool> {
        let Some(config) = &self.config.digest else { return Ok(false) };
        let now = self.now().unix_timestamp();
        let window = config.latest_window(now).map_err(|err| anyhow::anyhow!("digest.time_zone: {err}"))?;
        if self.store.digest(&window.id)?.is_some() {
            return Ok(false);
        }
        let pools: Vec<String> = self.config.products.iter().filter(|p| p.is_pool()).map(|p| p.id.clone()).collect();
        let mut report = gather(&self.store, &window, &pools)?;
        report.span = format!("{} to {}", utc(window.start), utc(window.end));
        report.schedule = config.describe();
        let to = config.to.as_deref();
        let outgoing = self.renderer.digest(&report, to).context("Failed to render the digest")?;
        let mut change = Change::new();
        change.digest(&window.id, &DigestRecord { at: now, message_id: outgoing.message_id.clone() });
        change.queue(&OutboxEntry::new(outgoing, Purpose::Vendor, now));
        change.audit(now, "digest", "vendor", format!("digest for the period ending {}", window.id));
        self.store.commit_durable(change).await.context("Failed to record the digest")?;
        tracing::info!(period = %window.id, "Digest queued.");
        Ok(true)
    }
}

/// `2026-11-30 07:00 UTC`: a window's bound as the mail shows it (the schedule beside names the local zone).
fn utc(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_else(|| at.to_string())
}

/// Everything the digest reports, from the state. One scan of the orders and one of the source records.
/// `pools`: the products configured with a code pool.
pub fn gather(store: &Store, window: &Window, pools: &[String]) -> anyhow::Result<Report> {
    let within = |at: i64| (window.start..window.end).contains(&at);
    let mut report = Report { period: window.id.clone(), ..Report::default() };
    for record in store.orders()? {
        if within(record.received_at) {
            if let Some(license) = &record.license {
                let currency = record.amount.as_ref().and_then(|m| m.currency.clone()).unwrap_or_else(|| "?".into());
                let sales = report.sales.entry((license.grant.product.clone(), currency)).or_default();
                sales.licenses += 1;
                sales.seats += u64::from(license.grant.seats);
                sales.revenue += record.amount.as_ref().map_or(0, |m| m.hundredths);
            }
            report.review += usize::from(record.decision == "review");
        }
        if let Some(revoked) = &record.revoked
            && within(revoked.at)
            && record.license.is_some()
        {
            report.refunds += 1;
            if let Some(amount) = &record.amount {
                let currency = amount.currency.clone().unwrap_or_else(|| "?".into());
                *report.refunded.entry(currency).or_insert(0) += amount.hundredths;
            }
        }
        if let ReplyState::Failed { reason, .. } = &record.reply {
            report.failed.push(format!("{}: {reason}", record.label()));
        }
    }
    for source in store.source_records()? {
        match source.disposition {
            Disposition::SetAside => {
                report.set_aside_waiting += 1;
                report.set_aside += usize::from(within(source.at));
            }
            Disposition::Ignored => report.ignored += usize::from(within(source.at)),
            Disposition::Done => {}
        }
    }
    for request in store.self_service_since(window.start)?.iter().filter(|r| within(r.at)) {
        report.self_service += 1;
        report.self_service_resent += request.resent as usize;
    }
    report.outbox_waiting = store.outbox_len();
    report.pools = pool_stock(store, pools)?;
    report.silent = store
        .silent_providers()?
        .into_iter()
        .map(|(provider, record)| (provider, utc(record.since), record.usual_gap))
        .collect();
    Ok(report)
}

/// Each code pool (configured, then any other product with codes in the state) and the codes left in it; `None`
/// when there are no pools at all.
fn pool_stock(store: &Store, pools: &[String]) -> anyhow::Result<Option<Vec<(String, u64)>>> {
    let mut products = pools.to_vec();
    products.extend(store.pool_products()?.into_iter().filter(|p| !pools.contains(p)));
    if products.is_empty() {
        return Ok(None);
    }
    let mut stock = Vec::new();
    for product in products {
        let left = store.pool_counts(&product)?.available;
        stock.push((product, u64::try_from(left).unwrap_or(u64::MAX)));
    }
    Ok(Some(stock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_digest_counts_pool_codes_left_and_says_so_when_there_are_no_pools() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let window = Window { id: "2026-11-30".into(), start: 0, end: 10 };
        assert_eq!(gather(&store, &window, &[]).unwrap().pools, None);
        let mut change = Change::new();
        for (seq, code) in ["A-1", "A-2", "A-3"].iter().enumerate() {
            change.pool_add("app", code, seq as u64);
        }
        store.commit_durable(change).await.unwrap();
        let pools = gather(&store, &window, &["other".to_owned()]).unwrap().pools;
        assert_eq!(pools, Some(vec![("other".to_owned(), 0), ("app".to_owned(), 3)]));
        assert!(Report { pools, ..Report::default() }.body().contains("app                  3"));
    }

    #[tokio::test]
    async fn the_digest_lists_the_providers_silent_now_and_counts_them_as_needing_the_vendor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let window = Window { id: "2026-11-30".into(), start: 0, end: 10 };
        let report = gather(&store, &window, &[]).unwrap();
        assert!(report.body().contains("silent providers:         0\n"), "{}", report.body());
        let mut change = Change::new();
        let record =
            crate::store::SilenceRecord { since: 1_764_486_000, usual_gap: 4 * 3600, threshold: 1, alerted_at: 2 };
        change.put_silence("paddle", &record);
        store.commit_durable(change).await.unwrap();
        let report = gather(&store, &window, &[]).unwrap();
        let body = report.body();
        assert!(body.contains("silent providers:         1\n"), "{body}");
        assert!(
            body.contains("    paddle: no order mail since 2025-11-30 07:00 UTC (usually one every 4 hours)\n"),
            "{body}"
        );
        assert!(report.subject().ends_with(", 1 need(s) you"), "{}", report.subject());
    }
}
