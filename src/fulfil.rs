//! Decisions: what to do with an order given what the state already knows. Pure functions, table-tested.
use serde::Deserialize;

use crate::config::Problems;

/// `[limits]`: checks every order must pass.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitsConfig {}

impl LimitsConfig {
    pub fn validate(&self, _problems: &mut Problems) {}
}
