//! Provider templates (`parsers/*.toml`): recognise a provider's email, classify it, extract the order.
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Problems;

/// `[templates]`.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplatesConfig {
    /// A folder of extra or overriding templates; relative to the config file's folder. The templates shipped
    /// in `parsers/` are built into the binary.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Messages larger than this many bytes are set aside unread.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self { dir: None, max_message_bytes: default_max_message_bytes() }
    }
}

fn default_max_message_bytes() -> u64 {
    5 * 1024 * 1024
}

impl TemplatesConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.max_message_bytes < 1024 {
            problems.error("templates.max_message_bytes", "must be at least 1024");
        }
    }
}
