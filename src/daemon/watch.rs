//! Missed orders, as the daemon sees them. Each order's sequence number (template `fields.sequence`) against the
//! highest one seen in its sequence; the number is kept in the store with the order's own change, so a crash
//! loses both or neither. And after each pass, each provider's silence ([`crate::watch::silence`]): one alert per
//! silence, recorded in the same durable commit as the alert it queues, so a restart does not repeat it; a later
//! order from the provider ends the silence (its record is removed, audited). [`crate::watch`] decides.
use anyhow::Context as _;

use super::core::Core;
use crate::order::Order;
use crate::reply::Alert;
use crate::store::{Change, SilenceRecord};
use crate::watch::{SequenceCheck, sequence_gap};

impl Core {
    /// Adds to `change` the order's sequence number and, when numbers were skipped, an alert.
    pub(super) fn watch_sequence(&self, order: &Order, origin: &str, change: &mut Change) -> anyhow::Result<()> {
        let Some(sequence) = &order.sequence else { return Ok(()) };
        if order.test || !self.config.watch.sequence_gaps(&order.provider) {
            return Ok(());
        }
        let last = self.store.sequence_last(&sequence.scope)?;
        if let SequenceCheck::Gap { first_missing, last_missing } = sequence_gap(last, sequence.number) {
            tracing::warn!(scope = %sequence.scope, first_missing, last_missing, "Numbers skipped in a provider's sequence; vendor alerted.");
            let alert = Alert::MissedOrders {
                scope: sequence.scope.clone(),
                first_missing,
                last_missing,
                seen: sequence.number,
                origin: origin.to_owned(),
            };
            self.queue_alert(&alert, change)?;
        }
        if last.is_none_or(|last| sequence.number > last) {
            change.put_sequence(&sequence.scope, sequence.number);
        }
        Ok(())
    }

    /// Alerts once for each provider silent for longer than its `[watch]` rule allows, and ends the silences of
    /// providers whose orders came again; durably, before the pass's `send_due` sends the alerts. Returns how
    /// many silences it alerted. Hand-made orders (`manual`) and disabled templates are not watched.
    pub async fn watch_silence(&self) -> anyhow::Result<usize> {
        let now = self.now().unix_timestamp();
        let mut change = Change::new();
        let (mut alerted, mut changed) = (0, false);
        for provider in self.store.order_providers()? {
            if provider == super::MANUAL_PROVIDER {
                continue;
            }
            let recorded = self.store.silence(&provider)?;
            let rule = self.config.watch.silence_rule(&provider);
            let Some(rule) = rule.filter(|_| !self.config.templates.disable.contains(&provider)) else {
                // No longer watched (turned off, the template disabled): a silence alerted before is over.
                if recorded.is_some() {
                    change.end_silence(&provider);
                    change.audit(now, "silence-ended", &provider, "no longer watched ([watch] or [templates])");
                    changed = true;
                }
                continue;
            };
            let times = self.store.order_times(&provider, rule.orders.max(crate::watch::MIN_ORDERS))?;
            let last = times.last().copied();
            match crate::watch::silence(&times, now, &rule) {
                Some(silence) if silence.is_new(recorded.as_ref().map(|r| r.since)) => {
                    let quiet = now.saturating_sub(silence.since);
                    tracing::warn!(
                        provider,
                        quiet_secs = quiet,
                        usual_gap_secs = silence.usual_gap,
                        "No order mail from a provider for much longer than usual; vendor alerted."
                    );
                    let alert = Alert::Silence {
                        provider: provider.clone(),
                        since: silence.since,
                        quiet,
                        usual_gap: silence.usual_gap,
                    };
                    self.queue_alert(&alert, &mut change)?;
                    let record = SilenceRecord {
                        since: silence.since,
                        usual_gap: silence.usual_gap,
                        threshold: silence.threshold,
                        alerted_at: now,
                    };
                    change.put_silence(&provider, &record);
                    change.audit(now, "silence", &provider, alert.title());
                    (alerted, changed) = (alerted + 1, true);
                }
                None if recorded.as_ref().is_some_and(|r| last.is_some_and(|last| last > r.since)) => {
                    tracing::info!(provider, "Order mail from a silent provider again; its silence ended.");
                    change.end_silence(&provider);
                    change.audit(now, "silence-ended", &provider, "order mail again after the silence alerted");
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            self.store.commit_durable(change).await.context("Failed to record a provider's silence")?;
        }
        Ok(alerted)
    }
}
