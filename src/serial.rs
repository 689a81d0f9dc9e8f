//! Serials in keypost: the schemes themselves live in the `keypost-serial` crate (re-exported here), which a
//! vendor's app uses to verify them; this module adds what only keypost needs: the `[product.serial]` config
//! section, its validation, and loading keys through [`SecretSource::load`](crate::secret::SecretSource::load)
//! (the only I/O) in [`SerialConfig::maker`], and the editions and terms each SKU's licences get ([`Terms`]).
//! The byte-exact algorithms are specified in `docs/serial-format.md`; `tests/vectors/serial.json` pins them.
mod config;
mod terms;

pub use config::{RetiredKey, SerialConfig};
pub use keypost_serial::{
    Key, Licence, Maker, NameEncoding, NormaliseRule, Output, Scheme, SerialError, TextError, Verified, VerifyError,
    normalise,
};
pub use terms::{SkuTerms, Term, Terms};

use crate::secret::SecretError;

/// Why a product's serial settings could not be turned into a [`Maker`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // `cause` rather than `source`: the message already includes it, and an error chain would print it twice.
    #[error("serial.{field}: {cause}")]
    LoadKey { field: String, cause: SecretError },
    #[error("serial.{field} (from {origin}) must be {format}", format = keypost_serial::KEY_FORMAT)]
    BadKey { field: String, origin: String },
    /// Settings that `SerialConfig::validate` would have reported (each as `serial.field: message`).
    #[error("{problems}")]
    Config { problems: String },
}

#[cfg(test)]
mod tests;
