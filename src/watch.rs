//! Missed orders: notifications a provider should have sent and keypost never saw. Pure: no I/O.
//!
//! Two signs. A gap in a sequence the provider numbers its notifications with (a template's `fields.sequence`:
//! Kagi's per-product SQNM, order numbers that count up): [`sequence_gap`]. And a provider silent for much
//! longer than its usual gap between orders (a broken forward, a full mailbox, a changed address): [`silence`],
//! alerted once per silence ([`Silence::is_new`]). The daemon keeps the last number per sequence and the last
//! silence alerted per provider in the store; this module only decides (`daemon/watch.rs` acts after each pass).
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::problems::Problems;

/// Fewer orders than this and a provider has no usual gap yet: no silence alert.
pub const MIN_ORDERS: usize = 5;
const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;

/// `[watch]`: when keypost alerts about orders it may have missed.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchConfig {
    /// Alert on a gap in a template's `fields.sequence` (default true).
    #[serde(default = "yes")]
    pub sequence_gaps: bool,
    /// A provider is silent when no order came for `silence_factor` times the median gap between its last
    /// `silence_orders` orders (default 10) ...
    #[serde(default = "ten")]
    pub silence_factor: u32,
    /// ... and at least this many hours (default 24); 0 turns the silence alert off.
    #[serde(default = "day")]
    pub silence_min_hours: u32,
    /// How many of a provider's last orders its usual gap is the median over (default 20).
    #[serde(default = "twenty")]
    pub silence_orders: u32,
    /// Per provider (template id), overriding the keys above.
    #[serde(default)]
    pub provider: BTreeMap<String, ProviderWatch>,
}

/// `[watch.provider.ID]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProviderWatch {
    pub sequence_gaps: Option<bool>,
    pub silence_factor: Option<u32>,
    pub silence_min_hours: Option<u32>,
}

fn yes() -> bool {
    true
}
fn ten() -> u32 {
    10
}
fn day() -> u32 {
    24
}
fn twenty() -> u32 {
    20
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            sequence_gaps: true,
            silence_factor: ten(),
            silence_min_hours: day(),
            silence_orders: twenty(),
            provider: BTreeMap::new(),
        }
    }
}

/// The silence rule for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceRule {
    pub factor: u32,
    pub min_hours: u32,
    pub orders: usize,
}

impl WatchConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.silence_orders < MIN_ORDERS as u32 {
            problems.error("watch.silence_orders", format!("must be at least {MIN_ORDERS}: a usual gap needs orders"));
        }
        if self.silence_factor == 0 {
            problems.error("watch.silence_factor", "must be at least 1 (silence_min_hours = 0 turns the alert off)");
        }
    }

    pub fn sequence_gaps(&self, provider: &str) -> bool {
        self.provider.get(provider).and_then(|p| p.sequence_gaps).unwrap_or(self.sequence_gaps)
    }

    /// The provider's silence rule; `None` when its silence alert is off.
    pub fn silence_rule(&self, provider: &str) -> Option<SilenceRule> {
        let own = self.provider.get(provider);
        let min_hours = own.and_then(|p| p.silence_min_hours).unwrap_or(self.silence_min_hours);
        let factor = own.and_then(|p| p.silence_factor).unwrap_or(self.silence_factor);
        let orders = usize::try_from(self.silence_orders).unwrap_or(usize::MAX);
        (min_hours > 0).then_some(SilenceRule { factor, min_hours, orders })
    }
}

/// What a sequence number says, against the last one seen in its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The first number keypost sees in this sequence: nothing to compare.
    First,
    /// The next number.
    Next,
    /// Numbers were skipped: these notifications never arrived (or came without a readable number).
    Gap { first_missing: u64, last_missing: u64 },
    /// Not above the last: a late or repeated notification (it may fill part of a gap already alerted).
    NotAbove,
}

pub fn sequence_gap(last: Option<u64>, seen: u64) -> SequenceCheck {
    match last {
        None => SequenceCheck::First,
        Some(last) if seen <= last => SequenceCheck::NotAbove,
        Some(last) if seen == last.saturating_add(1) => SequenceCheck::Next,
        Some(last) => {
            SequenceCheck::Gap { first_missing: last.saturating_add(1), last_missing: seen.saturating_sub(1) }
        }
    }
}

/// A provider silent for longer than its rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// When its last order was recorded (Unix seconds): names this silence.
    pub since: i64,
    /// The median gap between its recent orders, in seconds.
    pub usual_gap: i64,
    /// How long it may be silent before this alert, in seconds.
    pub threshold: i64,
}

impl Silence {
    /// Whether this silence is not the one alerted last (`alerted`: the `since` of the last alert): one alert per
    /// silence, however many passes see it.
    pub fn is_new(&self, alerted: Option<i64>) -> bool {
        alerted != Some(self.since)
    }
}

/// `order_times`: when the provider's orders were recorded (Unix seconds, any order). `Some` when the provider
/// has been silent at `now` for more than max(min_hours, factor × the median gap of its last `orders` orders).
pub fn silence(order_times: &[i64], now: i64, rule: &SilenceRule) -> Option<Silence> {
    let mut times = order_times.to_vec();
    times.sort_unstable();
    let recent = times.get(times.len().saturating_sub(rule.orders.max(MIN_ORDERS))..)?;
    if recent.len() < MIN_ORDERS {
        return None;
    }
    let mut gaps: Vec<i64> = recent.windows(2).filter_map(|w| Some(w.get(1)? - w.first()?)).collect();
    gaps.sort_unstable();
    let usual_gap = *gaps.get(gaps.len() / 2)?;
    let threshold = (i64::from(rule.min_hours) * HOUR).max(usual_gap.saturating_mul(i64::from(rule.factor)));
    let since = *recent.last()?;
    (now.saturating_sub(since) > threshold).then_some(Silence { since, usual_gap, threshold })
}

/// A span of seconds as a person says it: `45 minutes`, `4 hours`, `3 days` (rounded down; at least a minute).
pub fn span(secs: i64) -> String {
    let (count, unit) = match secs.max(60) {
        s if s < 2 * HOUR => (s / 60, "minute"),
        s if s < 2 * DAY => (s / HOUR, "hour"),
        s => (s / DAY, "day"),
    };
    if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: SilenceRule = SilenceRule { factor: 10, min_hours: 24, orders: 20 };

    #[test]
    fn a_skipped_number_is_a_gap_and_a_late_one_is_not() {
        assert_eq!(sequence_gap(None, 41), SequenceCheck::First);
        assert_eq!(sequence_gap(Some(41), 42), SequenceCheck::Next);
        assert_eq!(sequence_gap(Some(42), 45), SequenceCheck::Gap { first_missing: 43, last_missing: 44 });
        assert_eq!(sequence_gap(Some(45), 44), SequenceCheck::NotAbove);
        assert_eq!(sequence_gap(Some(45), 45), SequenceCheck::NotAbove);
        assert_eq!(sequence_gap(Some(u64::MAX), 0), SequenceCheck::NotAbove);
    }

    #[test]
    fn a_busy_provider_is_silent_after_a_day_and_a_slow_one_after_ten_usual_gaps() {
        let hourly: Vec<i64> = (0..30).map(|n| n * HOUR).collect();
        let last = 29 * HOUR;
        assert_eq!(silence(&hourly, last + 23 * HOUR, &RULE), None, "ten hours' gap is less than a day");
        let found = silence(&hourly, last + 25 * HOUR, &RULE).unwrap();
        assert_eq!((found.since, found.usual_gap, found.threshold), (last, HOUR, 24 * HOUR));
        let weekly: Vec<i64> = (0..10).map(|n| n * 7 * 24 * HOUR).collect();
        let last = 9 * 7 * 24 * HOUR;
        assert_eq!(silence(&weekly, last + 60 * 24 * HOUR, &RULE), None, "two months is less than ten weeks");
        assert!(silence(&weekly, last + 71 * 24 * HOUR, &RULE).is_some());
    }

    #[test]
    fn too_few_orders_give_no_usual_gap_and_one_odd_gap_does_not_move_the_median() {
        assert_eq!(silence(&[0, HOUR, 2 * HOUR, 3 * HOUR], 100 * 24 * HOUR, &RULE), None);
        let mut times: Vec<i64> = (0..10).map(|n| n * HOUR).collect();
        times.insert(0, -1000 * 24 * HOUR);
        let found = silence(&times, 9 * HOUR + 25 * HOUR, &RULE).unwrap();
        assert_eq!(found.usual_gap, HOUR);
    }

    #[test]
    fn one_alert_per_silence() {
        let hourly: Vec<i64> = (0..30).map(|n| n * HOUR).collect();
        let found = silence(&hourly, 60 * HOUR, &RULE).unwrap();
        assert!(found.is_new(None));
        assert!(!found.is_new(Some(found.since)), "the same silence again: no second alert");
        let later: Vec<i64> = hourly.iter().copied().chain([70 * HOUR]).collect();
        assert!(silence(&later, 100 * HOUR, &RULE).unwrap().is_new(Some(found.since)), "a new silence");
    }

    #[test]
    fn spans_read_as_a_person_says_them() {
        let said: Vec<String> = [0, 90, 45 * 60, 2 * HOUR - 1, 2 * HOUR, 4 * HOUR + 59 * 60, 2 * DAY, 3 * DAY + HOUR]
            .into_iter()
            .map(span)
            .collect();
        assert_eq!(
            said,
            ["1 minute", "1 minute", "45 minutes", "119 minutes", "2 hours", "4 hours", "2 days", "3 days"]
        );
    }

    #[test]
    fn per_provider_settings_override_and_zero_hours_turn_silence_off() {
        let mut config = WatchConfig::default();
        config.provider.insert("kagi".into(), ProviderWatch { silence_min_hours: Some(0), ..Default::default() });
        config.provider.insert("paddle".into(), ProviderWatch { sequence_gaps: Some(false), ..Default::default() });
        assert_eq!(config.silence_rule("kagi"), None);
        assert_eq!(config.silence_rule("paypal"), Some(RULE));
        assert!(!config.sequence_gaps("paddle") && config.sequence_gaps("kagi"));
    }
}
