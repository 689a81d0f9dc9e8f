//! Vendor alerts, throttled. Anyone can send the order mailbox a message that keypost sets aside with an alert,
//! so alerts must not be a way to flood the vendor's inbox or spend the SMTP quota: past
//! `limits.alerts_per_hour` alerts in an hour, the rest are held and merged into one digest, queued once the hour
//! is over. Only the mail to the vendor is merged: every message is still recorded (its audit line, its
//! disposition, the set-aside folder). Held titles live in memory; should keypost stop before the digest goes
//! out, the audit trail (`alert-held` lines) still lists them.
use crate::reply::Alert;

/// Seconds in a throttling window.
const WINDOW: i64 = 60 * 60;
/// Titles listed in one digest; the rest are counted.
const MAX_LISTED: usize = 200;

/// Counts alerts per window and holds those past the limit.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window_start: Option<i64>,
    sent: u32,
    held: Vec<String>,
    held_total: usize,
}

/// What to do with one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it now.
    Send,
    /// Past the limit: held for the digest.
    Held,
}

impl Throttle {
    /// At most `limit` alerts sent one by one per hour (0 is taken as 1).
    pub fn new(limit: u32) -> Self {
        Self { limit: limit.max(1), window_start: None, sent: 0, held: Vec::new(), held_total: 0 }
    }

    /// Counts `alert` against the current window at time `now` (Unix seconds).
    pub fn admit(&mut self, alert: &Alert, now: i64) -> Admit {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_sub(start) >= WINDOW && self.held_total == 0 {
            // A new window; held alerts keep theirs open until the digest has gone out.
            (self.window_start, self.sent) = (Some(now), 0);
        }
        if self.sent < self.limit && self.held_total == 0 {
            self.sent += 1;
            return Admit::Send;
        }
        self.held_total += 1;
        if self.held.len() < MAX_LISTED {
            self.held.push(alert.title());
        }
        Admit::Held
    }

    /// The digest of the held alerts once their window is over; the window starts again after it.
    pub fn digest_due(&mut self, now: i64) -> Option<Alert> {
        let start = self.window_start?;
        if self.held_total == 0 || now.saturating_sub(start) < WINDOW {
            return None;
        }
        let (held, total) = (std::mem::take(&mut self.held), std::mem::take(&mut self.held_total));
        (self.window_start, self.sent) = (Some(now), 0);
        Some(Alert::Digest { total, limit: self.limit, titles: held, at: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(n: usize) -> Alert {
        Alert::SetAside { message: format!("m/{n}"), note: format!("message {n}") }
    }

    #[test]
    fn past_the_limit_alerts_are_held_and_merged_into_one_digest_after_the_hour() {
        let mut throttle = Throttle::new(3);
        let admitted: Vec<_> = (0..10).map(|n| throttle.admit(&alert(n), 100 + n as i64)).collect();
        assert_eq!(admitted.iter().filter(|a| **a == Admit::Send).count(), 3);
        assert_eq!(throttle.digest_due(100 + WINDOW - 1), None, "not before the hour is over");
        let digest = throttle.digest_due(100 + WINDOW).expect("a digest");
        assert_eq!(digest.title(), "7 more alerts (digest)");
        let body = digest.body();
        assert!(body.contains("set aside: message 3\n") && body.contains("set aside: message 9\n"), "{body}");
        assert_eq!(throttle.digest_due(100 + 2 * WINDOW), None, "one digest per held batch");
        assert_eq!(throttle.admit(&alert(11), 100 + WINDOW + 1), Admit::Send, "a new window after the digest");
    }

    #[test]
    fn a_quiet_hour_starts_a_new_window() {
        let mut throttle = Throttle::new(1);
        assert_eq!(throttle.admit(&alert(0), 0), Admit::Send);
        assert_eq!(throttle.admit(&alert(1), WINDOW + 5), Admit::Send);
        assert_eq!(throttle.admit(&alert(2), WINDOW + 6), Admit::Held);
    }

    #[test]
    fn a_huge_flood_lists_a_bounded_number_of_titles() {
        let mut throttle = Throttle::new(1);
        for n in 0..1000 {
            throttle.admit(&alert(n), 0);
        }
        let digest = throttle.digest_due(WINDOW).unwrap();
        assert!(digest.body().contains(&format!("... and {} more", 999 - MAX_LISTED)), "{}", digest.body());
    }
}
