//! Make and verify keypost licence serials, with no I/O: the same code keypost issues serials with, for the
//! vendor's app that checks them. The byte-exact format is specified in keypost's `docs/serial-format.md`, and
//! `tests/vectors/serial.json` pins it (this crate's tests recompute every vector).
//!
//! Two schemes:
//! - **`block`**: a fixed 28-symbol serial (`K1AB-CDEF-...`): key id, then one AES-128 block carrying the product
//!   code, seat count, issue date, optionally edition bits and an expiry date, and a tag binding them to the
//!   licensee's name. [`Maker::block`].
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
//! let today = time::macros::date!(2027 - 03 - 01); // the app's clock: this crate never reads one
//! let licence = maker.verify_at("Jane Doe", "k154-20kj-3pqy-mscm-cf07-efvc-ztbr", today).unwrap();
//! assert_eq!(licence.licensee, "jane doe");
//! assert_eq!(licence.seats, Some(1));
//! assert_eq!(licence.issued.map(|d| d.to_string()), Some("2026-11-22".to_owned()));
//! assert!(maker.verify("John Doe", "K154-20KJ-3PQY-MSCM-CF07-EFVC-ZTBR").is_err());
//! ```
//!
//! An app that activates per machine checks the offline activation code keypost made for the serial and the
//! machine id with [`Maker::verify_activation`].
//!
//! Invariants: nothing here reads files, the network or the clock; keys never appear in `Debug` output or
//! errors; a serial once made verifies for as long as its key is configured (current or retired).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::indexing_slicing, clippy::string_slice, clippy::unwrap_used))]

mod activation;
mod block;
mod key;
mod name_cbc;
mod normalise;
mod text;

use time::Date;

pub use activation::CODE_LEN as ACTIVATION_CODE_LEN;
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
    /// `block` serials carry issue and expiry days from 2000-01-01 (expiry: 2000-01-02) to 2179-06-06.
    #[error("date {date} is outside 2000-01-01 to 2179-06-06")]
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
    /// A licence cannot expire before it is issued.
    #[error("expiry {expires} is before the issue date {issued}")]
    ExpiresBeforeIssue {
        /// The expiry asked for.
        expires: Date,
        /// The issue date.
        issued: Date,
    },
    /// `name-cbc` serials carry only the name: no edition, no expiry.
    #[error("scheme name-cbc cannot carry an edition or an expiry date (use scheme block)")]
    NotCarried,
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
    /// An activation needs a machine id that is not empty.
    #[error("the machine id is empty")]
    EmptyMachineId,
    /// The activation code was made for another serial or machine, or is mistyped.
    #[error("the activation code does not match this serial and machine, or is mistyped")]
    ActivationMismatch,
    /// A valid serial whose licence ended before the day it was checked on ([`Maker::verify_at`]).
    #[error("the licence expired on {expired} (checked on {at})")]
    Expired {
        /// The last day the licence was valid.
        expired: Date,
        /// The day it was checked for.
        at: Date,
    },
}

/// What a `block` serial records about a licence. Edition bits or an expiry make a layout 2 serial; a licence
/// with neither is written in layout 1, exactly as before editions existed.
///
/// ```
/// use keypost_serial::Licence;
/// use time::macros::date;
/// let yearly_pro = Licence::new(5, date!(2026 - 11 - 22)).with_edition(0b010).with_expiry(date!(2027 - 11 - 22));
/// assert_eq!((yearly_pro.seats, yearly_pro.edition), (5, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Licence {
    /// Seats, 1 to 65535.
    pub seats: u32,
    /// The issue day, 2000-01-01 to 2179-06-06.
    pub issued: Date,
    /// Edition bits (up to 8 features, named per product by the vendor); 0 for none.
    pub edition: u8,
    /// The last day the licence is valid, or `None` for a perpetual licence.
    pub expires: Option<Date>,
}

impl Licence {
    /// A perpetual licence without edition bits.
    pub fn new(seats: u32, issued: Date) -> Licence {
        Licence { seats, issued, edition: 0, expires: None }
    }

    /// The same licence with `bits` as its edition.
    pub fn with_edition(self, bits: u8) -> Licence {
        Licence { edition: bits, ..self }
    }

    /// The same licence ending after `last_day`.
    pub fn with_expiry(self, last_day: Date) -> Licence {
        Licence { expires: Some(last_day), ..self }
    }
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
    /// Edition bits (`block` layout 2; `None` for layout 1 and `name-cbc`, which carry none).
    pub edition: Option<u8>,
    /// The last day the licence is valid; `None` when it never expires (or the scheme carries no expiry).
    pub expires: Option<Date>,
    /// The block layout version, 1 or 2 (`block`).
    pub layout: Option<u8>,
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
        let current = block::BlockKey { id: checked_key_id(key_id)?, key, retired: false };
        Ok(Maker {
            rule: NormaliseRule::Rfc8266Casefold,
            group: 4,
            separator: "-".to_owned(),
            scheme: SchemeMaker::Block(block::Block { product_code, current, retired: Vec::new() }),
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
            if block.keys().any(|k| k.id == id) {
                return Err(SerialError::DuplicateKeyId { key_id: id });
            }
            block.retired.push(block::BlockKey { id, key, retired: true });
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

    /// The serial of a perpetual licence without edition for `licensee`, grouped for printing:
    /// `issue(licensee, &Licence::new(seats, issued))`. `name-cbc` ignores `seats` and `issued`.
    pub fn make(&self, licensee: &str, seats: u32, issued: Date) -> Result<String, SerialError> {
        self.issue(licensee, &Licence::new(seats, issued))
    }

    /// The serial recording `licence` for `licensee`, grouped for printing. `name-cbc` carries only the name:
    /// it refuses a licence with an edition or expiry ([`SerialError::NotCarried`]).
    ///
    /// ```
    /// # use keypost_serial::{Key, Licence, Maker};
    /// use time::macros::date;
    /// let maker = Maker::block(258, "K1", Key::parse("000102030405060708090a0b0c0d0e0f").unwrap()).unwrap();
    /// let licence = Licence::new(1, date!(2026 - 11 - 22)).with_edition(0b10).with_expiry(date!(2027 - 11 - 22));
    /// let serial = maker.issue("Jane Doe", &licence).unwrap();
    /// let verified = maker.verify_at("jane doe", &serial, date!(2027 - 11 - 22)).unwrap();
    /// assert_eq!((verified.edition, verified.layout), (Some(0b10), Some(2)));
    /// let late = maker.verify_at("jane doe", &serial, date!(2027 - 11 - 23)).unwrap_err();
    /// assert_eq!(late.to_string(), "the licence expired on 2027-11-22 (checked on 2027-11-23)");
    /// ```
    pub fn issue(&self, licensee: &str, licence: &Licence) -> Result<String, SerialError> {
        let name = self.normalised(licensee)?;
        let plain = match &self.scheme {
            SchemeMaker::NameCbc { .. } if licence.edition != 0 || licence.expires.is_some() => {
                return Err(SerialError::NotCarried);
            }
            SchemeMaker::NameCbc { inner, output } => output.encode(&inner.encrypt(&name)?),
            SchemeMaker::Block(block) => block.make(&name, licence)?,
        };
        Ok(text::group(&plain, self.group, &self.separator))
    }

    /// [`Maker::verify`], then refuses a licence whose expiry is before `today` ([`VerifyError::Expired`]).
    /// This is the call an app makes, with its own clock's date.
    pub fn verify_at(&self, licensee: &str, serial: &str, today: Date) -> Result<Verified, VerifyError> {
        let verified = self.verify(licensee, serial)?;
        match verified.expires {
            Some(expired) if expired < today => Err(VerifyError::Expired { expired, at: today }),
            _ => Ok(verified),
        }
    }

    /// Checks `serial` against `licensee`, forgiving case, spaces, dashes and Crockford look-alikes. The result
    /// says when the licence expires but this does not compare it with any date: see [`Maker::verify_at`].
    pub fn verify(&self, licensee: &str, serial: &str) -> Result<Verified, VerifyError> {
        let name = self.normalised(licensee).map_err(|err| VerifyError::Name(err.to_string()))?;
        match &self.scheme {
            SchemeMaker::NameCbc { inner, output } => {
                let typed = output.decode(&text::canonical(serial, *output, &self.separator)?);
                let expected = inner.encrypt(&name).map_err(|err| VerifyError::Name(err.to_string()))?;
                if typed.is_none_or(|typed| !block::constant_time_eq(&typed, &expected)) {
                    return Err(VerifyError::Mismatch);
                }
                Ok(Verified {
                    licensee: name,
                    seats: None,
                    issued: None,
                    edition: None,
                    expires: None,
                    layout: None,
                    key_id: None,
                    retired_key: false,
                })
            }
            SchemeMaker::Block(block) => {
                let claims = block.verify(&name, &text::canonical(serial, Output::Crockford, &self.separator)?)?;
                Ok(Verified {
                    licensee: name,
                    seats: Some(claims.seats),
                    issued: Some(claims.issued),
                    edition: (claims.version >= 2).then_some(claims.edition),
                    expires: claims.expires,
                    layout: Some(claims.version),
                    key_id: Some(claims.key_id),
                    retired_key: claims.retired_key,
                })
            }
        }
    }
}

impl Maker {
    /// The offline activation code binding `serial` to the machine id `machine` (surrounding white space is
    /// ignored; otherwise the id is taken exactly). The serial is read as typed, like [`Maker::verify`]; a `block`
    /// serial must be one of this product's (its name is not needed). Printed as four groups of four symbols.
    ///
    /// ```
    /// # use keypost_serial::{Key, Maker};
    /// let maker = Maker::block(258, "K1", Key::parse("000102030405060708090a0b0c0d0e0f").unwrap()).unwrap();
    /// let serial = "K154-20KJ-3PQY-MSCM-CF07-EFVC-ZTBR";
    /// let code = maker.activation_code(serial, "machine-7f3a").unwrap();
    /// assert!(maker.verify_activation(serial, "machine-7f3a", &code.to_lowercase()).is_ok());
    /// assert!(maker.verify_activation(serial, "machine-0000", &code).is_err());
    /// ```
    pub fn activation_code(&self, serial: &str, machine: &str) -> Result<String, VerifyError> {
        let code = self.raw_activation_code(serial, machine)?;
        Ok(text::group(&code, 4, "-"))
    }

    /// Checks an activation code as the app does, offline: the same serial and machine id must give the same
    /// code (case, spaces, dashes and Crockford look-alikes in the typed code do not matter).
    pub fn verify_activation(&self, serial: &str, machine: &str, code: &str) -> Result<(), VerifyError> {
        let expected = self.raw_activation_code(serial, machine)?;
        let typed = text::canonical(code, Output::Crockford, "-").map_err(|_| VerifyError::ActivationMismatch)?;
        if activation::matches(&typed, &expected) { Ok(()) } else { Err(VerifyError::ActivationMismatch) }
    }

    fn raw_activation_code(&self, serial: &str, machine: &str) -> Result<String, VerifyError> {
        let machine = activation::machine_id(machine).ok_or(VerifyError::EmptyMachineId)?;
        match &self.scheme {
            SchemeMaker::Block(block) => {
                let canonical = text::canonical(serial, Output::Crockford, &self.separator)?;
                let (entry, _) = block.open(&canonical)?;
                Ok(activation::code(&entry.key, &canonical, machine))
            }
            SchemeMaker::NameCbc { inner, output } => {
                let canonical = text::canonical(serial, *output, &self.separator)?;
                output.decode(&canonical).ok_or(VerifyError::Mismatch)?;
                Ok(activation::code(&inner.key, &canonical, machine))
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
