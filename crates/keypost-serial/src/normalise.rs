//! Licensee-name normalisation: the contract between keypost and the vendor's app about which name a serial is
//! for. Pure; the exact rules are in `docs/serial-format.md` and must not change for an existing rule.
use unicode_normalization::UnicodeNormalization;

use crate::SerialError;

/// How a licensee name is turned into the exact text a serial is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormaliseRule {
    /// RFC 8266 (PRECIS nickname) enforcement: white space to U+0020, trimmed, runs collapsed, NFKC.
    Rfc8266,
    /// [`NormaliseRule::Rfc8266`] with the RFC's case mapping (Unicode lower case) applied too.
    Rfc8266Casefold,
    /// The name exactly as given (only an empty or all-space name is refused).
    None,
}

impl NormaliseRule {
    /// The names keypost's configuration accepts.
    pub const NAMES: [&str; 3] = ["rfc8266", "rfc8266-casefold", "none"];

    /// The rule named `text` (one of [`NormaliseRule::NAMES`]).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rfc8266" => Some(Self::Rfc8266),
            "rfc8266-casefold" => Some(Self::Rfc8266Casefold),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The rule's name in keypost's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc8266 => "rfc8266",
            Self::Rfc8266Casefold => "rfc8266-casefold",
            Self::None => "none",
        }
    }
}

/// RFC 8266 section 2.2: re-apply the rules until the result is stable; give up after three more passes.
const MAX_PASSES: usize = 4;

/// Normalises a licensee name by `rule`. The result is a fixed point: normalising it again returns it unchanged.
pub fn normalise(name: &str, rule: NormaliseRule) -> Result<String, SerialError> {
    if rule == NormaliseRule::None {
        if name.chars().all(char::is_whitespace) {
            return Err(SerialError::EmptyName);
        }
        return Ok(name.to_owned());
    }
    let casefold = rule == NormaliseRule::Rfc8266Casefold;
    let mut current = one_pass(name, casefold);
    let mut stable = false;
    for _ in 1..MAX_PASSES {
        let next = one_pass(&current, casefold);
        if next == current {
            stable = true;
            break;
        }
        current = next;
    }
    if !stable {
        return Err(SerialError::UnstableName);
    }
    if let Some(character) = current.chars().find(|c| c.is_control()) {
        return Err(SerialError::ControlCharacter { character });
    }
    if current.is_empty() {
        return Err(SerialError::EmptyName);
    }
    Ok(current)
}

/// One application of the PRECIS rules in RFC 8264 section 7 order: additional mapping, case mapping, NFKC.
fn one_pass(name: &str, casefold: bool) -> String {
    let spaced = map_spaces(name);
    let cased = if casefold { spaced.to_lowercase() } else { spaced };
    cased.nfkc().collect()
}

/// Every Unicode `White_Space` character becomes U+0020; leading and trailing spaces go; runs become one.
fn map_spaces(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(name: &str) -> String {
        normalise(name, NormaliseRule::Rfc8266).unwrap()
    }

    #[test]
    fn stray_spaces_of_every_kind_become_single_ascii_spaces() {
        assert_eq!(rfc("  Åsa \t  Öberg \n"), "Åsa Öberg");
        assert_eq!(rfc("Jane\u{A0}Doe"), "Jane Doe");
        assert_eq!(rfc("Jane\u{3000}\u{2009}Doe"), "Jane Doe");
    }

    #[test]
    fn nfd_and_nfc_spellings_of_a_name_normalise_to_the_same_text() {
        assert_eq!(rfc("Jose\u{301} Mu\u{308}ller"), rfc("Jos\u{e9} M\u{fc}ller"));
        assert_eq!(rfc("Jose\u{301} Mu\u{308}ller"), "Jos\u{e9} M\u{fc}ller");
    }

    #[test]
    fn compatibility_characters_fold_under_nfkc() {
        assert_eq!(rfc("\u{FF2A}ane"), "Jane");
        assert_eq!(rfc("ﬁona"), "fiona");
    }

    #[test]
    fn casefold_rule_lowercases_and_plain_rule_keeps_case() {
        assert_eq!(normalise(" ZOË  O'Brien ", NormaliseRule::Rfc8266Casefold).unwrap(), "zoë o'brien");
        assert_eq!(rfc(" ZOË  O'Brien "), "ZOË O'Brien");
    }

    #[test]
    fn space_produced_by_nfkc_is_trimmed_on_a_later_pass() {
        // U+00A8 DIAERESIS is <compat> U+0020 U+0308 under NFKC: the new leading space must go too.
        let once = rfc("\u{A8}x");
        assert_eq!(once, "\u{308}x");
        assert_eq!(rfc(&once), once);
    }

    #[test]
    fn name_that_normalises_to_nothing_is_refused() {
        for rule in [NormaliseRule::Rfc8266, NormaliseRule::Rfc8266Casefold, NormaliseRule::None] {
            assert!(matches!(normalise(" \u{A0}\t ", rule), Err(SerialError::EmptyName)), "{rule:?}");
            assert!(matches!(normalise("", rule), Err(SerialError::EmptyName)), "{rule:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_but_tabs_count_as_spaces() {
        assert!(matches!(
            normalise("Jane\u{1B}Doe", NormaliseRule::Rfc8266),
            Err(SerialError::ControlCharacter { character: '\u{1B}' })
        ));
        assert_eq!(rfc("Jane\tDoe"), "Jane Doe");
    }

    #[test]
    fn rule_none_keeps_the_name_byte_for_byte() {
        assert_eq!(normalise(" Jane  Doe ", NormaliseRule::None).unwrap(), " Jane  Doe ");
    }
}
