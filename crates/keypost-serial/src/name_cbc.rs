//! The `name-cbc` scheme: the serial is AES-128-CBC (PKCS#7) of the normalised licensee name's bytes. Pure.
//! It exists to match apps already in buyers' hands, so its output must never change for a given config.
use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};

use crate::SerialError;
use crate::key::Key;

/// How the normalised name is turned into bytes before encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameEncoding {
    /// UTF-8, no byte-order mark.
    Utf8,
    /// UTF-16 little-endian code units, no byte-order mark.
    Utf16Le,
    /// Code page 1252 as Python's `cp1252` defines it.
    Windows1252,
}

impl NameEncoding {
    /// The names keypost's configuration accepts, in the order of [`NameEncoding::parse`].
    pub const NAMES: [&str; 3] = ["utf-8", "utf-16le", "windows-1252"];

    /// The encoding named `text` (one of [`NameEncoding::NAMES`]).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "utf-8" => Some(Self::Utf8),
            "utf-16le" => Some(Self::Utf16Le),
            "windows-1252" => Some(Self::Windows1252),
            _ => None,
        }
    }

    /// The encoding's name in keypost's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16Le => "utf-16le",
            Self::Windows1252 => "windows-1252",
        }
    }

    /// The name's bytes; a character the encoding cannot hold is an error, never replaced.
    pub fn encode(self, name: &str) -> Result<Vec<u8>, SerialError> {
        match self {
            Self::Utf8 => Ok(name.as_bytes().to_vec()),
            Self::Utf16Le => Ok(name.encode_utf16().flat_map(u16::to_le_bytes).collect()),
            Self::Windows1252 => windows_1252(name),
        }
    }
}

/// Windows-1252 as Python's `cp1252` has it: the five unassigned bytes and the C1 controls are not names.
fn windows_1252(name: &str) -> Result<Vec<u8>, SerialError> {
    let not_representable = |character| SerialError::NotRepresentable { encoding: "windows-1252", character };
    if let Some(c) = name.chars().find(|c| ('\u{80}'..='\u{9F}').contains(c)) {
        return Err(not_representable(c));
    }
    let (bytes, _, had_errors) = encoding_rs::WINDOWS_1252.encode(name);
    if had_errors {
        let mut buffer = [0u8; 4];
        let bad = name.chars().find(|c| encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut buffer)).2);
        return Err(not_representable(bad.unwrap_or(char::REPLACEMENT_CHARACTER)));
    }
    Ok(bytes.into_owned())
}

/// The `name-cbc` parameters of one product.
#[derive(Debug)]
pub(crate) struct NameCbc {
    pub key: Key,
    pub iv: [u8; 16],
    pub encoding: NameEncoding,
}

impl NameCbc {
    /// The ciphertext for an already normalised name.
    pub fn encrypt(&self, normalised: &str) -> Result<Vec<u8>, SerialError> {
        let plain = self.encoding.encode(normalised)?;
        let cipher = cbc::Encryptor::<aes::Aes128>::new(self.key.bytes().into(), &self.iv.into());
        Ok(cipher.encrypt_padded_vec_mut::<Pkcs7>(&plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_encodes_latin_names_and_refuses_others_by_character() {
        assert_eq!(NameEncoding::Windows1252.encode("Zoë €").unwrap(), b"Zo\xeb \x80");
        assert!(matches!(
            NameEncoding::Windows1252.encode("王小明"),
            Err(SerialError::NotRepresentable { character: '王', .. })
        ));
        assert!(NameEncoding::Windows1252.encode("a\u{81}").is_err());
    }

    #[test]
    fn utf16le_puts_the_low_byte_first_and_uses_surrogate_pairs() {
        assert_eq!(NameEncoding::Utf16Le.encode("é😀").unwrap(), [0xE9, 0x00, 0x3D, 0xD8, 0x00, 0xDE]);
    }

    #[test]
    fn padding_adds_a_whole_block_to_a_full_one_and_the_iv_changes_the_output() {
        let key = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
        let zero_iv = NameCbc { key, iv: [0; 16], encoding: NameEncoding::Utf8 };
        assert_eq!(zero_iv.encrypt("0123456789abcdef").unwrap().len(), 32);
        assert_eq!(zero_iv.encrypt("0123456789abcde").unwrap().len(), 16);
        let key = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
        let other_iv = NameCbc { key, iv: [1; 16], encoding: NameEncoding::Utf8 };
        assert_ne!(zero_iv.encrypt("Jane").unwrap(), other_iv.encrypt("Jane").unwrap());
    }
}
