//! The state: the only module that touches sled. The fulfilment issue writes the protocol down here.
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Problems;

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
pub struct StateConfig {
    /// Folder of the sled database; relative to the config file's folder.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { dir: default_dir() }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("state")
}

impl StateConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.dir.as_os_str().is_empty() {
            problems.error("state.dir", "must not be empty");
        }
    }
}
