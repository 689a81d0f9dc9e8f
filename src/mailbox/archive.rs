//! Past order mail for `keypost replay`: an mbox file, a Maildir, or a folder of the configured IMAP account,
//! read one message at a time and never changed (nothing is moved, flagged or deleted). An mbox is streamed in
//! constant memory; a Maildir is listed, then read file by file; an IMAP folder is fetched in small chunks.
use std::collections::VecDeque;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::imap::{ArchiveFolder, mail_key};
use super::{ImapConfig, MailContent, RawMail};

pub mod mbox;

/// IMAP messages fetched per command.
const IMAP_CHUNK: usize = 50;

/// Where the archive is.
#[derive(Debug, Clone)]
pub enum ArchiveSpec {
    /// A file (mbox) or a folder (Maildir, with `cur/` or `new/`).
    Path(PathBuf),
    /// A folder of the configured IMAP account.
    Imap { config: Box<ImapConfig>, base_dir: PathBuf, folder: String },
}

/// An open archive, handing out one message at a time.
pub struct Archive {
    name: String,
    kind: Kind,
    max_bytes: u64,
}

enum Kind {
    Mbox { reader: mbox::MboxReader<BufReader<std::fs::File>>, size: u64 },
    Maildir { files: VecDeque<(String, PathBuf)>, total: u64 },
    Imap { folder: Box<ArchiveFolder>, uids: VecDeque<u32>, fetched: VecDeque<RawMail>, total: u64 },
}

/// How far the reading is: `done` of `total` (bytes for an mbox, messages otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl Archive {
    pub async fn open(spec: &ArchiveSpec, max_bytes: u64) -> anyhow::Result<Self> {
        match spec {
            ArchiveSpec::Path(path) if path.is_dir() => Self::maildir(path, max_bytes),
            ArchiveSpec::Path(path) => {
                let file = std::fs::File::open(path).with_context(|| format!("Failed to open {}", path.display()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let reader = mbox::MboxReader::new(BufReader::with_capacity(64 * 1024, file), max_bytes);
                Ok(Self { name: format!("mbox:{}", path.display()), kind: Kind::Mbox { reader, size }, max_bytes })
            }
            ArchiveSpec::Imap { config, base_dir, folder } => {
                let (archive, uids) = ArchiveFolder::open(config, base_dir, folder).await?;
                let total = uids.len() as u64;
                let kind = Kind::Imap { folder: Box::new(archive), uids: uids.into(), fetched: VecDeque::new(), total };
                Ok(Self { name: format!("imap:{folder}"), kind, max_bytes })
            }
        }
    }

    fn maildir(path: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let dir = path.join(sub);
            if !dir.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&dir).with_context(|| format!("Failed to list {}", dir.display()))? {
                let entry = entry?;
                if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                    files.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
                }
            }
        }
        anyhow::ensure!(
            path.join("cur").is_dir() || path.join("new").is_dir(),
            "{} is a folder but not a Maildir (no cur/ or new/)",
            path.display()
        );
        // Maildir names start with the delivery time: name order is (nearly) arrival order, and stable.
        files.sort();
        let total = files.len() as u64;
        let name = format!("maildir:{}", path.display());
        Ok(Self { name, kind: Kind::Maildir { files: files.into(), total }, max_bytes })
    }

    /// `mbox:/path`, `maildir:/path` or `imap:FOLDER`: the source's name in labels and the state.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn progress(&self) -> Progress {
        match &self.kind {
            Kind::Mbox { reader, size } => Progress { done: reader.consumed(), total: *size },
            Kind::Maildir { files, total } => Progress { done: total - files.len() as u64, total: *total },
            Kind::Imap { uids, fetched, total, .. } => {
                Progress { done: total - (uids.len() + fetched.len()) as u64, total: *total }
            }
        }
    }

    /// The next message (key: the mbox message number, the Maildir file name, `UIDVALIDITY:UID`), or `None`.
    pub async fn next(&mut self) -> anyhow::Result<Option<RawMail>> {
        let max_bytes = self.max_bytes;
        match &mut self.kind {
            Kind::Mbox { reader, .. } => {
                let message = reader.next_message().context("Failed to read the mbox")?;
                Ok(message.map(|m| RawMail { key: m.number.to_string(), content: m.content }))
            }
            Kind::Maildir { files, .. } => {
                let Some((name, path)) = files.pop_front() else { return Ok(None) };
                let size = std::fs::metadata(&path).with_context(|| format!("Failed to read {}", path.display()))?;
                let content = if size.len() > max_bytes {
                    MailContent::TooLarge { size: size.len() }
                } else {
                    MailContent::Bytes(
                        std::fs::read(&path).with_context(|| format!("Failed to read {}", path.display()))?,
                    )
                };
                Ok(Some(RawMail { key: name, content }))
            }
            Kind::Imap { folder, uids, fetched, .. } => {
                if fetched.is_empty() && !uids.is_empty() {
                    let chunk: Vec<u32> = uids.drain(..uids.len().min(IMAP_CHUNK)).collect();
                    let uidvalidity = folder.uidvalidity();
                    for (uid, content) in folder.fetch(&chunk, max_bytes).await? {
                        fetched.push_back(RawMail { key: mail_key(uidvalidity, uid), content });
                    }
                }
                Ok(fetched.pop_front())
            }
        }
    }

    /// Logs out of an IMAP folder; nothing to do for files.
    pub async fn close(self) {
        if let Kind::Imap { folder, .. } = self.kind {
            folder.close().await;
        }
    }
}
