//! How serial bytes are written as text (base32, Crockford base32, hex; grouped) and how typed text is read back,
//! forgiving case, spaces, dashes and Crockford's look-alike letters. Pure.
use std::sync::LazyLock;

use data_encoding::{BASE32_NOPAD, Encoding, HEXUPPER, Specification};

/// Crockford's base32 alphabet (no I, L, O, U), without the optional check symbol.
pub const CROCKFORD_ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// data-encoding's encodings are `const`s; statics let `Output::encoding` hand out `'static` references.
static BASE32: Encoding = BASE32_NOPAD;
static HEX: Encoding = HEXUPPER;
static CROCKFORD: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str(CROCKFORD_ALPHABET);
    #[allow(clippy::expect_used)] // a constant specification, checked by every test that encodes
    spec.encoding().expect("the Crockford specification is valid")
});

/// The text form of serial bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// RFC 4648 base32, upper case, no `=` padding.
    Base32,
    /// Crockford base32, upper case, no check symbol.
    Crockford,
    /// Upper-case hexadecimal.
    Hex,
}

impl Output {
    /// The names keypost's configuration accepts.
    pub const NAMES: [&str; 3] = ["base32", "crockford", "hex"];

    /// The output named `text` (one of [`Output::NAMES`]).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "base32" => Some(Self::Base32),
            "crockford" => Some(Self::Crockford),
            "hex" => Some(Self::Hex),
            _ => None,
        }
    }

    /// The output's name in keypost's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base32 => "base32",
            Self::Crockford => "crockford",
            Self::Hex => "hex",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Self::Base32 => &BASE32,
            Self::Crockford => &CROCKFORD,
            Self::Hex => &HEX,
        }
    }

    /// `bytes` in this alphabet, upper case, without padding or groups.
    pub fn encode(self, bytes: &[u8]) -> String {
        self.encoding().encode(bytes)
    }

    /// Decodes canonical text (see [`canonical`]); `None` when it is not a whole encoding of some bytes.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        self.encoding().decode(text.as_bytes()).ok()
    }

    /// Maps one typed character to this alphabet's symbol, or `None` when it is not part of the alphabet.
    fn canonical_char(self, c: char) -> Option<char> {
        let upper = c.to_ascii_uppercase();
        let mapped = match (self, upper) {
            (Self::Crockford, 'O') => '0',
            (Self::Crockford, 'I' | 'L') => '1',
            _ => upper,
        };
        let valid = match self {
            Self::Base32 => matches!(mapped, 'A'..='Z' | '2'..='7'),
            Self::Crockford => CROCKFORD_ALPHABET.contains(mapped),
            Self::Hex => mapped.is_ascii_hexdigit(),
        };
        valid.then_some(mapped)
    }
}

/// Why typed serial text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the serial contains {0:?}, which is not part of its alphabet")]
    /// A character outside the alphabet (after look-alikes are mapped).
    BadCharacter(char),
    #[error("the serial is empty")]
    /// Nothing but spaces and separators.
    Empty,
}

/// The serial as typed, reduced to its alphabet: upper case, no white space, dashes or `separator`,
/// and (Crockford) O read as 0, I and L as 1. Trailing `=` padding is dropped for RFC 4648 base32.
pub fn canonical(typed: &str, output: Output, separator: &str) -> Result<String, TextError> {
    let without_separator = if separator.is_empty() { typed.to_owned() } else { typed.replace(separator, "") };
    let mut trimmed = without_separator.as_str();
    if output == Output::Base32 {
        trimmed = trimmed.trim_end_matches(|c: char| c == '=' || c.is_whitespace());
    }
    let mut out = String::with_capacity(trimmed.len());
    for c in trimmed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        out.push(output.canonical_char(c).ok_or(TextError::BadCharacter(c))?);
    }
    if out.is_empty() {
        return Err(TextError::Empty);
    }
    Ok(out)
}

/// Joins `text` in groups of `size` characters with `separator`; `size` 0 means no grouping.
pub fn group(text: &str, size: usize, separator: &str) -> String {
    if size == 0 {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|chunk| chunk.iter().collect::<String>()).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crockford_reads_lower_case_and_look_alike_letters() {
        assert_eq!(canonical("ab-ol i 9z", Output::Crockford, "-").unwrap(), "AB0119Z");
    }

    #[test]
    fn letters_outside_the_alphabet_are_refused() {
        assert_eq!(canonical("AB-U", Output::Crockford, "-"), Err(TextError::BadCharacter('U')));
        assert_eq!(canonical("AB1", Output::Base32, "-"), Err(TextError::BadCharacter('1')));
        assert_eq!(canonical("ABG", Output::Hex, ""), Err(TextError::BadCharacter('G')));
        assert_eq!(canonical(" - ", Output::Hex, ""), Err(TextError::Empty));
    }

    #[test]
    fn configured_separator_is_removed_when_reading() {
        assert_eq!(canonical("ab.cd.ef", Output::Hex, ".").unwrap(), "ABCDEF");
    }

    #[test]
    fn grouping_splits_from_the_left_and_keeps_a_short_last_group() {
        assert_eq!(group("ABCDEFGHIJKL", 5, "-"), "ABCDE-FGHIJ-KL");
        assert_eq!(group("ABC", 0, "-"), "ABC");
    }

    #[test]
    fn encodings_round_trip_and_base32_is_rfc4648() {
        assert_eq!(Output::Base32.encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(Output::Crockford.encode(&[0xff; 5]), "ZZZZZZZZ");
        for output in [Output::Base32, Output::Crockford, Output::Hex] {
            let text = output.encode(&[1, 2, 3, 250]);
            assert_eq!(output.decode(&text).unwrap(), [1, 2, 3, 250]);
        }
    }
}
