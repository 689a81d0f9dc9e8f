//! Amounts as providers print them ("$1,234.50 USD", "1.234,50 €", "€ 4,00 EUR") -> [`Money`] in hundredths.

use crate::order::Money;

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("no digits in amount {0:?}")]
    NoDigits(String),
    #[error("amount {0:?} has more than two decimals or a misplaced separator")]
    Malformed(String),
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

/// Reads an amount. `currency` is an explicitly captured code; otherwise a code or symbol in the text is used,
/// a bare `$` meaning `dollar_currency`.
pub fn parse(text: &str, currency: Option<&str>, dollar_currency: &str) -> Result<Money, MoneyError> {
    let hundredths = hundredths(text)?;
    let currency = currency
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .and_then(currency_code)
        .or_else(|| currency_in(text, dollar_currency));
    Ok(Money { hundredths, currency })
}

fn hundredths(text: &str) -> Result<i64, MoneyError> {
    let negative = text.contains('-') || text.contains('\u{2212}') || text.trim().starts_with('(');
    let number: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '\''))
        .collect::<String>()
        .trim_matches(|c| c == '.' || c == ',' || c == '\'')
        .to_owned();
    if !number.chars().any(|c| c.is_ascii_digit()) {
        return Err(MoneyError::NoDigits(text.to_owned()));
    }
    let (units, fraction) = split_decimal(&number).ok_or_else(|| MoneyError::Malformed(text.to_owned()))?;
    let units: String = units.chars().filter(char::is_ascii_digit).collect();
    let units: i64 =
        if units.is_empty() { 0 } else { units.parse().map_err(|_| MoneyError::Overflow(text.to_owned()))? };
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| MoneyError::Malformed(text.to_owned()))?;
    let value = units
        .checked_mul(100)
        .and_then(|v| v.checked_add(fraction))
        .ok_or_else(|| MoneyError::Overflow(text.to_owned()))?;
    Ok(if negative { -value } else { value })
}

/// Splits "1,234.50" / "1.234,50" / "1234" into units and at most two decimal digits. The last separator is
/// the decimal one when both kinds appear; a lone one is decimal unless exactly three digits follow it.
fn split_decimal(number: &str) -> Option<(&str, &str)> {
    let Some(last) = number.rfind(['.', ',']) else { return Some((number, "")) };
    let (units, fraction) = (number.get(..last)?, number.get(last + 1..)?);
    let separator = number.get(last..=last)?;
    let both_kinds = number.contains('.') && number.contains(',');
    if !both_kinds && (units.contains(separator) || fraction.len() == 3) {
        return Some((number, "")); // every separator groups thousands
    }
    if fraction.len() > 2 || units.contains(separator) {
        return None;
    }
    Some((units, fraction))
}

fn currency_code(code: &str) -> Option<String> {
    let upper = code.to_uppercase();
    if upper.len() == 3 && upper.chars().all(|c| c.is_ascii_uppercase()) {
        return Some(upper);
    }
    symbol_code(code)
}

/// A three-letter upper-case code in the text, else a currency symbol.
fn currency_in(text: &str, dollar_currency: &str) -> Option<String> {
    let code = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|word| word.len() == 3 && word.chars().all(|c| c.is_ascii_uppercase()));
    if let Some(code) = code {
        return Some(code.to_owned());
    }
    if text.contains("US$") {
        return Some("USD".to_owned());
    }
    if text.contains('$') {
        return Some(dollar_currency.to_owned());
    }
    symbol_code(text)
}

fn symbol_code(text: &str) -> Option<String> {
    let code = if text.contains('€') {
        "EUR"
    } else if text.contains('£') {
        "GBP"
    } else if text.contains('¥') {
        "JPY"
    } else if text.contains("CHF") || text.contains("Fr.") {
        "CHF"
    } else {
        return None;
    };
    Some(code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> (i64, Option<String>) {
        let m = parse(text, None, "USD").unwrap();
        (m.hundredths, m.currency)
    }

    #[test]
    fn amounts_in_every_common_notation_read_to_hundredths() {
        assert_eq!(money("$1,234.50 USD"), (123450, Some("USD".into())));
        assert_eq!(money("1.234,50\u{a0}€"), (123450, Some("EUR".into())));
        assert_eq!(money("€\u{a0}4,00 EUR"), (400, Some("EUR".into())));
        assert_eq!(money("£12"), (1200, Some("GBP".into())));
        assert_eq!(money("1,234"), (123400, None));
        assert_eq!(money("1'234.5 CHF"), (123450, Some("CHF".into())));
        assert_eq!(money("-$5.00"), (-500, Some("USD".into())));
        assert_eq!(money("0.99"), (99, None));
    }

    #[test]
    fn captured_currency_wins_over_symbols() {
        let m = parse("$10.00", Some("cad"), "USD").unwrap();
        assert_eq!(m, Money { hundredths: 1000, currency: Some("CAD".into()) });
    }

    #[test]
    fn nonsense_amounts_are_errors() {
        assert!(parse("free", None, "USD").is_err());
        assert!(parse("1.2.3,456", None, "USD").is_err());
        assert!(parse("99999999999999999999", None, "USD").is_err());
    }
}
