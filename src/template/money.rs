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
    #[error("{0:?} is not a currency keypost knows (an ISO 4217 code, a currency symbol or an English name)")]
    UnknownCurrency(String),
    #[error("{0:?} names more than one currency ({1} and {2})")]
    ConflictingCurrencies(String, String, String),
    #[error("{0:?} is used by several currencies: capture the ISO code in a (?P<currency>...) group")]
    AmbiguousCurrency(String),
}

/// Reads an amount. `currency` is an explicitly captured code, symbol or name; otherwise the code, symbol or
/// name written next to the number is used, a bare `$` (or "dollars") meaning `dollar_currency`. A currency
/// keypost does not know is an error, never a guess.
pub fn parse(text: &str, currency: Option<&str>, dollar_currency: &str) -> Result<Money, MoneyError> {
    let hundredths = hundredths(text)?;
    let captured = currency.map(str::trim).filter(|c| !c.is_empty());
    let currency = match captured {
        Some(captured) => currency_in(captured, dollar_currency)?,
        None => currency_in(text, dollar_currency)?,
    };
    Ok(Money { hundredths, currency })
}

/// True for an active ISO 4217 code in upper case.
pub fn is_iso_code(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) && ISO_CODES.split(' ').any(|c| c == code)
}

/// What one word or phrase next to an amount says about its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Code(&'static str),
    /// `$` or "dollars" alone: the template's `default_currency` unless a code says otherwise.
    Dollar,
    Ambiguous,
}

/// The currency written in `text` around the number: every word must be a known code, symbol or name, and
/// they must agree. None when nothing but the number is written.
fn currency_in(text: &str, dollar_currency: &str) -> Result<Option<String>, MoneyError> {
    let spaced: String =
        text.chars().map(|c| if c.is_ascii_digit() || ".,'-\u{2212}()+:/*".contains(c) { ' ' } else { c }).collect();
    let words: Vec<String> = spaced.split_whitespace().map(str::to_lowercase).collect();
    let mut said = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let longest = (1..=3.min(words.len() - i)).rev().find_map(|len| {
            let phrase = words.get(i..i + len)?.join(" ");
            lookup(&phrase).map(|s| (len, s))
        });
        let Some((len, what)) = longest else {
            let word = words.get(i).cloned().unwrap_or_default();
            return Err(MoneyError::UnknownCurrency(word));
        };
        if what == Said::Ambiguous {
            return Err(MoneyError::AmbiguousCurrency(words.get(i..i + len).unwrap_or_default().join(" ")));
        }
        said.push(what);
        i += len;
    }
    let mut code: Option<&str> = None;
    for what in &said {
        if let Said::Code(c) = what {
            match code {
                Some(existing) if existing != *c => {
                    return Err(MoneyError::ConflictingCurrencies(text.to_owned(), existing.into(), (*c).into()));
                }
                _ => code = Some(c),
            }
        }
    }
    Ok(match code {
        Some(code) => Some(code.to_owned()),
        None if said.contains(&Said::Dollar) => Some(dollar_currency.to_owned()),
        None => None,
    })
}

fn lookup(phrase: &str) -> Option<Said> {
    if phrase.len() == 3 && phrase.is_ascii() {
        let upper = phrase.to_ascii_uppercase();
        if let Some(code) = ISO_CODES.split(' ').find(|c| *c == upper) {
            return Some(Said::Code(code));
        }
    }
    if matches!(phrase, "$" | "dollar" | "dollars" | "dólares" | "dollari") {
        return Some(Said::Dollar);
    }
    if matches!(phrase, "kr" | "r" | "rs" | "₨") {
        return Some(Said::Ambiguous);
    }
    NAMES.iter().find(|(_, names)| names.contains(&phrase)).map(|(code, _)| Said::Code(code))
}

/// Symbols and names (lower case) of the currencies small vendors are paid in; anything else must be written
/// as its ISO code.
const NAMES: &[(&str, &[&str])] = &[
    (
        "USD",
        &[
            "us$",
            "u$s",
            "usd$",
            "us dollar",
            "us dollars",
            "us-dollar",
            "us-dollars",
            "dollars us",
            "dollar us",
            "dollars américains",
            "dólares estadounidenses",
            "dollari usa",
            "dollari statunitensi",
            "amerikanische dollar",
        ],
    ),
    ("EUR", &["€", "euro", "euros", "eur€"]),
    (
        "GBP",
        &[
            "£",
            "gb£",
            "pound sterling",
            "pounds sterling",
            "british pound",
            "british pounds",
            "livres sterling",
            "britische pfund",
            "pfund sterling",
            "sterling",
        ],
    ),
    ("JPY", &["¥", "円", "yen", "japanese yen", "japanische yen"]),
    ("CNY", &["cn¥", "元", "rmb", "yuan", "chinese yuan", "yuan renminbi"]),
    (
        "AUD",
        &[
            "a$",
            "au$",
            "aud$",
            "australian dollar",
            "australian dollars",
            "australische dollar",
            "dollars australiens",
            "dólares australianos",
        ],
    ),
    (
        "CAD",
        &[
            "c$",
            "ca$",
            "can$",
            "canadian dollar",
            "canadian dollars",
            "kanadische dollar",
            "dollars canadiens",
            "dólares canadienses",
        ],
    ),
    ("NZD", &["nz$", "new zealand dollar", "new zealand dollars", "neuseeland-dollar"]),
    ("HKD", &["hk$", "hong kong dollar", "hong kong dollars", "hongkong-dollar"]),
    ("SGD", &["s$", "singapore dollar", "singapore dollars", "singapur-dollar"]),
    ("TWD", &["nt$", "new taiwan dollar", "new taiwan dollars", "taiwan new dollar", "taiwan new dollars"]),
    ("MXN", &["mex$", "mx$", "mexican peso", "mexican pesos", "pesos mexicanos"]),
    ("BRL", &["r$", "brazilian real", "brazilian reais", "reais", "real brasileño"]),
    (
        "CHF",
        &[
            "fr",
            "sfr",
            "swiss franc",
            "swiss francs",
            "schweizer franken",
            "franken",
            "francs suisses",
            "franchi svizzeri",
        ],
    ),
    ("SEK", &["swedish krona", "swedish kronor", "schwedische kronen"]),
    ("NOK", &["norwegian krone", "norwegian kroner", "norwegische kronen"]),
    ("DKK", &["danish krone", "danish kroner", "dänische kronen"]),
    ("PLN", &["zł", "zl", "polish zloty", "polish złoty", "złoty", "zloty"]),
    ("CZK", &["kč", "czech koruna", "czech korunas", "tschechische kronen"]),
    ("HUF", &["ft", "hungarian forint", "hungarian forints", "forint"]),
    ("ILS", &["₪", "israeli new shekel", "israeli new shekels", "israeli shekel", "shekel", "shekels"]),
    ("INR", &["₹", "indian rupee", "indian rupees"]),
    ("RUB", &["₽", "russian ruble", "russian rubles", "russian rouble", "russian roubles"]),
    ("KRW", &["₩", "south korean won", "korean won"]),
    ("TRY", &["₺", "turkish lira", "türkische lira"]),
    ("PHP", &["₱", "philippine peso", "philippine pesos"]),
    ("THB", &["฿", "thai baht", "baht"]),
    ("MYR", &["rm", "malaysian ringgit", "ringgit"]),
    ("ZAR", &["south african rand", "rand"]),
];

/// Active ISO 4217 codes.
const ISO_CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP \
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ \
GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD \
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR \
RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH \
UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

fn hundredths(text: &str) -> Result<i64, MoneyError> {
    let negative = is_negative(text);
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

/// A minus or an opening parenthesis at the start, just before the number, or just after it ("5.00-"); a
/// hyphen inside a currency name ("US-Dollar") is not a sign.
fn is_negative(text: &str) -> bool {
    let minus = |c: char| c == '-' || c == '\u{2212}';
    let trimmed = text.trim();
    let first_digit = trimmed.find(|c: char| c.is_ascii_digit()).unwrap_or(trimmed.len());
    let last_digit = trimmed.rfind(|c: char| c.is_ascii_digit()).map_or(trimmed.len(), |i| i + 1);
    let before = trimmed.get(..first_digit).unwrap_or("").trim_end();
    let after = trimmed.get(last_digit..).unwrap_or("").trim_start();
    trimmed.starts_with(minus) || trimmed.starts_with('(') || before.ends_with(minus) || after.starts_with(minus)
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
    fn currency_names_and_symbols_map_to_iso_codes() {
        assert_eq!(money("86.00 Australian Dollars"), (8600, Some("AUD".into())));
        assert_eq!(money("€86.00"), (8600, Some("EUR".into())));
        assert_eq!(money("US$ 12.50"), (1250, Some("USD".into())));
        assert_eq!(money("A$10.00 AUD"), (1000, Some("AUD".into())));
        assert_eq!(money("$10.00 CAD"), (1000, Some("CAD".into())));
        assert_eq!(money("12,00 Euro"), (1200, Some("EUR".into())));
        assert_eq!(money("CHF 5.00"), (500, Some("CHF".into())));
        assert_eq!(money("Fr. 5.00"), (500, Some("CHF".into())));
        assert_eq!(parse("$3.00", None, "CAD").unwrap().currency.as_deref(), Some("CAD"));
        assert_eq!(parse("3.00", Some("Pounds Sterling"), "USD").unwrap().currency.as_deref(), Some("GBP"));
    }

    #[test]
    fn an_unknown_ambiguous_or_conflicting_currency_is_an_error_not_a_default() {
        assert!(matches!(parse("12.00 Groats", None, "USD"), Err(MoneyError::UnknownCurrency(_))));
        assert!(matches!(parse("12.00", Some("XYZ"), "USD"), Err(MoneyError::UnknownCurrency(_))));
        assert!(matches!(parse("100 kr", None, "USD"), Err(MoneyError::AmbiguousCurrency(_))));
        assert!(matches!(parse("€5.00 USD", None, "USD"), Err(MoneyError::ConflictingCurrencies(..))));
    }

    #[test]
    fn nonsense_amounts_are_errors() {
        assert!(parse("free", None, "USD").is_err());
        assert!(parse("1.2.3,456", None, "USD").is_err());
        assert!(parse("99999999999999999999", None, "USD").is_err());
    }
}
