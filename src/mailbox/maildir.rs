//! A local Maildir as a [`super::Source`]: `new/` and `cur/` are the queue; settled messages move to Maildir++
//! subfolders (`.keypost.done.2026-11`, `.keypost.ignored.2026-11` by month, `.keypost.set-aside`). Nothing is
//! ever deleted.
//! A message's key is its file name up to the `:2,` flags, so a mail client moving it from `new/` to `cur/`
//! does not make it a different message.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{Disposition, MailContent, MaildirConfig, RawMail, Source};

/// The Maildir++ subfolder a message settled in `month` (`2026-11`) goes to.
pub fn folder(disposition: Disposition, month: &str) -> String {
    let folder = match disposition {
        Disposition::Done => ".keypost.done",
        Disposition::Ignored => ".keypost.ignored",
        Disposition::SetAside => ".keypost.set-aside",
    };
    if disposition.by_month() { format!("{folder}.{month}") } else { folder.to_owned() }
}

#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    max_bytes: u64,
    poll: Duration,
    /// Each key handed out and not settled since, with where it was found (so `settle` need not search). A
    /// fetch passes over these (messages retrying later) while other mail waits, so a pass's worth of them
    /// cannot hold newer orders back; with nothing else waiting they are handed out again (as the IMAP cursor
    /// does with its unsettled UIDs).
    located: HashMap<String, PathBuf>,
    /// The last fetch stopped at the byte budget ([`super::pass_bytes`]) with more waiting.
    cut: bool,
}

impl Maildir {
    /// Opens the Maildir (relative paths against `base_dir`), creating `new/`, `cur/` and `tmp/` when missing.
    /// With `seed_from` set and the Maildir absent, it is first filled with a copy of that one (the demo).
    pub fn open(config: &MaildirConfig, base_dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        let root = base_dir.join(&config.path);
        if let Some(seed) = &config.seed_from
            && !root.exists()
        {
            seed_copy(&base_dir.join(seed), &root)
                .with_context(|| format!("Failed to seed {} from {}", root.display(), seed.display()))?;
        }
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("Failed to create {}/{sub}", root.display()))?;
        }
        let poll = Duration::from_secs(config.poll_interval_secs.max(1));
        Ok(Self { root, max_bytes, poll, located: HashMap::new(), cut: false })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waiting files with their key, modification time and size, oldest first.
    fn waiting(&self) -> anyhow::Result<Vec<(SystemTime, String, PathBuf, u64)>> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            let entries = std::fs::read_dir(&dir).with_context(|| format!("Failed to list {}", dir.display()))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if name.starts_with('.') || !is_file {
                    continue;
                }
                let metadata = entry.metadata().ok();
                let modified = metadata.as_ref().and_then(|m| m.modified().ok()).unwrap_or(SystemTime::UNIX_EPOCH);
                let size = metadata.map_or(0, |m| m.len());
                found.push((modified, message_key(&name).to_owned(), entry.path(), size));
            }
        }
        found.sort();
        Ok(found)
    }

    fn read(&self, path: &Path) -> std::io::Result<MailContent> {
        let size = std::fs::metadata(path)?.len();
        if size > self.max_bytes {
            return Ok(MailContent::TooLarge { size });
        }
        std::fs::read(path).map(MailContent::Bytes)
    }

    fn find(&self, key: &str) -> Option<PathBuf> {
        if let Some(path) = self.located.get(key).filter(|p| p.exists()) {
            return Some(path.clone());
        }
        let waiting = self.waiting().ok()?;
        waiting.into_iter().find(|(_, k, _, _)| k == key).map(|(_, _, path, _)| path)
    }
}

/// The part of a Maildir file name before the `:2,` flags.
fn message_key(name: &str) -> &str {
    name.split_once(':').map_or(name, |(key, _)| key)
}

/// Copies the seed's messages into `new/` in name order, so their modification times keep that order.
fn seed_copy(seed: &Path, root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("new"))?;
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(seed.join(sub)) else { continue };
        let messages = entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_file()));
        files.extend(messages.filter(|e| !e.file_name().to_string_lossy().starts_with('.')).map(|e| e.path()));
    }
    files.sort_by_key(|path| path.file_name().map(ToOwned::to_owned));
    for path in files {
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, root.join("new").join(name))?;
        }
    }
    Ok(())
}

impl Source for Maildir {
    fn name(&self) -> String {
        "maildir".to_owned()
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        let mut out = Vec::new();
        let mut waiting = self.waiting()?;
        // Keys gone from the folder (moved by a mail client) are forgotten.
        let present: HashSet<&str> = waiting.iter().map(|(_, key, _, _)| key.as_str()).collect();
        self.located.retain(|key, _| present.contains(key.as_str()));
        if waiting.iter().any(|(_, key, _, _)| !self.located.contains_key(key)) {
            waiting.retain(|(_, key, _, _)| !self.located.contains_key(key));
        } else {
            self.located.clear();
        }
        waiting.truncate(max);
        let held = waiting.iter().map(|&(_, _, _, size)| if size <= self.max_bytes { size } else { 0 });
        let taken = super::within_budget(held, super::pass_bytes(self.max_bytes));
        self.cut = taken < waiting.len();
        waiting.truncate(taken);
        for (_, key, path, _) in waiting {
            match self.read(&path) {
                Ok(content) => {
                    self.located.insert(key.clone(), path);
                    out.push(RawMail { key, content });
                }
                // Moved away or unreadable between listing and reading: it is seen again next time.
                Err(err) => tracing::warn!(file = %path.display(), "Cannot read a waiting message: {err}"),
            }
        }
        Ok(out)
    }

    fn more_waiting(&self) -> bool {
        self.cut
    }

    /// One rename per message: a Maildir has no cheaper batch.
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        super::settle_one_by_one(self, settled).await
    }

    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        let target_dir = self.root.join(folder(disposition, &super::month(time::OffsetDateTime::now_utc())));
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(target_dir.join(sub))
                .with_context(|| format!("Failed to create {}", target_dir.display()))?;
        }
        let Some(path) = self.find(key) else {
            // Already moved (a settle repeated after a crash): nothing left to do.
            return Ok(());
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| key.to_owned());
        let name = if name.contains(":2,") { name } else { format!("{name}:2,S") };
        let target = target_dir.join("cur").join(name);
        std::fs::rename(&path, &target)
            .with_context(|| format!("Failed to move {} to {}", path.display(), target.display()))?;
        self.located.remove(key);
        Ok(())
    }

    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        if std::mem::take(&mut self.cut) {
            return Ok(());
        }
        tokio::time::sleep(self.poll.min(max_wait)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &str) -> MaildirConfig {
        MaildirConfig { path: path.into(), poll_interval_secs: 1, seed_from: None }
    }

    #[tokio::test]
    async fn messages_are_handed_out_oldest_first_and_settled_into_folders_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(&config("mail"), dir.path(), 10).unwrap();
        std::fs::write(dir.path().join("mail/new/1.a"), "first").unwrap();
        std::fs::write(dir.path().join("mail/cur/2.b:2,S"), "second").unwrap();
        std::fs::write(dir.path().join("mail/new/3.c"), "this one is too large").unwrap();
        let got = maildir.fetch_new(10).await.unwrap();
        let keys: Vec<_> = got.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys.len(), 3);
        assert!(got.contains(&RawMail { key: "2.b".into(), content: MailContent::Bytes(b"second".to_vec()) }));
        assert!(got.contains(&RawMail { key: "3.c".into(), content: MailContent::TooLarge { size: 21 } }));
        maildir.settle("2.b", Disposition::Ignored).await.unwrap();
        maildir.settle("1.a", Disposition::Done).await.unwrap();
        maildir.settle("1.a", Disposition::Done).await.unwrap();
        assert_eq!(maildir.fetch_new(10).await.unwrap().len(), 1);
        let month = super::super::month(time::OffsetDateTime::now_utc());
        assert!(dir.path().join(format!("mail/.keypost.done.{month}/cur/1.a:2,S")).exists());
        assert!(dir.path().join(format!("mail/.keypost.ignored.{month}/cur/2.b:2,S")).exists());
    }

    #[tokio::test]
    async fn a_pass_stops_at_its_byte_budget_and_the_wait_after_it_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = MaildirConfig { poll_interval_secs: 3600, ..config("mail") };
        // A budget of four messages at the limit of 100 bytes: 400.
        let mut maildir = Maildir::open(&config, dir.path(), 100).unwrap();
        for n in 0..6 {
            std::fs::write(dir.path().join(format!("mail/new/{n}.m")), [b'x'; 90]).unwrap();
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + n);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("mail/new/{n}.m")))
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        let first = maildir.fetch_new(10).await.unwrap();
        let keys: Vec<_> = first.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["0.m", "1.m", "2.m", "3.m"], "as many as fit in 400 bytes");
        assert!(maildir.more_waiting());
        for mail in &first {
            maildir.settle(&mail.key, Disposition::Done).await.unwrap();
        }
        let waited = tokio::time::timeout(Duration::from_secs(60), maildir.wait_for_new(Duration::from_secs(3600)));
        waited.await.expect("no poll interval after a batch cut short").unwrap();
        let rest = maildir.fetch_new(10).await.unwrap();
        assert_eq!((rest.len(), maildir.more_waiting()), (2, false));
        assert_eq!(maildir.fetch_new(1).await.unwrap().len(), 1, "a count below the budget is not a cut");
        assert!(!maildir.more_waiting());
    }

    #[tokio::test]
    async fn messages_left_for_later_do_not_hold_back_newer_mail_and_come_back_when_nothing_else_waits() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(&config("mail"), dir.path(), 100).unwrap();
        for n in 0..5 {
            let path = dir.path().join(format!("mail/new/{n}.m"));
            std::fs::write(&path, "x").unwrap();
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + n);
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
        }
        let keys = |mails: Vec<RawMail>| mails.into_iter().map(|m| m.key).collect::<Vec<_>>();
        // The two oldest are retrying (not settled): the next fetch goes past them.
        assert_eq!(keys(maildir.fetch_new(2).await.unwrap()), ["0.m", "1.m"]);
        assert_eq!(keys(maildir.fetch_new(2).await.unwrap()), ["2.m", "3.m"]);
        maildir.settle("2.m", Disposition::Done).await.unwrap();
        maildir.settle("3.m", Disposition::Done).await.unwrap();
        // One moved away by a mail client meanwhile: forgotten, not waited for.
        std::fs::rename(dir.path().join("mail/new/1.m"), dir.path().join("elsewhere")).unwrap();
        assert_eq!(keys(maildir.fetch_new(2).await.unwrap()), ["4.m"]);
        // Nothing new: the unsettled ones are handed out again, oldest first.
        assert_eq!(keys(maildir.fetch_new(2).await.unwrap()), ["0.m", "4.m"]);
        assert_eq!(keys(maildir.fetch_new(2).await.unwrap()), ["0.m", "4.m"], "and again while they stay");
    }

    #[tokio::test]
    async fn a_missing_maildir_is_seeded_once_from_the_configured_copy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("seed/new")).unwrap();
        std::fs::write(dir.path().join("seed/new/1.a"), "x").unwrap();
        let config = MaildirConfig { seed_from: Some("seed".into()), ..config("run/mail") };
        let mut maildir = Maildir::open(&config, dir.path(), 1024).unwrap();
        maildir.settle("1.a", Disposition::Done).await.unwrap();
        let mut again = Maildir::open(&config, dir.path(), 1024).unwrap();
        assert!(again.fetch_new(10).await.unwrap().is_empty(), "an existing Maildir is not seeded again");
        assert!(dir.path().join("seed/new/1.a").exists(), "the seed is copied, not moved");
    }
}
