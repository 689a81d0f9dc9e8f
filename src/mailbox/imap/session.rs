//! One logged-in session with the watched folder selected: the IMAP commands the source needs, each under the
//! command timeout. Any error leaves the session unusable; the caller throws it away.
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use async_imap::types::Fetch;
use futures::TryStreamExt;

use super::connect::{Endpoint, ImapSession, within};
use super::uids::{MAX_UIDS_PER_COMMAND, server_folder, uid_set};

/// What the server offers that changes how the source works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub idle: bool,
    pub r#move: bool,
    pub uidplus: bool,
}

/// The folder's identity and where its next UID will start, as the server reports them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    /// `None` from a server that does not report it: then the search runs to the highest possible UID.
    pub uidnext: Option<u32>,
}

fn folder_state(mailbox: &async_imap::types::Mailbox) -> anyhow::Result<FolderState> {
    let uidvalidity = mailbox.uid_validity.context("SELECT returned no UIDVALIDITY")?;
    Ok(FolderState { uidvalidity, uidnext: mailbox.uid_next })
}

pub struct Conn {
    pub session: ImapSession,
    pub caps: Caps,
    pub timeout: Duration,
    /// The server's hierarchy delimiter (`.` on Maildir++ Dovecot), used for configured `a/b` paths.
    pub delimiter: Option<String>,
    /// The watched folder in the server's spelling.
    pub folder: String,
    pub selected: FolderState,
    /// Destination folders known to exist.
    known_folders: HashSet<String>,
    /// Set while a command is on the wire: a session whose future was dropped mid-command is not reused.
    pub busy: bool,
}

impl Conn {
    /// Logs in, reads capabilities and the delimiter, and selects `folder` (a configured `a/b` path).
    pub async fn open(endpoint: &Endpoint, folder: &str) -> anyhow::Result<Self> {
        let mut session = endpoint.open().await?;
        let t = endpoint.timeout;
        let caps = within(t, "CAPABILITY", session.capabilities()).await?;
        let caps = Caps { idle: caps.has_str("IDLE"), r#move: caps.has_str("MOVE"), uidplus: caps.has_str("UIDPLUS") };
        let delimiter = delimiter(&mut session, t).await?;
        let folder = server_folder(folder, delimiter.as_deref());
        let mailbox = within(t, &format!("SELECT {folder}"), session.select(&folder)).await?;
        let selected = folder_state(&mailbox)?;
        let known_folders = HashSet::new();
        Ok(Self { session, caps, timeout: t, delimiter, folder, selected, known_folders, busy: false })
    }

    /// SELECTs the folder again for its current UIDVALIDITY and UIDNEXT. Not NOOP + STATUS: a selected folder
    /// keeps its old view in Dovecot (STATUS then repeats the UIDVALIDITY of a folder deleted and re-created
    /// meanwhile), and unsolicited EXISTS can be missed.
    pub async fn refresh(&mut self) -> anyhow::Result<FolderState> {
        let mailbox =
            within(self.timeout, &format!("SELECT {}", self.folder), self.session.select(&self.folder)).await?;
        self.drain_unsolicited();
        self.selected = folder_state(&mailbox)?;
        Ok(self.selected)
    }

    /// Confirms the session still answers: a NOOP, checked for its tagged OK. async-imap ends a SEARCH or FETCH
    /// answer at the end of the stream without an error, so a server that went away mid-answer (a restart) reads
    /// as "nothing more there"; nothing such an answer decided may be kept before this.
    pub async fn confirm(&mut self) -> anyhow::Result<()> {
        within(self.timeout, "NOOP", self.session.run_command_and_check_ok("NOOP")).await?;
        self.drain_unsolicited();
        Ok(())
    }

    /// UIDs in `first..=last` still in the folder, ascending. Without UIDPLUS, messages this source already
    /// copied away stay behind flagged \Deleted, so they are left out.
    pub async fn search(&mut self, first: u32, last: u32) -> anyhow::Result<Vec<u32>> {
        if first > last || first == 0 {
            return Ok(Vec::new());
        }
        let undeleted = if self.caps.uidplus { "" } else { " UNDELETED" };
        let command = format!("UID SEARCH UID {first}:{last}{undeleted}");
        let found = within(self.timeout, "UID SEARCH", self.checked_search(&command)).await?;
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| (first..=last).contains(uid)).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// UID SEARCH, read here rather than by async-imap's `uid_search`: that one returns what it collected when the
    /// answer ends at the end of the stream or with a tagged NO or BAD, and an empty result moves the cursor past
    /// every message below UIDNEXT. Only a tagged OK makes the result.
    async fn checked_search(&mut self, command: &str) -> anyhow::Result<Vec<u32>> {
        use async_imap::imap_proto::{MailboxDatum, Response, Status};
        let tag = self.session.run_command(command).await?;
        let mut uids = Vec::new();
        loop {
            let Some(answer) = self.session.read_response().await? else {
                bail!("the connection closed before the search was answered");
            };
            match answer.parsed() {
                Response::MailboxData(MailboxDatum::Search(found)) => uids.extend_from_slice(found),
                Response::Done { tag: done, status, outcome, .. } if *done == tag => {
                    if *status != Status::Ok {
                        let said = outcome.information.as_deref().unwrap_or_default();
                        bail!("the server answered {}: {said}", format!("{status:?}").to_uppercase());
                    }
                    return Ok(uids);
                }
                Response::Data { status: Status::Bye, outcome } => {
                    let said = outcome.information.as_deref().unwrap_or_default();
                    bail!("the server is closing the connection: {said}");
                }
                // Unsolicited EXISTS, EXPUNGE, FLAGS...: not trusted here (UIDNEXT is checked on each SELECT).
                _ => {}
            }
        }
    }

    /// RFC822.SIZE of each UID (UIDs gone meanwhile are missing from the map).
    pub async fn sizes(&mut self, uids: &[u32]) -> anyhow::Result<BTreeMap<u32, u64>> {
        let mut sizes = BTreeMap::new();
        for chunk in uids.chunks(MAX_UIDS_PER_COMMAND) {
            for fetch in self.fetch(chunk, "(UID RFC822.SIZE)").await? {
                if let (Some(uid), Some(size)) = (fetch.uid, fetch.size) {
                    sizes.insert(uid, u64::from(size));
                }
            }
        }
        Ok(sizes)
    }

    /// Full messages, without setting \Seen.
    pub async fn bodies(&mut self, uids: &[u32]) -> anyhow::Result<BTreeMap<u32, Vec<u8>>> {
        let mut bodies = BTreeMap::new();
        for chunk in uids.chunks(MAX_UIDS_PER_COMMAND) {
            for fetch in self.fetch(chunk, "(UID BODY.PEEK[])").await? {
                if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                    bodies.insert(uid, body.to_vec());
                }
            }
        }
        Ok(bodies)
    }

    async fn fetch(&mut self, uids: &[u32], query: &str) -> anyhow::Result<Vec<Fetch>> {
        let set = uid_set(uids);
        let session = &mut self.session;
        within(self.timeout, "UID FETCH", async { session.uid_fetch(&set, query).await?.try_collect().await }).await
    }

    /// Moves messages (sorted, distinct, at most [`MAX_UIDS_PER_COMMAND`]) into `dest` (a configured path) with one
    /// command, creating the folder when missing. Nothing is deleted: without MOVE they are copied first, and
    /// only those UIDs are expunged (never a plain EXPUNGE or CLOSE, which would also remove other clients'
    /// \Deleted messages). UIDs already gone are skipped by the server.
    pub async fn move_uids(&mut self, uids: &[u32], dest: &str) -> anyhow::Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let dest = server_folder(dest, self.delimiter.as_deref());
        self.ensure_folder(&dest).await?;
        let set = uid_set(uids);
        let t = self.timeout;
        if self.caps.r#move {
            return within(t, "UID MOVE", self.session.uid_mv(&set, &dest)).await;
        }
        within(t, "UID COPY", self.session.uid_copy(&set, &dest)).await?;
        let session = &mut self.session;
        within(t, "UID STORE", async {
            session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        if self.caps.uidplus {
            let session = &mut self.session;
            within(t, "UID EXPUNGE", async { session.uid_expunge(&set).await?.try_collect::<Vec<_>>().await }).await?;
        }
        Ok(())
    }

    async fn ensure_folder(&mut self, dest: &str) -> anyhow::Result<()> {
        if self.known_folders.contains(dest) {
            return Ok(());
        }
        let session = &mut self.session;
        let existing: Vec<async_imap::types::Name> =
            within(self.timeout, "LIST", async { session.list(Some(""), Some(dest)).await?.try_collect().await })
                .await?;
        if !existing.iter().any(|name| name.name() == dest) {
            within(self.timeout, &format!("CREATE {dest}"), self.session.create(dest)).await?;
            tracing::info!(folder = dest, "Created IMAP folder.");
        }
        self.known_folders.insert(dest.to_owned());
        Ok(())
    }

    /// Unsolicited EXISTS/EXPUNGE are not trusted (UIDNEXT is re-checked); drop them so the channel never fills.
    pub fn drain_unsolicited(&mut self) {
        while self.session.unsolicited_responses.try_recv().is_ok() {}
    }

    pub async fn logout(mut self) {
        if let Err(err) = within(self.timeout, "LOGOUT", self.session.logout()).await {
            tracing::debug!("IMAP logout failed: {err:#}");
        }
    }
}

/// The hierarchy delimiter, from `LIST "" ""` or else from INBOX's entry (which every server has).
async fn delimiter(session: &mut ImapSession, t: Duration) -> anyhow::Result<Option<String>> {
    for pattern in ["", "INBOX"] {
        let names: Vec<async_imap::types::Name> =
            within(t, "LIST", async { session.list(Some(""), Some(pattern)).await?.try_collect().await }).await?;
        if let Some(delimiter) = names.iter().find_map(|name| name.delimiter()) {
            tracing::debug!(pattern, delimiter, "IMAP hierarchy delimiter.");
            return Ok(Some(delimiter.to_owned()));
        }
    }
    Ok(None)
}

/// How an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEnd {
    /// The server sent something (EXISTS, EXPUNGE, ...): mail may have arrived.
    News,
    /// The deadline passed; IDLE must be re-issued before the server's 30-minute limit anyway.
    Deadline,
}

impl Conn {
    /// IDLE until the server reports a change or `limit` passes. `limit` is a hard deadline: async-imap's own
    /// timeout counts silence, and the server's keepalives (`* OK Still here`) reset it.
    pub async fn idle(self, limit: Duration) -> anyhow::Result<(Self, IdleEnd)> {
        let Conn { session, caps, timeout, delimiter, folder, selected, known_folders, busy } = self;
        let mut handle = session.idle();
        within(timeout, "start IDLE", handle.init()).await?;
        let (wait, stop) = handle.wait_with_timeout(limit);
        let outcome = tokio::time::timeout(limit, wait).await;
        drop(stop);
        let end = match outcome {
            Err(_) | Ok(Ok(async_imap::extensions::idle::IdleResponse::Timeout)) => IdleEnd::Deadline,
            Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => IdleEnd::News,
            // Nobody interrupts this IDLE: an "interrupt" means the stream ended.
            Ok(Ok(async_imap::extensions::idle::IdleResponse::ManualInterrupt)) => {
                bail!("IMAP connection closed during IDLE")
            }
            Ok(Err(err)) => return Err(anyhow::Error::new(err).context("IMAP IDLE failed")),
        };
        let session = within(timeout, "end IDLE", handle.done()).await?;
        Ok((Conn { session, caps, timeout, delimiter, folder, selected, known_folders, busy }, end))
    }
}
