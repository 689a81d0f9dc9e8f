//! 16-byte AES keys and IVs as a vendor writes them: 32 hex digits, or 16 ASCII characters used as bytes.
//! A key lives in a `SecretBox` (redacted `Debug`, zeroed on drop); errors never contain a key's text.
use secrecy::{ExposeSecret, SecretBox, SecretString};

pub type Key = SecretBox<[u8; 16]>;

/// Reads 16 bytes from 32 hex digits or from exactly 16 printable ASCII characters; `None` for anything else.
/// For IVs, which are not secret; keys go through [`parse_key`].
pub fn parse_16(text: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    fill_16(text, &mut bytes).then_some(bytes)
}

/// Parses a loaded secret into a key, writing the bytes straight into the `SecretBox` (no stack copy is left).
pub fn parse_key(secret: &SecretString) -> Option<Key> {
    let mut parsed = true;
    let key = SecretBox::init_with_mut(|bytes: &mut [u8; 16]| parsed = fill_16(secret.expose_secret(), bytes));
    parsed.then_some(key)
}

/// [`parse_16`] into `bytes`; false (and `bytes` untouched or zero) for anything else.
fn fill_16(text: &str, bytes: &mut [u8; 16]) -> bool {
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode_to_slice(text, bytes).is_ok();
    }
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        bytes.copy_from_slice(text.as_bytes());
        return true;
    }
    false
}

/// What a key or IV must look like, for error messages.
pub const FORMAT: &str = "32 hex digits or 16 ASCII characters";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_ascii_forms_are_read_and_other_lengths_refused() {
        assert_eq!(parse_16("000102030405060708090a0b0c0d0e0f").unwrap()[15], 15);
        assert_eq!(&parse_16("keypost-test-key").unwrap(), b"keypost-test-key");
        assert!(parse_16("short").is_none());
        assert!(parse_16("keypost-test-kéy").is_none());
        assert!(parse_16("000102030405060708090a0b0c0d0e0g").is_none());
    }

    #[test]
    fn a_parsed_key_does_not_show_in_debug_output() {
        let key = parse_key(&SecretString::from("keypost-test-key")).unwrap();
        assert!(!format!("{key:?}").contains("keypost"));
        assert!(!format!("{key:?}").contains("107"));
    }
}
