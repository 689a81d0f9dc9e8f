//! The `block` scheme: one AES-128 block holding version, product code, seats, issue day and a name tag,
//! prefixed with a key id so keys can be rotated. Pure. Layout and algorithm: `docs/serial-format.md`.
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use secrecy::zeroize::Zeroizing;
use sha2::Sha256;
use time::Date;

use crate::key::Key;
use crate::text::{CROCKFORD_ALPHABET, Output};
use crate::{SerialError, VerifyError};

/// The format version in byte 0 of the block.
pub const VERSION: u8 = 1;
/// Day 0 of the issue-day field.
pub const EPOCH: Date = time::macros::date!(2000 - 01 - 01);
/// A key id is two Crockford base32 characters.
pub const KEY_ID_LEN: usize = 2;
/// Key id plus the 26 Crockford characters of the 16-byte block.
pub const SERIAL_LEN: usize = KEY_ID_LEN + 26;
/// Label from which the tag key is derived (HMAC-SHA256 under the product key).
const TAG_KEY_LABEL: &[u8] = b"keypost block v1 tag key";
const TAG_LEN: usize = 9;
const HEADER_LEN: usize = 16 - TAG_LEN;

/// One key a product's serials may be under; the first of [`Block::keys`] makes new serials.
#[derive(Debug)]
pub(crate) struct BlockKey {
    /// Canonical key id (upper-case Crockford).
    pub id: String,
    pub key: Key,
    /// Kept only so serials made under it still verify.
    pub retired: bool,
}

/// The `block` parameters of one product.
#[derive(Debug)]
pub(crate) struct Block {
    pub product_code: u16,
    pub keys: Vec<BlockKey>,
}

/// What a valid `block` serial says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub seats: u32,
    pub issued: Date,
    pub key_id: String,
    pub retired_key: bool,
}

impl Block {
    /// The serial (ungrouped, canonical) for an already normalised name.
    pub fn make(&self, normalised: &str, seats: u32, issued: Date) -> Result<String, SerialError> {
        // `Maker::block` always gives a current key.
        let current = self.keys.first().ok_or(SerialError::BadKeyId { key_id: String::new() })?;
        let seats = u16::try_from(seats).ok().filter(|s| *s > 0).ok_or(SerialError::SeatsOutOfRange { seats })?;
        let day = (issued - EPOCH).whole_days();
        let day = u16::try_from(day).map_err(|_| SerialError::DateOutOfRange { date: issued })?;
        let mut header = [0u8; HEADER_LEN];
        header[0] = VERSION;
        header[1..3].copy_from_slice(&self.product_code.to_be_bytes());
        header[3..5].copy_from_slice(&seats.to_be_bytes());
        header[5..7].copy_from_slice(&day.to_be_bytes());
        let mut plain = [0u8; 16];
        plain[..HEADER_LEN].copy_from_slice(&header);
        plain[HEADER_LEN..].copy_from_slice(&tag(&current.key, &header, normalised));
        // The key is borrowed, not copied; the cipher's key schedule is zeroed on drop (aes `zeroize`).
        let cipher = aes::Aes128::new(current.key.bytes().into());
        let mut block = aes::Block::from(plain);
        cipher.encrypt_block(&mut block);
        Ok(format!("{}{}", current.id, Output::Crockford.encode(&block)))
    }

    /// Checks a canonical serial (see `text::canonical`) against an already normalised name.
    pub fn verify(&self, normalised: &str, canonical: &str) -> Result<Claims, VerifyError> {
        if canonical.chars().count() != SERIAL_LEN {
            return Err(VerifyError::WrongLength { expected: SERIAL_LEN, found: canonical.chars().count() });
        }
        let (key_id, body) = canonical.split_at_checked(KEY_ID_LEN).ok_or(VerifyError::Mistyped)?;
        let Some(entry) = self.keys.iter().find(|k| k.id == key_id) else {
            let known = self.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>().join(", ");
            return Err(VerifyError::UnknownKeyId { key_id: key_id.to_owned(), known });
        };
        let bytes = Output::Crockford.decode(body).ok_or(VerifyError::Mistyped)?;
        let bytes: [u8; 16] = bytes.as_slice().try_into().map_err(|_| VerifyError::Mistyped)?;
        let mut block = aes::Block::from(bytes);
        aes::Aes128::new(entry.key.bytes().into()).decrypt_block(&mut block);
        let (header, found_tag) = block.split_at(HEADER_LEN);
        let header: [u8; HEADER_LEN] = header.try_into().map_err(|_| VerifyError::Mistyped)?;
        if header[0] != VERSION || header[1..3] != self.product_code.to_be_bytes() {
            return Err(VerifyError::Mistyped);
        }
        if !constant_time_eq(found_tag, &tag(&entry.key, &header, normalised)) {
            return Err(VerifyError::NameMismatch);
        }
        let seats = u16::from_be_bytes([header[3], header[4]]);
        let day = u16::from_be_bytes([header[5], header[6]]);
        let issued = EPOCH + time::Duration::days(i64::from(day));
        Ok(Claims { seats: u32::from(seats), issued, key_id: entry.id.clone(), retired_key: entry.retired })
    }
}

/// True when `text` is a valid key id: two characters of the Crockford alphabet (after upper-casing).
///
/// ```
/// assert!(keypost_serial::is_key_id("k1"));
/// assert!(!keypost_serial::is_key_id("KU"), "U is not a Crockford symbol");
/// ```
pub fn is_key_id(text: &str) -> bool {
    text.chars().count() == KEY_ID_LEN && text.chars().all(|c| CROCKFORD_ALPHABET.contains(c.to_ascii_uppercase()))
}

/// The first 9 bytes of HMAC-SHA256(tag key, header || name as UTF-8).
fn tag(key: &Key, header: &[u8; HEADER_LEN], normalised: &str) -> [u8; TAG_LEN] {
    let tag_key = Zeroizing::new(hmac_sha256(key.bytes(), &[TAG_KEY_LABEL]));
    let mac = hmac_sha256(tag_key.as_slice(), &[header, normalised.as_bytes()]);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&mac[..TAG_LEN]);
    out
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    parts.iter().for_each(|part| mac.update(part));
    mac.finalize().into_bytes().into()
}

/// Compares in constant time, so timing does not tell how much of a tag was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn block() -> Block {
        let key = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
        Block { product_code: 0x0102, keys: vec![BlockKey { id: "K1".into(), key, retired: false }] }
    }

    #[test]
    fn serial_has_fixed_length_and_starts_with_the_key_id() {
        let date = time::macros::date!(2026 - 11 - 22);
        let short = block().make("jo", 1, date).unwrap();
        let long = block().make(&"x".repeat(300), 65535, date).unwrap();
        assert_eq!((short.len(), long.len()), (SERIAL_LEN, SERIAL_LEN));
        assert!(short.starts_with("K1"));
    }

    #[test]
    fn verify_returns_the_seats_and_day_that_were_made_in() {
        let date = time::macros::date!(2179 - 06 - 06);
        let serial = block().make("jo", 7, date).unwrap();
        let claims = block().verify("jo", &serial).unwrap();
        assert_eq!((claims.seats, claims.issued, claims.key_id.as_str()), (7, date, "K1"));
        assert_eq!(block().verify("joe", &serial), Err(VerifyError::NameMismatch));
    }

    #[test]
    fn seats_and_dates_outside_the_fields_are_refused() {
        let date = time::macros::date!(2026 - 11 - 22);
        assert!(matches!(block().make("jo", 0, date), Err(SerialError::SeatsOutOfRange { seats: 0 })));
        assert!(matches!(block().make("jo", 65536, date), Err(SerialError::SeatsOutOfRange { .. })));
        let late = time::macros::date!(2179 - 06 - 07);
        assert!(matches!(block().make("jo", 1, late), Err(SerialError::DateOutOfRange { .. })));
        let early = time::macros::date!(1999 - 12 - 31);
        assert!(matches!(block().make("jo", 1, early), Err(SerialError::DateOutOfRange { .. })));
    }

    #[test]
    fn a_serial_of_another_product_under_the_same_key_is_refused() {
        let date = time::macros::date!(2026 - 11 - 22);
        let mut other = block();
        other.product_code = 7;
        let serial = other.make("jo", 1, date).unwrap();
        assert_eq!(block().verify("jo", &serial), Err(VerifyError::Mistyped));
    }
}
