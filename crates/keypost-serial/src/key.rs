//! 16-byte AES keys and IVs as a vendor writes them: 32 hex digits, or 16 ASCII characters used as bytes.
//! A [`Key`] is held in a `SecretBox` (redacted `Debug`, zeroed on drop); errors never contain a key's text.
use data_encoding::HEXLOWER_PERMISSIVE;
use secrecy::{ExposeSecret, SecretBox};

/// What a key or IV must look like, for error messages.
pub const KEY_FORMAT: &str = "32 hex digits or 16 ASCII characters";

/// A product's 16-byte AES-128 key. `Debug` shows no key material; the bytes are zeroed when it is dropped.
///
/// ```
/// use keypost_serial::Key;
/// let hex = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
/// let ascii = Key::parse("keypost-test-key").unwrap();
/// assert_eq!(format!("{ascii:?}"), "Key(..)");
/// assert!(Key::parse("too short").is_none());
/// # let _ = (hex, Key::from_bytes([0; 16]));
/// ```
pub struct Key(SecretBox<[u8; 16]>);

impl Key {
    /// A key from its 16 bytes (an app that keeps its key as a byte array).
    pub fn from_bytes(bytes: [u8; 16]) -> Key {
        Key(SecretBox::new(Box::new(bytes)))
    }

    /// Reads 32 hex digits (either case) or exactly 16 printable ASCII characters; `None` for anything else.
    /// The bytes are written straight into the secret box, so no copy is left on the stack.
    pub fn parse(text: &str) -> Option<Key> {
        let mut parsed = true;
        let key = SecretBox::init_with_mut(|bytes: &mut [u8; 16]| parsed = fill_16(text, bytes));
        parsed.then_some(Key(key))
    }

    pub(crate) fn bytes(&self) -> &[u8; 16] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Reads 16 bytes in the same two forms as [`Key::parse`]; for IVs, which are not secret.
///
/// ```
/// assert_eq!(keypost_serial::parse_16("00112233445566778899aabbccddeeff").unwrap()[1], 0x11);
/// ```
pub fn parse_16(text: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    fill_16(text, &mut bytes).then_some(bytes)
}

/// [`parse_16`] into `bytes`; false (and `bytes` untouched or partly written) for anything else.
fn fill_16(text: &str, bytes: &mut [u8; 16]) -> bool {
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return HEXLOWER_PERMISSIVE.decode_mut(text.as_bytes(), bytes).is_ok();
    }
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        bytes.copy_from_slice(text.as_bytes());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_ascii_forms_are_read_and_other_lengths_refused() {
        assert_eq!(parse_16("000102030405060708090a0b0c0d0e0f").unwrap()[15], 15);
        assert_eq!(parse_16("000102030405060708090A0B0C0D0E0F").unwrap()[10], 10);
        assert_eq!(&parse_16("keypost-test-key").unwrap(), b"keypost-test-key");
        assert!(parse_16("short").is_none());
        assert!(parse_16("keypost-test-kéy").is_none());
        assert!(parse_16("000102030405060708090a0b0c0d0e0g").is_none());
    }

    #[test]
    fn a_parsed_key_does_not_show_in_debug_output() {
        let key = Key::parse("keypost-test-key").unwrap();
        assert_eq!(key.bytes(), b"keypost-test-key");
        assert!(!format!("{key:?}").contains("keypost"));
        assert!(!format!("{key:?}").contains("107"));
    }
}
