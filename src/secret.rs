//! Where a secret (an AES key, a password) comes from, and reading it without ever printing it.
//! A secret is held in `secrecy::SecretString`, whose `Debug` is redacted; nothing here logs a value. The text
//! read from a file or the environment is held in `Zeroizing` until then, so no plain copy outlives `load`.
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A secret's source, written in TOML as a one-key table: `{ file = "/etc/keypost/pro.key" }`,
/// `{ env = "KEYPOST_PRO_KEY" }`, `{ credential = "pro.key" }` (systemd `LoadCredential=`), or
/// `{ inline = "..." }` (allowed, but `keypost check` warns: the config file then holds a secret).
///
/// `Deserialize` is written by hand: serde's derived errors quote the offending value ("unknown variant
/// `S3cr3t`"), and a vendor who writes `key = "S3cr3t"` must not see the key echoed into logs.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    Credential(String),
    Inline(SecretString),
}

const FORM: &str = "a one-key table: { file = \"PATH\" }, { env = \"VARIABLE\" }, { credential = \"NAME\" } \
     or { inline = \"...\" }";

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(FORM)
    }

    // Every non-table value is refused without quoting it: it may be the secret itself.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretSource, E> {
        Err(E::custom(format!("must be {FORM}, not a bare string (its value is not shown)")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretSource, E> {
        Err(E::custom(format!("must be {FORM} (the value is not shown)")))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!("is empty; must be {FORM}")));
        };
        let source = match kind.as_str() {
            "file" => SecretSource::File(map.next_value()?),
            "env" => SecretSource::Env(map.next_value()?),
            "credential" => SecretSource::Credential(map.next_value()?),
            "inline" => SecretSource::Inline(SecretString::from(
                map.next_value::<String>()
                    .map_err(|_| de::Error::custom("inline must be a string (the value is not shown)"))?,
            )),
            other => return Err(de::Error::custom(format!("unknown secret source {other:?}; must be {FORM}"))),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(format!("has more than one key; must be {FORM}")));
        }
        Ok(source)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("secret file {path} is open to its group or other users (mode {mode:o}); run: chmod 600 {path}")]
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
                Zeroizing::new(std::env::var(name).map_err(|_| SecretError::MissingEnv { name: name.clone() })?)
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

fn read_private_file(path: &Path) -> Result<Zeroizing<String>, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |source| SecretError::Read { path: path.to_owned(), source };
    let mode = std::fs::metadata(path).map_err(read_err)?.permissions().mode();
    // Any group or other bit: a group that can read a key today is one membership away from a leaked key.
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen { path: path.to_owned(), mode: mode & 0o777 });
    }
    // read_to_string sizes its buffer from the file's length, so no partial copy is left behind by regrowth.
    std::fs::read_to_string(path).map(Zeroizing::new).map_err(read_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_open_to_its_group_or_others_is_refused_and_private_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        let source = SecretSource::File("k".into());
        for mode in [0o644, 0o640, 0o604, 0o620, 0o610, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(matches!(source.load(dir.path()), Err(SecretError::TooOpen { .. })), "mode {mode:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(source.load(dir.path()).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.load(dir.path()).unwrap().expose_secret(), "0123456789abcdef");
    }

    #[test]
    fn a_secret_written_in_the_wrong_form_is_never_echoed_in_the_error() {
        for text in ["k = \"S3cr3t-K3y-Value\"", "k = { inlin = \"S3cr3t-K3y-Value\" }", "k = { inline = 12345678 }"] {
            let err = toml::from_str::<std::collections::BTreeMap<String, SecretSource>>(text).unwrap_err();
            let message = err.message().to_owned(); // what config::parse reports (Display adds the source line)
            assert!(!message.contains("S3cr3t") && !message.contains("12345678"), "{message}");
            assert!(message.contains("one-key table") || message.contains("not shown"), "{message}");
        }
    }

    #[test]
    fn each_secret_source_form_is_read() {
        let parsed = toml::from_str::<std::collections::BTreeMap<String, SecretSource>>(
            "a = { file = \"k\" }\nb = { env = \"V\" }\nc = { credential = \"n\" }\nd = { inline = \"x\" }",
        )
        .unwrap();
        let origins: Vec<_> = parsed.values().map(SecretSource::origin).collect();
        assert_eq!(
            origins,
            ["file k", "environment variable V", "systemd credential n", "inline value in the config file"]
        );
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
