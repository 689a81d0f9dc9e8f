//! The `block` scheme: one AES-128 block holding layout version, product code, seats, issue day (version 2 also
//! edition bits and an expiry day) and a name tag, prefixed with a key id so keys can be rotated. Pure.
//! Layouts and algorithm: `docs/serial-format.md` section 5. A serial of either layout verifies forever (while its
//! key is configured): version 1 is still made whenever a licence has no edition and no expiry.
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use secrecy::zeroize::Zeroizing;
use sha2::Sha256;
use time::Date;

use crate::key::Key;
use crate::text::{CROCKFORD_ALPHABET, Output};
use crate::{Licence, SerialError, VerifyError};

/// Day 0 of the issue-day and expiry-day fields.
pub const EPOCH: Date = time::macros::date!(2000 - 01 - 01);
/// A key id is two Crockford base32 characters.
pub const KEY_ID_LEN: usize = 2;
/// Key id plus the 26 Crockford characters of the 16-byte block.
pub const SERIAL_LEN: usize = KEY_ID_LEN + 26;
/// Label from which the tag key is derived (HMAC-SHA256 under the product key); both layouts use it, and the
/// version byte inside the tagged header keeps them apart.
const TAG_KEY_LABEL: &[u8] = b"keypost block v1 tag key";

/// The two block layouts: how many header bytes precede the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// version, product code, seats, issue day; 9-byte tag.
    V1,
    /// as V1, then edition bits and expiry day; 6-byte tag.
    V2,
}

impl Layout {
    fn from_version(byte: u8) -> Option<Layout> {
        match byte {
            1 => Some(Layout::V1),
            2 => Some(Layout::V2),
            _ => None,
        }
    }

    fn version(self) -> u8 {
        match self {
            Layout::V1 => 1,
            Layout::V2 => 2,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Layout::V1 => 7,
            Layout::V2 => 10,
        }
    }
}

/// One key a product's serials may be under.
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
    /// Makes new serials; `retired` only verify.
    pub current: BlockKey,
    pub retired: Vec<BlockKey>,
}

/// What a valid `block` serial says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub version: u8,
    pub seats: u32,
    pub issued: Date,
    /// Edition bits (version 2; 0 in version 1).
    pub edition: u8,
    pub expires: Option<Date>,
    pub key_id: String,
    pub retired_key: bool,
}

impl Block {
    pub fn keys(&self) -> impl Iterator<Item = &BlockKey> {
        std::iter::once(&self.current).chain(&self.retired)
    }

    /// The serial (ungrouped, canonical) for an already normalised name.
    pub fn make(&self, normalised: &str, licence: &Licence) -> Result<String, SerialError> {
        let seats = licence.seats;
        let seats = u16::try_from(seats).ok().filter(|s| *s > 0).ok_or(SerialError::SeatsOutOfRange { seats })?;
        let day = day_number(licence.issued).ok_or(SerialError::DateOutOfRange { date: licence.issued })?;
        let layout = if licence.edition == 0 && licence.expires.is_none() { Layout::V1 } else { Layout::V2 };
        let mut plain = [0u8; 16];
        plain[0] = layout.version();
        plain[1..3].copy_from_slice(&self.product_code.to_be_bytes());
        plain[3..5].copy_from_slice(&seats.to_be_bytes());
        plain[5..7].copy_from_slice(&day.to_be_bytes());
        if layout == Layout::V2 {
            plain[7] = licence.edition;
            plain[8..10].copy_from_slice(&expiry_day(licence)?.to_be_bytes());
        }
        let (header, tag_field) = plain.split_at_mut(layout.header_len());
        let tag = tag(&self.current.key, header, normalised);
        tag_field.copy_from_slice(tag.get(..tag_field.len()).unwrap_or_default());
        // The key is borrowed, not copied; the cipher's key schedule is zeroed on drop (aes `zeroize`).
        let cipher = aes::Aes128::new(self.current.key.bytes().into());
        let mut block = aes::Block::from(plain);
        cipher.encrypt_block(&mut block);
        Ok(format!("{}{}", self.current.id, Output::Crockford.encode(&block)))
    }

    /// Checks a canonical serial (see `text::canonical`) against an already normalised name.
    pub fn verify(&self, normalised: &str, canonical: &str) -> Result<Claims, VerifyError> {
        let (entry, block) = self.open(canonical)?;
        let layout = Layout::from_version(block[0]).ok_or(VerifyError::Mistyped)?;
        let (header, found_tag) = block.split_at(layout.header_len());
        let expected = tag(&entry.key, header, normalised);
        if !constant_time_eq(found_tag, expected.get(..found_tag.len()).unwrap_or_default()) {
            return Err(VerifyError::NameMismatch);
        }
        let (edition, expires) = match layout {
            Layout::V1 => (0, None),
            Layout::V2 => {
                let expiry = u16::from_be_bytes([block[8], block[9]]);
                (block[7], (expiry != 0).then(|| from_day_number(expiry)))
            }
        };
        Ok(Claims {
            version: block[0],
            seats: u32::from(u16::from_be_bytes([block[3], block[4]])),
            issued: from_day_number(u16::from_be_bytes([block[5], block[6]])),
            edition,
            expires,
            key_id: entry.id.clone(),
            retired_key: entry.retired,
        })
    }

    /// Finds the serial's key and decrypts its block; checks the layout version and the product code, which
    /// need no name. A mistyped serial, or one of another product, fails here.
    pub fn open(&self, canonical: &str) -> Result<(&BlockKey, [u8; 16]), VerifyError> {
        if canonical.chars().count() != SERIAL_LEN {
            return Err(VerifyError::WrongLength { expected: SERIAL_LEN, found: canonical.chars().count() });
        }
        let (key_id, body) = canonical.split_at_checked(KEY_ID_LEN).ok_or(VerifyError::Mistyped)?;
        let Some(entry) = self.keys().find(|k| k.id == key_id) else {
            let known = self.keys().map(|k| k.id.clone()).collect::<Vec<_>>().join(", ");
            return Err(VerifyError::UnknownKeyId { key_id: key_id.to_owned(), known });
        };
        let bytes = Output::Crockford.decode(body).ok_or(VerifyError::Mistyped)?;
        let bytes: [u8; 16] = bytes.as_slice().try_into().map_err(|_| VerifyError::Mistyped)?;
        let mut block = aes::Block::from(bytes);
        aes::Aes128::new(entry.key.bytes().into()).decrypt_block(&mut block);
        let block: [u8; 16] = block.into();
        if Layout::from_version(block[0]).is_none() || block[1..3] != self.product_code.to_be_bytes() {
            return Err(VerifyError::Mistyped);
        }
        Ok((entry, block))
    }
}

/// Days since [`EPOCH`], if the date fits the 16-bit field.
fn day_number(date: Date) -> Option<u16> {
    u16::try_from((date - EPOCH).whole_days()).ok()
}

fn from_day_number(day: u16) -> Date {
    EPOCH + time::Duration::days(i64::from(day))
}

/// The expiry field: 0 for none, else the expiry's day number, which must not precede the issue day.
fn expiry_day(licence: &Licence) -> Result<u16, SerialError> {
    let Some(expires) = licence.expires else { return Ok(0) };
    if expires < licence.issued {
        return Err(SerialError::ExpiresBeforeIssue { expires, issued: licence.issued });
    }
    // Day 0 means "never"; an expiry on 2000-01-01 cannot be written.
    day_number(expires).filter(|day| *day != 0).ok_or(SerialError::DateOutOfRange { date: expires })
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

/// HMAC-SHA256(tag key, header || name as UTF-8); the layout keeps its first 9 (V1) or 6 (V2) bytes.
fn tag(key: &Key, header: &[u8], normalised: &str) -> [u8; 32] {
    let tag_key = Zeroizing::new(hmac_sha256(key.bytes(), &[TAG_KEY_LABEL]));
    hmac_sha256(tag_key.as_slice(), &[header, normalised.as_bytes()])
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
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
    use time::macros::date;

    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(data_encoding::HEXLOWER.encode(&mac), expected);
    }

    fn block() -> Block {
        let key = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
        Block { product_code: 0x0102, current: BlockKey { id: "K1".into(), key, retired: false }, retired: vec![] }
    }

    fn licence(seats: u32, issued: Date) -> Licence {
        Licence::new(seats, issued)
    }

    #[test]
    fn serial_has_fixed_length_and_starts_with_the_key_id_in_both_layouts() {
        let date = date!(2026 - 11 - 22);
        let short = block().make("jo", &licence(1, date)).unwrap();
        let long = block().make(&"x".repeat(300), &licence(65535, date)).unwrap();
        let v2 = block().make("jo", &licence(1, date).with_edition(0x80).with_expiry(date)).unwrap();
        assert_eq!((short.len(), long.len(), v2.len()), (SERIAL_LEN, SERIAL_LEN, SERIAL_LEN));
        assert!(short.starts_with("K1") && v2.starts_with("K1"));
    }

    #[test]
    fn verify_returns_the_seats_and_day_that_were_made_in() {
        let date = date!(2179 - 06 - 06);
        let serial = block().make("jo", &licence(7, date)).unwrap();
        let claims = block().verify("jo", &serial).unwrap();
        assert_eq!((claims.seats, claims.issued, claims.key_id.as_str()), (7, date, "K1"));
        assert_eq!((claims.version, claims.edition, claims.expires), (1, 0, None));
        assert_eq!(block().verify("joe", &serial), Err(VerifyError::NameMismatch));
    }

    #[test]
    fn layout_2_carries_edition_bits_and_expiry_and_binds_them_to_the_name() {
        let issued = date!(2026 - 11 - 22);
        let made = licence(3, issued).with_edition(0b101).with_expiry(date!(2027 - 11 - 22));
        let serial = block().make("jo", &made).unwrap();
        let claims = block().verify("jo", &serial).unwrap();
        assert_eq!((claims.version, claims.seats, claims.issued), (2, 3, issued));
        assert_eq!((claims.edition, claims.expires), (0b101, Some(date!(2027 - 11 - 22))));
        assert_eq!(block().verify("joe", &serial), Err(VerifyError::NameMismatch));
        let edition_only = block().make("jo", &licence(1, issued).with_edition(1)).unwrap();
        let claims = block().verify("jo", &edition_only).unwrap();
        assert_eq!((claims.version, claims.edition, claims.expires), (2, 1, None));
    }

    #[test]
    fn seats_and_dates_outside_the_fields_are_refused() {
        let date = date!(2026 - 11 - 22);
        assert!(matches!(block().make("jo", &licence(0, date)), Err(SerialError::SeatsOutOfRange { seats: 0 })));
        assert!(matches!(block().make("jo", &licence(65536, date)), Err(SerialError::SeatsOutOfRange { .. })));
        let late = date!(2179 - 06 - 07);
        assert!(matches!(block().make("jo", &licence(1, late)), Err(SerialError::DateOutOfRange { .. })));
        let early = date!(1999 - 12 - 31);
        assert!(matches!(block().make("jo", &licence(1, early)), Err(SerialError::DateOutOfRange { .. })));
        let expiring_late = licence(1, date).with_expiry(late);
        assert!(matches!(block().make("jo", &expiring_late), Err(SerialError::DateOutOfRange { .. })));
        let backwards = licence(1, date).with_expiry(date!(2026 - 11 - 21));
        assert!(matches!(block().make("jo", &backwards), Err(SerialError::ExpiresBeforeIssue { .. })));
    }

    #[test]
    fn a_serial_of_another_product_under_the_same_key_is_refused() {
        let date = date!(2026 - 11 - 22);
        let mut other = block();
        other.product_code = 7;
        let serial = other.make("jo", &licence(1, date)).unwrap();
        assert_eq!(block().verify("jo", &serial), Err(VerifyError::Mistyped));
    }
}
