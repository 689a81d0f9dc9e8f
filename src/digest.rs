//! `[digest]`: the periodic summary mail to the vendor, and when it is due. Pure: the clock is an argument, the
//! time zone comes from the system's zone database (`/usr/share/zoneinfo`), read when the configuration loads.
//!
//! A period ends at `at` local time (every day, or every Monday for `week`) and covers the day or the seven days
//! before it; its id is the local date it ends on. The digest of the latest period that has ended is due until the
//! state records it sent (`daemon/digest.rs` records it in the same commit that queues the mail, so it goes out
//! once per period across restarts). Periods missed while keypost was stopped are not sent late, only the latest.
use serde::Deserialize;

use crate::problems::Problems;

/// `[digest]`: present means on.
#[derive(Debug, Clone, Deserialize)]
pub struct DigestConfig {
    /// The local time of day the digest is sent, `HH:MM` (default `08:00`).
    #[serde(default = "default_at")]
    pub at: String,
    /// The IANA time zone of `at`, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// `day` (default): every day, covering the day before; `week`: Mondays, covering the seven days before.
    #[serde(default)]
    pub period: Period,
    /// Who receives it (default: `reply.vendor`, where alerts go).
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    #[default]
    Day,
    Week,
}

fn default_at() -> String {
    "08:00".to_owned()
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// One period: `[start, end)` in Unix seconds, named by the local date it ends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub id: String,
    pub start: i64,
    pub end: i64,
}

impl DigestConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if let Err(err) = self.time_of_day() {
            problems.error("digest.at", err);
        }
        if let Err(err) = self.zone() {
            problems.error("digest.time_zone", err);
        }
        if let Some(to) = &self.to
            && let Err(err) = to.parse::<lettre::message::Mailbox>()
        {
            problems.error("digest.to", format!("{to:?} is not a mail address: {err}"));
        }
    }

    fn time_of_day(&self) -> Result<jiff::civil::Time, String> {
        let (hour, minute) = self.at.trim().split_once(':').ok_or("must be HH:MM, e.g. \"08:00\"")?;
        let hour: i8 = hour.parse().map_err(|_| "must be HH:MM, e.g. \"08:00\"")?;
        let minute: i8 = minute.parse().map_err(|_| "must be HH:MM, e.g. \"08:00\"")?;
        jiff::civil::Time::new(hour, minute, 0, 0).map_err(|_| "must be a time of day from 00:00 to 23:59".to_owned())
    }

    fn zone(&self) -> Result<jiff::tz::TimeZone, String> {
        jiff::tz::TimeZone::get(self.time_zone.trim()).map_err(|err| {
            format!(
                "{:?} is not a time zone this system knows ({err}); e.g. \"Europe/Berlin\" or \"UTC\"",
                self.time_zone
            )
        })
    }

    /// The latest period that has ended at `now` (Unix seconds).
    pub fn latest_window(&self, now: i64) -> Result<Window, String> {
        let (time, zone) = (self.time_of_day()?, self.zone()?);
        let now = jiff::Timestamp::from_second(now).map_err(|err| err.to_string())?.to_zoned_datetime(zone.clone());
        let mut end_date = now.date();
        loop {
            let ends = jiff::civil::DateTime::from_parts(end_date, time)
                .to_zoned_datetime(zone.clone())
                .map_err(|err| err.to_string())?;
            let on_day = self.period == Period::Day || end_date.weekday() == jiff::civil::Weekday::Monday;
            if on_day && ends.timestamp() <= now.timestamp() {
                let days = if self.period == Period::Day { 1 } else { 7 };
                let start_date = end_date.checked_sub(jiff::Span::new().days(days)).map_err(|err| err.to_string())?;
                let starts = jiff::civil::DateTime::from_parts(start_date, time)
                    .to_zoned_datetime(zone.clone())
                    .map_err(|err| err.to_string())?;
                return Ok(Window {
                    id: end_date.to_string(),
                    start: starts.timestamp().as_second(),
                    end: ends.timestamp().as_second(),
                });
            }
            end_date = end_date.yesterday().map_err(|err| err.to_string())?;
        }
    }

    /// `08:00 Europe/Berlin, daily`, for the mail.
    pub fn describe(&self) -> String {
        let every = match self.period {
            Period::Day => "daily",
            Period::Week => "weekly on Mondays",
        };
        format!("{} {}, {every}", self.at.trim(), self.time_zone.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(at: &str, zone: &str, period: Period) -> DigestConfig {
        DigestConfig { at: at.into(), time_zone: zone.into(), period, to: None }
    }

    fn unix(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn a_daily_digest_covers_the_day_before_its_local_time_and_is_due_from_that_time_on() {
        let daily = config("08:00", "Europe/Berlin", Period::Day);
        // 07:59 Berlin (06:59 UTC) on 30 November: the period ending today has not ended yet.
        let before = daily.latest_window(unix("2026-11-30T06:59:00Z")).unwrap();
        assert_eq!(before.id, "2026-11-29");
        let after = daily.latest_window(unix("2026-11-30T07:00:00Z")).unwrap();
        assert_eq!(after.id, "2026-11-30");
        assert_eq!((after.start, after.end), (unix("2026-11-29T07:00:00Z"), unix("2026-11-30T07:00:00Z")));
    }

    #[test]
    fn the_day_a_clock_changes_is_23_or_25_hours_long() {
        let daily = config("08:00", "Europe/Berlin", Period::Day);
        let spring = daily.latest_window(unix("2026-03-29T12:00:00Z")).unwrap();
        assert_eq!(spring.end - spring.start, 23 * 3600);
        let autumn = daily.latest_window(unix("2026-10-25T12:00:00Z")).unwrap();
        assert_eq!(autumn.end - autumn.start, 25 * 3600);
    }

    #[test]
    fn a_weekly_digest_ends_on_mondays_and_covers_seven_days() {
        let weekly = config("09:30", "UTC", Period::Week);
        // Sunday 6 December 2026: the latest Monday 09:30 is 30 November.
        let window = weekly.latest_window(unix("2026-12-06T20:00:00Z")).unwrap();
        assert_eq!(window.id, "2026-11-30");
        assert_eq!((window.start, window.end), (unix("2026-11-23T09:30:00Z"), unix("2026-11-30T09:30:00Z")));
    }

    #[test]
    fn a_bad_time_or_zone_is_a_problem_with_its_key() {
        let mut problems = Problems::new("k.toml");
        config("8 o'clock", "Mars/Olympus", Period::Day).validate(&mut problems);
        let keys: Vec<_> = problems.items().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["digest.at", "digest.time_zone"]);
        let mut problems = Problems::new("k.toml");
        config("24:00", "UTC", Period::Day).validate(&mut problems);
        assert_eq!(problems.items().len(), 1);
    }
}
