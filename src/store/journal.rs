//! The send journal, `state/sent.journal`: one line per message the SMTP server accepted, written the moment it
//! answered, before the send's record reaches the database.
//!
//! Why: a send's record used to be its own durable commit (an fsync, a few milliseconds), and a kill in that window
//! repeats the reply after the restart. The journal line is one `write` to a file opened for appending: the kernel
//! has it as soon as the call returns, so it survives the process being killed (not a power cut: see below) and
//! costs microseconds. The records of a whole group of sends then go into the database with one durable commit
//! ([`super::Store::commit_sends`]), after which the lines are no longer needed and the file is emptied.
//!
//! Invariants:
//! - A line is appended only after the server accepted the message, and only for a message in the durable outbox.
//! - The file is emptied only when every line in it belongs to a group whose durable commit has returned.
//! - On open, before anything can read the outbox, every line whose message is still queued is recorded as sent
//!   with one durable commit ([`super::Store::open`]); lines for messages no longer queued (their commit landed
//!   just before a crash) are skipped. A line cut short (a power cut during the write) or not understood is
//!   skipped: at worst that message is sent again, as without the journal.
//! - A power cut can lose lines the kernel had not written out yet; those replies are sent again after the
//!   restart, each with its first Message-ID, as before the journal. Lines are never fsynced on their own: the
//!   group's durable commit that follows is what makes the sends durable.
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::records::{OrderRecord, OutboxEntry, Purpose, ReplyState};
use super::{Change, Store, StoreError};

/// The journal's file in the state folder.
pub(super) const FILE: &str = "sent.journal";

/// One accepted send read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// Unix seconds when the server accepted it.
    pub at: i64,
    pub message_id: String,
}

/// The open journal.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Lines written since the file was last emptied whose group has not been committed yet.
    unfolded: usize,
}

impl Journal {
    /// Opens (creating 0600) the journal in `state_dir` and returns what an earlier process left in it.
    pub(super) fn open(state_dir: &Path) -> std::io::Result<(Self, Vec<Line>)> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = state_dir.join(FILE);
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let left = parse(&text);
        Ok((Self { path, inner: Mutex::new(Inner { file, unfolded: 0 }) }, left))
    }

    /// Appends one accepted send with a single `write`, so a kill leaves the line whole or absent.
    /// A Message-ID that could not be read back as one line is refused (the caller then commits that send on its
    /// own).
    pub(super) fn append(&self, at: i64, message_id: &str) -> std::io::Result<()> {
        if message_id.is_empty() || message_id.chars().any(char::is_whitespace) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "Message-ID holds white space"));
        }
        let line = format!("{at} {message_id}\n");
        let mut inner = self.lock();
        inner.file.write_all(line.as_bytes())?;
        inner.unfolded += 1;
        Ok(())
    }

    /// The durable commit of `count` appended lines has returned: once no line is waiting any more, the file is
    /// emptied (so it stays a few kilobytes, and the next open has nothing to do).
    pub(super) fn folded(&self, count: usize) -> std::io::Result<()> {
        let mut inner = self.lock();
        inner.unfolded = inner.unfolded.saturating_sub(count);
        if inner.unfolded == 0 {
            inner.file.set_len(0)?;
        }
        Ok(())
    }

    /// Empties the file after [`super::Store::open`] recorded what an earlier process left in it.
    pub(super) fn clear(&self) -> std::io::Result<()> {
        self.lock().file.set_len(0)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the file half-updated (each call is one syscall).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store {
    /// Protocol step 3, first half: notes that the server accepted `message_id` at `at`, in the journal (one
    /// `write`, no fsync). After this a crash of the process no longer sends it again; the send's record follows
    /// in its group's [`Store::commit_sends`]. An error means the note was not written: the caller must then
    /// commit that send's record durably on its own.
    pub fn journal_sent(&self, at: i64, message_id: &str) -> std::io::Result<()> {
        match &self.journal {
            Some(journal) => journal.append(at, message_id),
            None => Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the state was opened only to read")),
        }
    }

    /// Adds to `change` the record of `entry` sent at `at`: out of the outbox, an audit line, and for a reply its
    /// order line's reply state `sent`. Returns that order line as it was before (for the reply's latency).
    pub fn record_sent(
        &self,
        entry: &OutboxEntry,
        at: i64,
        change: &mut Change,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let id = &entry.outgoing.message_id;
        change.unqueue(id);
        change.audit(at, "sent", id, format!("{} recipient(s)", entry.outgoing.to.len()));
        let Purpose::Reply { provider, order_id, line } = &entry.purpose else { return Ok(None) };
        let Some(before) = self.order_line(provider, order_id.as_str(), *line)? else { return Ok(None) };
        let mut record = before.clone();
        record.reply = ReplyState::Sent { message_id: id.clone(), at };
        change.put_reply_state(&record);
        Ok(Some(before))
    }

    /// Protocol step 3, second half: the records of a group of sends (and of failed tries) in one durable commit.
    /// `journaled` is how many of them [`Store::journal_sent`] noted; once no noted send waits for its commit any
    /// more, the journal is emptied.
    pub async fn commit_sends(&self, changes: Vec<Change>, journaled: usize) -> Result<(), StoreError> {
        if !changes.is_empty() {
            self.write(changes)?;
        }
        // An error is harmless: the lines are skipped on the next open, their messages no longer being queued.
        if journaled > 0
            && let Some(journal) = &self.journal
            && let Err(err) = journal.folded(journaled)
        {
            tracing::warn!(file = %journal.path().display(), "Cannot empty the send journal: {err}");
        }
        Ok(())
    }

    /// On open: records as sent every message an earlier process noted in the journal and did not commit,
    /// durably, before anything reads the outbox.
    pub(super) fn fold_journal(&self, left: &[Line]) -> Result<(), StoreError> {
        let mut change = Change::new();
        let mut folded = 0_usize;
        for line in left {
            let Some(entry) = self.outbox_entry(&line.message_id)? else { continue };
            self.record_sent(&entry, line.at, &mut change)?;
            change.audit(line.at, "journal", &line.message_id, "sent before a restart; recorded from the send journal");
            folded += 1;
        }
        if folded > 0 {
            self.write(vec![change])?;
            tracing::info!(sends = folded, "Recorded sends from the journal that a restart interrupted.");
        }
        Ok(())
    }
}

/// Whether `state_dir` has a journal with lines in it (an earlier process's sends not yet recorded), which a
/// read-only open cannot record.
pub(super) fn has_lines(state_dir: &Path) -> bool {
    std::fs::metadata(state_dir.join(FILE)).is_ok_and(|meta| meta.len() > 0)
}

/// Every whole, well-formed line; a line without its newline (cut by a power cut) or garbled is skipped.
fn parse(text: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(end);
        rest = after.get(1..).unwrap_or_default();
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let Some((at, message_id)) = line.split_once(' ') else { continue };
        let Ok(at) = at.parse::<i64>() else { continue };
        if message_id.is_empty() || message_id.chars().any(char::is_whitespace) {
            continue;
        }
        lines.push(Line { at, message_id: message_id.to_owned() });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_are_read_back_and_a_cut_or_garbled_one_is_skipped() {
        let text = b"1700000000 <a@x>\nnot-a-number <b@x>\n1700000001 <c@x>\n\xff\xfe <d@x>\n1700000002 <e@";
        let lines = parse(text);
        assert_eq!(
            lines,
            [
                Line { at: 1_700_000_000, message_id: "<a@x>".into() },
                Line { at: 1_700_000_001, message_id: "<c@x>".into() },
            ]
        );
    }

    #[test]
    fn the_file_is_emptied_only_when_every_appended_line_was_folded() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, left) = Journal::open(dir.path()).unwrap();
        assert!(left.is_empty());
        journal.append(10, "<a@x>").unwrap();
        journal.append(11, "<b@x>").unwrap();
        journal.folded(1).unwrap();
        let size = std::fs::metadata(journal.path()).unwrap().len();
        assert!(size > 0, "one line is still waiting for its commit");
        journal.folded(1).unwrap();
        assert_eq!(std::fs::metadata(journal.path()).unwrap().len(), 0);
        // Appends after emptying start at the new end.
        journal.append(12, "<c@x>").unwrap();
        drop(journal);
        let (_journal, left) = Journal::open(dir.path()).unwrap();
        assert_eq!(left, [Line { at: 12, message_id: "<c@x>".into() }]);
    }

    #[test]
    fn a_message_id_with_white_space_is_refused_rather_than_written_as_two_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert!(journal.append(1, "<a b@x>").is_err());
        assert!(journal.append(1, "<a\n@x>").is_err());
        assert_eq!(std::fs::metadata(journal.path()).unwrap().len(), 0);
    }
}
