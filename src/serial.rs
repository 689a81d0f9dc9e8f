//! Serials: name normalisation, the `name-cbc` and `block` schemes, making and verifying. No I/O.
use serde::Deserialize;

use crate::config::Problems;

/// `[product.serial]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SerialConfig {}

impl SerialConfig {
    pub fn validate(&self, _key: &str, _problems: &mut Problems) {}
}
