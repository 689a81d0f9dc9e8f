//! Where a secret (an AES key, a password) comes from, and reading it without ever printing it.
//! A secret is held in `secrecy::SecretString`, whose `Debug` is redacted; nothing here logs a value.
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// A secret's source, written in TOML as a one-key table: `{ file = "/etc/keypost/pro.key" }`,
/// `{ env = "KEYPOST_PRO_KEY" }`, `{ credential = "pro.key" }` (systemd `LoadCredential=`), or
/// `{ inline = "..." }` (allowed, but `keypost check` warns: the config file then holds a secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    Credential(String),
    Inline(SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("secret file {path} can be read by other users (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("environment variable {name} is not set")]
    MissingEnv { name: String },
    #[error(
        "systemd credential {name:?} requested but CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=)"
    )]
    NoCredentialsDirectory { name: String },
    #[error("secret from {origin} is empty")]
    Empty { origin: String },
}

impl SecretSource {
    /// A description safe to log: where the secret comes from, never what it is.
    pub fn origin(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::Credential(name) => format!("systemd credential {name}"),
            SecretSource::Inline(_) => "inline value in the config file".to_owned(),
        }
    }

    pub fn is_inline(&self) -> bool {
        matches!(self, SecretSource::Inline(_))
    }

    /// Reads the secret. Relative file paths are taken from `base_dir` (the config file's folder).
    /// One trailing newline is dropped, as `echo key > file` adds one.
    pub fn load(&self, base_dir: &Path) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretSource::Inline(secret) => return Ok(secret.clone()),
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv { name: name.clone() })?
            }
            SecretSource::File(path) => read_private_file(&base_dir.join(path))?,
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory { name: name.clone() })?;
                read_private_file(&Path::new(&dir).join(name))?
            }
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretError::Empty { origin: self.origin() });
        }
        Ok(SecretString::from(value.to_owned()))
    }
}

fn read_private_file(path: &Path) -> Result<String, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |source| SecretError::Read { path: path.to_owned(), source };
    let mode = std::fs::metadata(path).map_err(read_err)?.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(SecretError::TooOpen { path: path.to_owned(), mode: mode & 0o777 });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_readable_key_file_is_refused_and_private_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = SecretSource::File("k".into());
        assert!(matches!(source.load(dir.path()), Err(SecretError::TooOpen { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.load(dir.path()).unwrap().expose_secret(), "0123456789abcdef");
    }

    #[test]
    fn debug_output_never_shows_an_inline_secret() {
        let source: SecretSource =
            toml::from_str::<std::collections::BTreeMap<String, SecretSource>>("k = { inline = \"hunter2-hunter2!\" }")
                .unwrap()
                .remove("k")
                .unwrap();
        assert!(!format!("{source:?}").contains("hunter2"));
    }
}
