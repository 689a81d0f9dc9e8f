//! Make and verify keypost licence serials, with no I/O: the same code keypost issues serials with, for the
//! vendor's app that checks them. The byte-exact format is specified in keypost's `docs/serial-format.md`, and
//! `tests/vectors/serial.json` pins it (this crate's tests recompute every vector).
//!
//! Two schemes:
//! - **`block`**: a fixed 28-symbol serial (`K1AB-CDEF-...`): key id, then one AES-128 block carrying the product
//!   code, seat count, issue date and a tag binding them to the licensee's name. [`Maker::block`].
//! - **`name-cbc`**: AES-128-CBC of the licensee's name, for apps already in buyers' hands. [`Maker::name_cbc`].
//!
//! Names are normalised first ([`normalise`]), so `José` typed with a combining accent, a no-break space or
//! stray spaces still matches. Typed serials are read forgivingly (case, spaces, dashes, Crockford look-alikes).
//!
//! ```
//! use keypost_serial::{Key, Maker};
//!
//! // The app holds the product's key id and key (this one is a published test key: never use it).
//! let key = Key::parse("000102030405060708090a0b0c0d0e0f").unwrap();
//! let maker = Maker::block(258, "K1", key).unwrap();
//!
//! let licence = maker.verify("Jane Doe", "k154-20kj-3pqy-mscm-cf07-efvc-ztbr").unwrap();
//! assert_eq!(licence.licensee, "jane doe");
//! assert_eq!(licence.seats, Some(1));
//! assert_eq!(licence.issued.map(|d| d.to_string()), Some("2026-11-22".to_owned()));
//! assert!(maker.verify("John Doe", "K154-20KJ-3PQY-MSCM-CF07-EFVC-ZTBR").is_err());
//! ```
//!
//! Invariants: nothing here reads files, the network or the clock; keys never appear in `Debug` output or
//! errors; a serial once made verifies for as long as its key is configured (current or retired).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::indexing_slicing, clippy::string_slice, clippy::unwrap_used))]

mod block;
mod key;
mod name_cbc;
mod normalise;
mod text;

use time::Date;

pub use block::{EPOCH, KEY_ID_LEN, SERIAL_LEN, is_key_id};
pub use key::{KEY_FORMAT, Key, parse_16};
pub use name_cbc::NameEncoding;
pub use normalise::{NormaliseRule, normalise};
pub use text::{CROCKFORD_ALPHABET, Output, TextError, canonical, group};

/// Why a serial could not be made, or a [`Maker`] not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// The name is empty (or only white space) once normalised.
    #[error("the licensee name is empty once normalised")]
    EmptyName,
    /// Normalisation did not reach a fixed point within the passes RFC 8266 allows.
    #[error("the licensee name does not settle under normalisation")]
    UnstableName,
    /// The normalised name contains a control character.
    #[error("the licensee name contains the control character {character:?}")]
    ControlCharacter {
        /// The first control character found.
        character: char,
    },
    /// The name cannot be written in the product's `name_encoding`.
    #[error("the licensee name contains {character:?}, which {encoding} cannot represent")]
    NotRepresentable {
        /// The encoding's name.
        encoding: &'static str,
        /// The first character it cannot hold.
        character: char,
    },
    /// `block` serials carry 1 to 65535 seats.
    #[error("seats must be 1 to 65535, not {seats}")]
    SeatsOutOfRange {
        /// The seat count asked for.
        seats: u32,
    },
    /// `block` serials carry an issue day from 2000-01-01 to 2179-06-06.
    #[error("issue date {date} is outside 2000-01-01 to 2179-06-06")]
    DateOutOfRange {
        /// The date asked for.
        date: Date,
    },
    /// A key id must be two Crockford base32 symbols.
    #[error("key id {key_id:?} must be two Crockford base32 characters (0-9, A-Z without I, L, O, U)")]
    BadKeyId {
        /// The key id as given.
        key_id: String,
    },
    /// Two keys of one product share a key id.
    #[error("key id {key_id:?} is already in use")]
    DuplicateKeyId {
        /// The upper-cased key id.
        key_id: String,
    },
}

/// Why a serial did not verify. Each message is one line a buyer's support can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The licensee name cannot be normalised (empty, control characters, ...).
    #[error("the licensee name cannot be used: {0}")]
    Name(String),
    /// The typed serial contains characters outside its alphabet, or nothing.
    #[error("{0}")]
    Text(#[from] TextError),
    /// A `block` serial has 28 symbols.
    #[error("the serial has {found} characters; expected {expected}")]
    WrongLength {
        /// Symbols a serial has.
        expected: usize,
        /// Symbols the typed serial has.
        found: usize,
    },
    /// The serial's key id is not one of the product's keys (perhaps retired and removed).
    #[error("the serial starts with key id {key_id:?}, which this product does not have (known: {known})")]
    UnknownKeyId {
        /// The key id the serial starts with.
        key_id: String,
        /// The product's key ids, comma-separated.
        known: String,
    },
    /// The block did not decrypt to this product's header: a typo, or another product's serial.
    #[error("the serial is mistyped or belongs to another product")]
    Mistyped,
    /// The block is this product's, but its tag is not for this name.
    #[error("the serial does not match this licensee name")]
    NameMismatch,
    /// `name-cbc` cannot tell a typo from another name.
    #[error("the serial does not match this licensee name, or is mistyped")]
    Mismatch,
}

/// What a valid serial says; `None` where the scheme does not carry the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The normalised licensee name the serial is for.
    pub licensee: String,
    /// Seats the licence is for (`block`).
    pub seats: Option<u32>,
    /// The day the serial was issued (`block`).
    pub issued: Option<Date>,
    /// The key id the serial starts with (`block`).
    pub key_id: Option<String>,
    /// True when the serial is under a retired key (it still verifies until the key is removed).
    pub retired_key: bool,
}

/// Which scheme a product's serials follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Fixed-length serials with seats, issue date and key id.
    Block,
    /// AES-128-CBC of the name.
    NameCbc,
}

impl Scheme {
    /// The scheme's name in keypost's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Block => "block",
            Scheme::NameCbc => "name-cbc",
        }
    }
}

/// Makes and verifies one product's serials. Holds the keys (redacted in `Debug`).
#[derive(Debug)]
pub struct Maker {
    rule: NormaliseRule,
    group: usize,
    separator: String,
    scheme: SchemeMaker,
}

#[derive(Debug)]
enum SchemeMaker {
    NameCbc { inner: name_cbc::NameCbc, output: Output },
    Block(block::Block),
}

impl Maker {
    /// A `block` maker for `product_code` whose new serials use `key` under `key_id` (two Crockford symbols, any
    /// case). Defaults: names compared by [`NormaliseRule::Rfc8266Casefold`], groups of 4 joined by `-`.
    pub fn block(product_code: u16, key_id: &str, key: Key) -> Result<Maker, SerialError> {
        let id = checked_key_id(key_id)?;
        let keys = vec![block::BlockKey { id, key, retired: false }];
        Ok(Maker {
            rule: NormaliseRule::Rfc8266Casefold,
            group: 4,
            separator: "-".to_owned(),
            scheme: SchemeMaker::Block(block::Block { product_code, keys }),
        })
    }

    /// Adds a retired `block` key: serials under it still verify (and say so), new ones never use it.
    /// A `name-cbc` maker has one key and ignores this.
    ///
    /// ```
    /// # use keypost_serial::{Key, Maker};
    /// let old = Maker::block(258, "K0", Key::parse("keypost-test-key").unwrap()).unwrap();
    /// let serial = old.make("Jo", 1, time::macros::date!(2024 - 01 - 31)).unwrap();
    /// let new = Maker::block(258, "K1", Key::parse("000102030405060708090a0b0c0d0e0f").unwrap())
    ///     .unwrap()
    ///     .with_retired_key("K0", Key::parse("keypost-test-key").unwrap())
    ///     .unwrap();
    /// assert!(new.verify("jo", &serial).unwrap().retired_key);
    /// ```
    pub fn with_retired_key(mut self, key_id: &str, key: Key) -> Result<Maker, SerialError> {
        let id = checked_key_id(key_id)?;
        if let SchemeMaker::Block(block) = &mut self.scheme {
            if block.keys.iter().any(|k| k.id == id) {
                return Err(SerialError::DuplicateKeyId { key_id: id });
            }
            block.keys.push(block::BlockKey { id, key, retired: true });
        }
        Ok(self)
    }

    /// A `name-cbc` maker. Defaults: names normalised by [`NormaliseRule::Rfc8266`] (case kept), no groups.
    ///
    /// ```
    /// # use keypost_serial::{Key, Maker, NameEncoding, Output};
    /// let key = Key::parse("keypost-test-key").unwrap();
    /// let maker = Maker::name_cbc(key, [0; 16], NameEncoding::Utf8, Output::Crockford).with_groups(5, "-");
    /// assert!(maker.verify("Jose\u{301} Müller", "V1FP8-2NDSY-NGZ7C-7ARMP-8B9ZG-R").is_ok());
    /// ```
    pub fn name_cbc(key: Key, iv: [u8; 16], encoding: NameEncoding, output: Output) -> Maker {
        Maker {
            rule: NormaliseRule::Rfc8266,
            group: 0,
            separator: "-".to_owned(),
            scheme: SchemeMaker::NameCbc { inner: name_cbc::NameCbc { key, iv, encoding }, output },
        }
    }

    /// Normalise names by `rule` instead of the scheme's default.
    pub fn with_rule(mut self, rule: NormaliseRule) -> Maker {
        self.rule = rule;
        self
    }

    /// Print serials in groups of `size` symbols (0: none) joined by `separator`, which verification also skips.
    pub fn with_groups(mut self, size: usize, separator: &str) -> Maker {
        self.group = size;
        separator.clone_into(&mut self.separator);
        self
    }

    /// The product's scheme.
    pub fn scheme(&self) -> Scheme {
        match self.scheme {
            SchemeMaker::NameCbc { .. } => Scheme::NameCbc,
            SchemeMaker::Block(_) => Scheme::Block,
        }
    }

    /// The name normalisation rule in use.
    pub fn rule(&self) -> NormaliseRule {
        self.rule
    }

    /// The exact licensee text the serial is made from (what a reply tells the buyer to type).
    pub fn normalised(&self, licensee: &str) -> Result<String, SerialError> {
        normalise(licensee, self.rule)
    }

    /// The serial for `licensee`, grouped for printing. `name-cbc` ignores `seats` and `issued`.
    pub fn make(&self, licensee: &str, seats: u32, issued: Date) -> Result<String, SerialError> {
        let name = self.normalised(licensee)?;
        let plain = match &self.scheme {
            SchemeMaker::NameCbc { inner, output } => output.encode(&inner.encrypt(&name)?),
            SchemeMaker::Block(block) => block.make(&name, seats, issued)?,
        };
        Ok(text::group(&plain, self.group, &self.separator))
    }

    /// Checks `serial` against `licensee`, forgiving case, spaces, dashes and Crockford look-alikes.
    pub fn verify(&self, licensee: &str, serial: &str) -> Result<Verified, VerifyError> {
        let name = self.normalised(licensee).map_err(|err| VerifyError::Name(err.to_string()))?;
        match &self.scheme {
            SchemeMaker::NameCbc { inner, output } => {
                let typed = output.decode(&text::canonical(serial, *output, &self.separator)?);
                let expected = inner.encrypt(&name).map_err(|err| VerifyError::Name(err.to_string()))?;
                if typed.is_none_or(|typed| !block::constant_time_eq(&typed, &expected)) {
                    return Err(VerifyError::Mismatch);
                }
                Ok(Verified { licensee: name, seats: None, issued: None, key_id: None, retired_key: false })
            }
            SchemeMaker::Block(block) => {
                let claims = block.verify(&name, &text::canonical(serial, Output::Crockford, &self.separator)?)?;
                Ok(Verified {
                    licensee: name,
                    seats: Some(claims.seats),
                    issued: Some(claims.issued),
                    key_id: Some(claims.key_id),
                    retired_key: claims.retired_key,
                })
            }
        }
    }
}

fn checked_key_id(key_id: &str) -> Result<String, SerialError> {
    if is_key_id(key_id) {
        Ok(key_id.to_ascii_uppercase())
    } else {
        Err(SerialError::BadKeyId { key_id: key_id.to_owned() })
    }
}

#[cfg(test)]
mod tests;

/// The README's examples run as doc tests, so the verify call it shows cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
