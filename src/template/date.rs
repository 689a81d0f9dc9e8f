//! Dates as providers print them in renewal mail (a next billing date, a period end), turned into
//! `YYYY-MM-DD`. Pure. Only unambiguous forms are read: ISO 8601 calendar dates (`2026-12-01`, also with a time
//! after `T` or a space) and English month names (`December 1, 2026`, `Dec 1 2026`, `1 December 2026`).
//! Numeric day/month forms (`01/12/2026`) are refused: the same text is another day in another country.
use time::{Date, Month};

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date keypost reads (2026-12-01, December 1, 2026 or 1 December 2026)")]
pub struct DateError(String);

/// Reads one date; an error quotes the text.
pub fn parse(text: &str) -> Result<Date, DateError> {
    let text = text.trim();
    iso(text).or_else(|| words(text)).ok_or_else(|| DateError(text.chars().take(60).collect()))
}

fn iso(text: &str) -> Option<Date> {
    let day = text.split(['T', ' ']).next()?;
    let mut parts = day.split('-');
    let (year, month, date) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || date.len() != 2 {
        return None;
    }
    make(year.parse().ok()?, month.parse().ok()?, date.parse().ok()?)
}

/// `Month D, YYYY`, `Month D YYYY`, `D Month YYYY` (month names in full or by their first three letters).
fn words(text: &str) -> Option<Date> {
    let tokens: Vec<&str> = text.split([' ', ',']).filter(|t| !t.is_empty()).collect();
    let [a, b, year] = tokens.as_slice() else { return None };
    let (month, day) = match (month_named(a), month_named(b)) {
        (Some(month), None) => (month, *b),
        (None, Some(month)) => (month, *a),
        _ => return None,
    };
    let day = day.trim_end_matches(|c: char| c.is_ascii_alphabetic()); // 1st, 2nd, 3rd, 4th
    if year.len() != 4 {
        return None;
    }
    make(year.parse().ok()?, u8::from(month), day.parse().ok()?)
}

fn month_named(word: &str) -> Option<Month> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let word = word.trim_end_matches('.').to_lowercase();
    let index = NAMES.iter().position(|name| *name == word || (word.len() == 3 && name.starts_with(&word)))?;
    Month::try_from(u8::try_from(index + 1).ok()?).ok()
}

fn make(year: i32, month: u8, day: u8) -> Option<Date> {
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn iso_and_english_month_dates_are_read_and_numeric_day_month_forms_refused() {
        for (text, expected) in [
            ("2026-12-01", date!(2026 - 12 - 01)),
            (" 2026-12-01 10:00:00 ", date!(2026 - 12 - 01)),
            ("2026-12-01T10:00:00Z", date!(2026 - 12 - 01)),
            ("December 1, 2026", date!(2026 - 12 - 01)),
            ("Dec 1 2026", date!(2026 - 12 - 01)),
            ("1 December 2026", date!(2026 - 12 - 01)),
            ("Sep. 3rd, 2026", date!(2026 - 09 - 03)),
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        for bad in ["01/12/2026", "2026-13-01", "2026-02-30", "December 2026", "Decem 1, 2026", "next month", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
