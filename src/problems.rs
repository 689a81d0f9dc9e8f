//! Problems with a user's file (the config, a template, a key file), each with the file and the dotted key or
//! line it is about. A leaf: every section's `validate` collects into [`Problems`], none stops at the first one.
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong with a user's file, with the file and the dotted key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: {}: {}: {}", self.file.display(), self.key, self.message)
    }
}

/// Collects problems about one file.
#[derive(Debug)]
pub struct Problems {
    file: PathBuf,
    items: Vec<Problem>,
}

impl Problems {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into(), items: Vec::new() }
    }

    pub fn error(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.push(Severity::Error, key.into(), message.to_string());
    }

    pub fn warn(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.push(Severity::Warning, key.into(), message.to_string());
    }

    fn push(&mut self, severity: Severity, key: String, message: String) {
        self.items.push(Problem { severity, file: self.file.clone(), key, message });
    }

    /// Takes the problems of another file (a template, a key file) into this list.
    pub fn extend(&mut self, other: impl IntoIterator<Item = Problem>) {
        self.items.extend(other);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn items(&self) -> &[Problem] {
        &self.items
    }

    pub fn into_items(self) -> Vec<Problem> {
        self.items
    }
}

/// The configuration could not be used; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the configuration:\n{}", .0.len(), list(.0))]
pub struct ConfigError(pub Vec<Problem>);

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}
