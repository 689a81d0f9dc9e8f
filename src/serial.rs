//! Serials: name normalisation, the `name-cbc` and `block` schemes, making and verifying. No I/O beyond reading
//! keys through [`SecretSource::load`](crate::secret::SecretSource::load) in [`Maker::from_config`].
//! The byte-exact algorithms are specified in `docs/serial-format.md`; `tests/vectors/serial.json` pins them.
use std::path::Path;

use time::Date;

mod block;
mod config;
mod key;
mod name_cbc;
mod normalise;
mod text;

pub use config::{RetiredKey, Scheme, SerialConfig};
pub use name_cbc::NameEncoding;
pub use normalise::{NormaliseRule, normalise};
pub use text::{Output, TextError};

use crate::secret::{SecretError, SecretSource};

/// Why a serial could not be made (or a product's serial settings could not be used).
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("the licensee name is empty once normalised")]
    EmptyName,
    #[error("the licensee name does not settle under normalisation")]
    UnstableName,
    #[error("the licensee name contains the control character {character:?}")]
    ControlCharacter { character: char },
    #[error("the licensee name contains {character:?}, which {encoding} cannot represent")]
    NotRepresentable { encoding: &'static str, character: char },
    #[error("seats must be 1 to 65535, not {seats}")]
    SeatsOutOfRange { seats: u32 },
    #[error("issue date {date} is outside 2000-01-01 to 2179-06-06")]
    DateOutOfRange { date: Date },
    #[error("the product has no current key")]
    NoCurrentKey,
    // `cause` rather than `source`: the message already includes it, and an error chain would print it twice.
    #[error("serial.{field}: {cause}")]
    LoadKey { field: String, cause: SecretError },
    #[error("serial.{field} (from {origin}) must be {format}", format = key::FORMAT)]
    BadKey { field: String, origin: String },
    /// Settings that `SerialConfig::validate` would have reported (each as `serial.field: message`).
    #[error("{problems}")]
    Config { problems: String },
}

/// Why a serial did not verify. Each message is one line a buyer's support can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the licensee name cannot be used: {0}")]
    Name(String),
    #[error("{0}")]
    Text(#[from] TextError),
    #[error("the serial has {found} characters; expected {expected}")]
    WrongLength { expected: usize, found: usize },
    #[error("the serial starts with key id {key_id:?}, which this product does not have (known: {known})")]
    UnknownKeyId { key_id: String, known: String },
    #[error("the serial is mistyped or belongs to another product")]
    Mistyped,
    #[error("the serial does not match this licensee name")]
    NameMismatch,
    #[error("the serial does not match this licensee name, or is mistyped")]
    Mismatch,
}

/// What a valid serial says; `None` where the scheme does not carry the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The normalised licensee name the serial is for.
    pub licensee: String,
    pub seats: Option<u32>,
    pub issued: Option<Date>,
    pub key_id: Option<String>,
    /// True when the serial is under a retired key (it still verifies until the key is removed).
    pub retired_key: bool,
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
    /// Checks the settings and loads every key (relative key files are taken from `base_dir`).
    pub fn from_config(config: &SerialConfig, base_dir: &Path) -> Result<Maker, SerialError> {
        let settings = config.settings().map_err(|found| {
            let problems = found.into_iter().map(|(field, message)| format!("serial.{field}: {message}"));
            SerialError::Config { problems: problems.collect::<Vec<_>>().join("; ") }
        })?;
        let current = load_key("key", &config.key, base_dir)?;
        let scheme = match settings.scheme {
            Scheme::NameCbc => SchemeMaker::NameCbc {
                inner: name_cbc::NameCbc { key: current, iv: settings.iv, encoding: settings.name_encoding },
                output: settings.output,
            },
            Scheme::Block => {
                let mut keys = vec![block::BlockKey { id: settings.key_id.clone(), key: current, retired: false }];
                for (i, retired) in config.retired_keys.iter().enumerate() {
                    let key = load_key(&format!("retired_keys[{i}].key"), &retired.key, base_dir)?;
                    keys.push(block::BlockKey { id: retired.key_id.to_ascii_uppercase(), key, retired: true });
                }
                SchemeMaker::Block(block::Block { product_code: settings.product_code, keys })
            }
        };
        Ok(Maker { rule: settings.rule, group: settings.group, separator: settings.separator, scheme })
    }

    pub fn scheme(&self) -> Scheme {
        match self.scheme {
            SchemeMaker::NameCbc { .. } => Scheme::NameCbc,
            SchemeMaker::Block(_) => Scheme::Block,
        }
    }

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

fn load_key(field: &str, source: &SecretSource, base_dir: &Path) -> Result<key::Key, SerialError> {
    let secret = source.load(base_dir).map_err(|cause| SerialError::LoadKey { field: field.to_owned(), cause })?;
    key::parse_key(&secret).ok_or_else(|| SerialError::BadKey { field: field.to_owned(), origin: source.origin() })
}

#[cfg(test)]
mod tests;
