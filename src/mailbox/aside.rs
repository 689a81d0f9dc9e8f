//! The set-aside folder as `keypost aside` sees it: read a set-aside message, put it back where the daemon
//! reads it again (the inbox), or move it to the ignored folder. Messages are named by their state record
//! (source, key, digest); a Maildir keeps the file name across moves, an IMAP folder is searched by digest.
//! Nothing is ever deleted; this module does not touch the state.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Disposition, ImapConfig, MailboxConfig, maildir};

/// Where the configured mailbox keeps its set-aside mail.
pub enum AsideFolder {
    Maildir { root: PathBuf },
    Imap { config: Box<ImapConfig>, base_dir: PathBuf, max_bytes: u64 },
}

/// A set-aside message as the state names it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub key: &'a str,
    pub sha256: Option<&'a str>,
}

impl AsideFolder {
    /// From `[mailbox]`, with paths relative to `base_dir`; `max_bytes` is the largest message read.
    pub fn from_config(mailbox: Option<&MailboxConfig>, base_dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        let mailbox = mailbox.context("keypost aside needs a [mailbox] section")?;
        match (&mailbox.maildir, &mailbox.imap) {
            (Some(dir), _) => Ok(Self::Maildir { root: base_dir.join(&dir.path) }),
            (None, Some(imap)) => {
                Ok(Self::Imap { config: Box::new(imap.clone()), base_dir: base_dir.to_owned(), max_bytes })
            }
            (None, None) => anyhow::bail!("[mailbox] needs [mailbox.maildir] or [mailbox.imap]"),
        }
    }

    /// The message's bytes, or `None` when it is no longer in the set-aside folder.
    pub async fn read(&self, message: Named<'_>) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Self::Maildir { root } => match maildir_file(root, message.key)? {
                Some(path) => {
                    Ok(Some(std::fs::read(&path).with_context(|| format!("Failed to read {}", path.display()))?))
                }
                None => Ok(None),
            },
            Self::Imap { config, base_dir, max_bytes } => {
                let sha256 = imap_digest(message)?;
                super::imap::aside::read(config, base_dir, *max_bytes, sha256).await
            }
        }
    }

    /// Moves the message back to the inbox (`None`) or to a disposition's folder. Returns whether it was in the
    /// set-aside folder to move.
    pub async fn move_to(&self, message: Named<'_>, to: Option<Disposition>) -> anyhow::Result<bool> {
        match self {
            Self::Maildir { root } => {
                let Some(path) = maildir_file(root, message.key)? else { return Ok(false) };
                let name = path.file_name().context("a Maildir file without a name")?;
                let target = match to {
                    // Back into `new/` under the same name, so the daemon finds its record (same key).
                    None => root.join("new").join(message.key),
                    Some(disposition) => {
                        let month = super::month(time::OffsetDateTime::now_utc());
                        let dir = root.join(maildir::folder(disposition, &month)).join("cur");
                        std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create {}", dir.display()))?;
                        dir.join(name)
                    }
                };
                std::fs::rename(&path, &target)
                    .with_context(|| format!("Failed to move {} to {}", path.display(), target.display()))?;
                Ok(true)
            }
            Self::Imap { config, base_dir, max_bytes } => {
                let sha256 = imap_digest(message)?;
                let dest = match to {
                    None => config.folder.clone(),
                    Some(disposition) => {
                        let folder = match disposition {
                            Disposition::Done => &config.done_folder,
                            Disposition::Ignored => &config.ignored_folder,
                            Disposition::SetAside => &config.set_aside_folder,
                        };
                        // Filed like the daemon files it: by month where it does.
                        let month = super::month(time::OffsetDateTime::now_utc());
                        if disposition.by_month() { format!("{folder}/{month}") } else { folder.clone() }
                    }
                };
                super::imap::aside::move_out(config, base_dir, *max_bytes, sha256, &dest).await
            }
        }
    }
}

fn imap_digest<'a>(message: Named<'a>) -> anyhow::Result<&'a str> {
    message.sha256.context(
        "keypost has no digest of this message (it was too large to fetch, or set aside by an older keypost): \
         move it in your mail client instead",
    )
}

/// The set-aside file whose key (name before the `:2,` flags) is `key`.
fn maildir_file(root: &Path, key: &str) -> anyhow::Result<Option<PathBuf>> {
    let aside = root.join(maildir::folder(Disposition::SetAside, ""));
    for sub in ["cur", "new"] {
        let dir = aside.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(anyhow::Error::new(err).context(format!("Failed to list {}", dir.display()))),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.split_once(':').map_or(name.as_str(), |(k, _)| k) == key {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}
