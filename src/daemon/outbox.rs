//! Sending the durable outbox (the store's protocol step 3): entries are sent concurrently (the mailer bounds
//! how many at once); each one the server accepted is noted in the send journal at once, and the outcomes of the
//! group are committed durably together when its sends are done.
//! Transient failures are retried quickly at first and then less and less often (see [`retry_delay`]);
//! permanent ones (or too many attempts) mark the reply failed and alert the vendor.
use anyhow::Context as _;

use super::Outcome;
use super::core::Core;
use crate::reply::{Alert, Mailer, SendError};
use crate::store::{Change, OutboxEntry, Purpose, Queued, ReplyState};

/// The longest wait between two tries.
const MAX_RETRY_SECS: u64 = 6 * 60 * 60;

/// After a stop is requested, sends go on for this long; then the ones not done yet are dropped and wait in the
/// outbox for the next start. Half the unit's `TimeoutStopSec=1min`: a stop in a backlog has up to two batches'
/// replies in hand, and through a slow relay they would outlast it, and systemd's SIGKILL would come mid-send.
pub(super) const STOP_SENDING_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// One entry's try: what it adds to the pass's counts, and the record its group commits.
#[derive(Default)]
struct Tried {
    outcome: Outcome,
    /// `None` when the record was already committed on its own.
    change: Option<Change>,
    /// Whether the send journal holds this send.
    journaled: bool,
}

impl Core {
    /// Sends every entry whose next try is due.
    pub async fn send_due<M: Mailer>(&self, mailer: &M) -> anyhow::Result<Outcome> {
        self.send_due_except(mailer, &[]).await
    }

    /// The same, leaving out `held`: replies a batch decided ahead queued, which its own pass sends.
    pub async fn send_due_except<M: Mailer>(&self, mailer: &M, held: &[String]) -> anyhow::Result<Outcome> {
        let mut due = self.store.due_outbox(self.now().unix_timestamp()).context("Failed to read the outbox")?;
        if !held.is_empty() {
            let held: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
            due.retain(|entry| !held.contains(entry.outgoing.message_id.as_str()));
        }
        self.send_all(mailer, due).await
    }

    /// Sends what a durable commit just queued (entries already sent or gone are skipped).
    pub async fn send_queued<M: Mailer>(&self, mailer: &M, queued: &Queued) -> anyhow::Result<Outcome> {
        let mut entries = Vec::with_capacity(queued.len());
        for id in queued.message_ids() {
            entries.extend(self.store.outbox_entry(id)?);
        }
        self.send_all(mailer, entries).await
    }

    /// Sends the entries concurrently; the mailer bounds how many are on the wire at once (its connections).
    /// Each accepted send is noted in the send journal the moment the server answers, so a crash of the process
    /// after that does not send it again; the records of all of them (and of failed tries) then go into the state
    /// with one durable commit, instead of one fsync per send.
    ///
    /// [`STOP_SENDING_FOR`] after a stop request, the sends not done are dropped: they stay in the outbox, due,
    /// for the next start. One cut mid-transaction is what a crash there would be (the crash protocol: at worst
    /// sent again with its first Message-ID), for at most as many as the mailer has connections.
    async fn send_all<M: Mailer>(&self, mailer: &M, entries: Vec<OutboxEntry>) -> anyhow::Result<Outcome> {
        use futures::StreamExt as _;
        if entries.is_empty() {
            return Ok(Outcome::default());
        }
        let total = entries.len();
        let mut sends: futures::stream::FuturesUnordered<_> =
            entries.into_iter().map(|entry| self.send_one(mailer, entry)).collect();
        let mut results = Vec::with_capacity(total);
        let cut_off = async { tokio::time::sleep_until(self.stop_requested_at().await + STOP_SENDING_FOR).await };
        let mut cut_off = std::pin::pin!(cut_off);
        loop {
            tokio::select! {
                biased;
                () = &mut cut_off => {
                    tracing::warn!(
                        unsent = total - results.len(),
                        "Stopping before every reply went out; the rest wait in the outbox for the next start."
                    );
                    break;
                }
                result = sends.next() => match result {
                    Some(result) => {
                        self.progressed();
                        results.push(result);
                    }
                    None => break,
                },
            }
        }
        drop(sends);
        let mut outcome = Outcome::default();
        let mut first_err = None;
        let mut changes = Vec::with_capacity(results.len());
        let mut journaled = 0;
        for result in results {
            match result {
                Ok(tried) => {
                    outcome.add(&tried.outcome);
                    journaled += usize::from(tried.journaled);
                    changes.extend(tried.change);
                }
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        // Even after an error: the records of the sends that went out are committed before anything else.
        // An alert this queued (a send given up) goes out with the next due pass, not from here.
        self.store.commit_sends(changes, journaled).await.context("Failed to record the sends")?;
        first_err.map_or(Ok(outcome), Err)
    }

    /// Protocol step 3 for one entry: send it; if the server accepted it, note that in the send journal at once.
    /// Returns the record to commit with the group (or, when the journal cannot be written, commits it durably
    /// here, as each send was recorded before the journal).
    #[tracing::instrument(skip_all, fields(message_id = %entry.outgoing.message_id))]
    async fn send_one<M: Mailer>(&self, mailer: &M, entry: OutboxEntry) -> anyhow::Result<Tried> {
        let result = mailer.send(&entry.outgoing).await;
        let now = self.now().unix_timestamp();
        let mut change = Change::new();
        let mut tried = Tried::default();
        match result {
            Ok(()) => {
                tried.journaled = match self.store.journal_sent(now, &entry.outgoing.message_id) {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!("Cannot write the send journal; recording this send on its own: {err}");
                        false
                    }
                };
                self.record_sent(&entry, now, &mut change)?;
                tried.outcome.sent = 1;
            }
            Err(err) => {
                self.record_failure(entry, &err, now, &mut change)?;
                tried.outcome.send_failures = 1;
            }
        }
        if tried.outcome.sent == 1 && !tried.journaled {
            self.store.commit_durable(change).await.context("Failed to record a send")?;
        } else {
            tried.change = Some(change);
        }
        Ok(tried)
    }

    fn record_sent(&self, entry: &OutboxEntry, now: i64, change: &mut Change) -> anyhow::Result<()> {
        self.telemetry.smtp_reached(now);
        let before = self.store.record_sent(entry, now, change)?;
        if let Some(record) = before {
            // From the order's record to the server's acceptance; a resend by hand is not a reply's latency.
            let since_recorded = self.now() - time::OffsetDateTime::from_unix_timestamp(record.received_at)?;
            self.telemetry.reply_sent((record.resends == 0).then(|| since_recorded.as_seconds_f64()));
        }
        if let Purpose::Reply { provider, order_id, line } = &entry.purpose {
            tracing::info!(provider, order_id = %order_id, line, "Reply sent.");
        }
        Ok(())
    }

    fn record_failure(
        &self,
        mut entry: OutboxEntry,
        err: &SendError,
        now: i64,
        change: &mut Change,
    ) -> anyhow::Result<()> {
        entry.attempts = entry.attempts.saturating_add(1);
        let id = entry.outgoing.message_id.clone();
        let gives_up = matches!(err, SendError::Permanent(_)) || entry.attempts >= self.config.reply.send_attempts;
        if !gives_up {
            let delay = retry_delay(self.config.reply.retry_after_secs, entry.attempts);
            // A server's refusal can quote the recipient: the reason goes to debug, the audit and the alert.
            tracing::warn!(attempts = entry.attempts, retry_in_secs = delay, "Send failed; will retry.");
            tracing::debug!("Send failure: {err}");
            entry.next_try = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            entry.last_error = Some(err.to_string());
            change.audit(now, "retry", &id, err.to_string());
            change.queue(&entry);
            return Ok(());
        }
        tracing::error!(attempts = entry.attempts, "Send failed; giving up.");
        if matches!(entry.purpose, Purpose::Reply { .. }) {
            self.telemetry.reply_failed();
        }
        tracing::debug!("Send failure: {err}");
        change.unqueue(&id);
        change.audit(now, "send-failed", &id, err.to_string());
        if let Purpose::Reply { provider, order_id, line } = &entry.purpose {
            if let Some(mut record) = self.store.order_line(provider, order_id.as_str(), *line)? {
                record.reply = ReplyState::Failed { reason: err.to_string(), attempts: entry.attempts };
                change.put_reply_state(&record);
            }
            let alert = Alert::SendFailed {
                provider: provider.clone(),
                order_id: order_id.to_string(),
                line: *line,
                attempts: entry.attempts,
                error: err.to_string(),
                message_id: id.clone(),
            };
            self.queue_alert(&alert, change)?;
        }
        // A vendor message that fails is only logged and audited: alerting about an alert would loop.
        Ok(())
    }
}

/// The wait after the `attempts`-th failed try: `first`, then four times longer per further attempt, at most
/// [`MAX_RETRY_SECS`]. Most transient failures (a 421 from a server shedding load, a dropped connection, a
/// restart) are over within seconds, so the first retries come quickly; a server that stays down is not
/// hammered. With the defaults (2 s, 8 attempts): 2 s, 8 s, 32 s, ~2 min, ~9 min, ~34 min, ~2.3 h, so a reply
/// is given up about three hours after its first try.
pub fn retry_delay(first: u64, attempts: u32) -> u64 {
    let steps = attempts.saturating_sub(1).min(20);
    first.saturating_mul(4u64.saturating_pow(steps)).min(MAX_RETRY_SECS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_start_within_seconds_then_back_off_to_at_most_six_hours() {
        let delays: Vec<u64> = (1..=7).map(|a| super::retry_delay(2, a)).collect();
        assert_eq!(delays, [2, 8, 32, 128, 512, 2048, 8192]);
        assert_eq!(super::retry_delay(2, 40), 6 * 60 * 60);
        assert_eq!(super::retry_delay(u64::MAX, 3), 6 * 60 * 60, "no overflow");
    }
}
