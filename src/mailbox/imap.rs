//! An IMAP folder as a [`super::Source`]: IDLE with a hard deadline, polling as fallback, MOVE to folders.
//!
//! Messages are handed out oldest first in bounded batches, keyed `"{uidvalidity}:{uid}"`, and settled in
//! batches too: one `UID MOVE` per destination folder and UID set. Done and ignored mail goes to a subfolder
//! per month (`keypost/done/2026-11`), created when first needed. A cursor remembers
//! the next UID to look at, so a large backlog streams through without re-downloading; messages handed out
//! but never settled are handed out again once nothing newer is waiting, and after every restart (the
//! pipeline's state recognises them). Nothing is ever deleted: settled messages are moved.
//!
//! Connection handling: every method connects when needed. A session that fails while in use is thrown away
//! and the call is retried once on a fresh connection, so a server restart or a dropped idle connection is
//! invisible to the caller. When connecting fails, the call returns the error and the next attempt waits out a
//! jittered backoff (2 s doubling to 80 s) inside the next call: the daemon just logs and calls again.
//! Each call is bounded in time (backoff + command timeouts), and every method may be cancelled (e.g. by a
//! shutdown `select!`): a session whose command was cut off is thrown away, never reused.
//!
//! ```text
//! let mut source = ImapSource::new(imap_config, &loaded.base_dir, config.templates.max_message_bytes)?;
//! loop {
//!     let mails = source.fetch_new(50).await?;        // Err: log, check shutdown, call again
//!     for mail in &mails { /* process, record */ source.settle(&mail.key, disposition).await?; }
//!     if mails.is_empty() { source.wait_for_new(watchdog / 2).await?; }
//!     notifier.watchdog();
//! }
//! ```
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use self::connect::Endpoint;
use self::session::{Conn, FolderState, IdleEnd};
use super::{Disposition, ImapConfig, MailContent, RawMail, Source};
use crate::backoff::Backoff;

mod archive;
pub mod aside;
mod connect;
mod session;
mod uids;

pub use self::archive::ArchiveFolder;
pub use self::connect::tls_connector;
use self::uids::MAX_UIDS_PER_COMMAND;
pub use self::uids::{key as mail_key, parse_key};

/// IDLE is re-issued at least this often: servers may drop an IDLE after 30 minutes.
pub const IDLE_REISSUE: Duration = Duration::from_secs(25 * 60);

/// Reads order emails from one IMAP folder.
pub struct ImapSource {
    ctx: Ctx,
    conn: Option<Conn>,
    cursor: Cursor,
    backoff: Backoff,
    /// When the next connection attempt may start, after a failure.
    retry_at: Option<Instant>,
}

/// What does not change while the source runs.
struct Ctx {
    endpoint: Endpoint,
    user: String,
    folder: String,
    done: String,
    ignored: String,
    set_aside: String,
    idle: bool,
    poll_interval: Duration,
    max_bytes: u64,
}

/// Where fetching continues, for one UIDVALIDITY of the watched folder.
#[derive(Debug, Default)]
struct Cursor {
    uidvalidity: Option<u32>,
    next_uid: u32,
    /// Handed out, not yet settled: handed out again once nothing newer is waiting.
    unsettled: BTreeSet<u32>,
    /// The last fetch stopped at the byte budget ([`super::pass_bytes`]) with more waiting.
    cut: bool,
}

impl ImapSource {
    /// Reads the password and CA file now, so a missing secret stops start-up; connects on first use.
    pub fn new(config: &ImapConfig, base_dir: &Path, max_message_bytes: u64) -> anyhow::Result<Self> {
        let ctx = Ctx {
            endpoint: Endpoint::new(config, base_dir)?,
            user: config.user.clone(),
            folder: config.folder.clone(),
            done: config.done_folder.clone(),
            ignored: config.ignored_folder.clone(),
            set_aside: config.set_aside_folder.clone(),
            idle: config.idle,
            poll_interval: Duration::from_secs(config.poll_interval_secs.max(1)),
            max_bytes: max_message_bytes,
        };
        let cursor = Cursor { next_uid: 1, ..Cursor::default() };
        Ok(Self { ctx, conn: None, cursor, backoff: Backoff::default(), retry_at: None })
    }

    /// Connects now (waiting out any backoff) instead of on first use: lets `keypost run` report a wrong
    /// password or host at start-up.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        self.run("connect", async |_, _, _| Ok(())).await
    }

    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|conn| !conn.busy)
    }

    /// Logs out politely (on shutdown).
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.logout().await;
            info!(host = %self.ctx.endpoint.host, "IMAP disconnected (shutting down).");
        }
    }

    /// Runs `op` on a connected session. A session that fails is thrown away; if it was an old one (maybe
    /// dropped by the server meanwhile), `op` is retried once on a fresh connection.
    async fn run<T>(
        &mut self,
        what: &str,
        mut op: impl AsyncFnMut(&mut Conn, &mut Cursor, &Ctx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if self.conn.as_ref().is_some_and(|conn| conn.busy) {
            self.conn = None;
            info!(host = %self.ctx.endpoint.host, "IMAP session dropped: a command was interrupted.");
        }
        let mut fresh = false;
        loop {
            if self.conn.is_none() {
                self.reconnect().await?;
                fresh = true;
            }
            let conn = self.conn.as_mut().context("IMAP session missing after connecting")?;
            conn.busy = true;
            match op(conn, &mut self.cursor, &self.ctx).await {
                Ok(value) => {
                    conn.busy = false;
                    self.backoff.reset();
                    return Ok(value);
                }
                Err(err) if fresh => {
                    self.conn = None;
                    let delay = self.schedule_retry();
                    warn!(host = %self.ctx.endpoint.host, retry_in_secs = delay.as_secs(),
                        "IMAP session failed: {err:#}; disconnected.");
                    return Err(err.context(format!("Failed to {what} on IMAP")));
                }
                Err(err) => {
                    self.conn = None;
                    warn!(host = %self.ctx.endpoint.host, "IMAP connection lost: {err:#}; reconnecting.");
                }
            }
        }
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
        let endpoint = &self.ctx.endpoint;
        match Conn::open(endpoint, &self.ctx.folder).await {
            Ok(conn) => {
                info!(host = %endpoint.host, port = endpoint.port, folder = %conn.folder, idle = conn.caps.idle,
                    r#move = conn.caps.r#move, uidplus = conn.caps.uidplus, "IMAP connected.");
                self.retry_at = None;
                self.conn = Some(conn);
                Ok(())
            }
            Err(err) => {
                let delay = self.backoff.next_delay();
                self.retry_at = Some(Instant::now() + delay);
                warn!(host = %endpoint.host, port = endpoint.port, retry_in_secs = delay.as_secs(),
                    "IMAP connection failed: {err:#}");
                Err(err.context(format!("Failed to connect to IMAP server {}:{}", endpoint.host, endpoint.port)))
            }
        }
    }

    fn schedule_retry(&mut self) -> Duration {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        delay
    }
}

impl Source for ImapSource {
    fn name(&self) -> String {
        format!("imap:{}@{}/{}", self.ctx.user, self.ctx.endpoint.host, self.ctx.folder)
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.run("fetch new mail", async |conn, cursor, ctx| fetch_batch(conn, cursor, ctx, max).await).await
    }

    fn more_waiting(&self) -> bool {
        self.cursor.cut
    }

    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        self.settle_all(&[(key.to_owned(), disposition)]).await
    }

    /// One `UID MOVE` per destination folder (and per 500 UIDs, `MAX_UIDS_PER_COMMAND`), not one per message.
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        let mut wanted = Vec::with_capacity(settled.len());
        for (key, disposition) in settled {
            let (uidvalidity, uid) = parse_key(key).with_context(|| format!("{key:?} is not an IMAP message key"))?;
            wanted.push((uidvalidity, uid, *disposition));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let month = super::month(time::OffsetDateTime::now_utc());
        let what = format!("settle {} message(s)", wanted.len());
        self.run(&what, async |conn, cursor, ctx| {
            let mut by_folder: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for &(uidvalidity, uid, disposition) in &wanted {
                if conn.selected.uidvalidity != uidvalidity {
                    // The folder was re-created: this message is handed out again under its new key.
                    warn!(uidvalidity, uid, now = conn.selected.uidvalidity, "IMAP message key is stale; not moved.");
                    continue;
                }
                by_folder.entry(ctx.destination(disposition, &month)).or_default().push(uid);
            }
            for (dest, mut uids) in by_folder {
                uids.sort_unstable();
                uids.dedup();
                for chunk in uids.chunks(MAX_UIDS_PER_COMMAND) {
                    conn.move_uids(chunk, &dest).await?;
                    for uid in chunk {
                        cursor.unsettled.remove(uid);
                    }
                    debug!(folder = %dest, count = chunk.len(), "IMAP messages settled.");
                }
            }
            Ok(())
        })
        .await
    }

    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        // The last batch was cut at the byte budget: the rest is waiting (also on a server without UIDNEXT).
        if std::mem::take(&mut self.cursor.cut) {
            return Ok(());
        }
        let started = Instant::now();
        let news =
            self.run("check for new mail", async |conn, cursor, _| Ok(cursor.behind(conn.refresh().await?))).await?;
        let mut remaining = max_wait.saturating_sub(started.elapsed());
        if !self.cursor.unsettled.is_empty() {
            // A message whose move failed (e.g. the server restarted) is handed out again only by a fetch:
            // come back within the poll interval, not the daemon's longest wait.
            remaining = remaining.min(self.ctx.poll_interval);
        }
        if news || remaining.is_zero() {
            return Ok(());
        }
        let idle = self.ctx.idle && self.conn.as_ref().is_some_and(|conn| conn.caps.idle);
        if !idle {
            tokio::time::sleep(remaining.min(self.ctx.poll_interval)).await;
            return Ok(());
        }
        // IDLE owns the session while it runs; if this future is dropped, the next call reconnects.
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        match conn.idle(remaining.min(IDLE_REISSUE)).await {
            Ok((conn, end)) => {
                debug!(news = end == IdleEnd::News, "IMAP IDLE ended.");
                self.conn = Some(conn);
            }
            // "May have arrived": the next call reconnects.
            Err(err) => warn!(host = %self.ctx.endpoint.host, "IMAP connection lost during IDLE: {err:#}."),
        }
        Ok(())
    }
}

impl Ctx {
    /// The configured folder for `disposition`, with the month's subfolder where mail is filed by month.
    fn destination(&self, disposition: Disposition, month: &str) -> String {
        let folder = match disposition {
            Disposition::Done => &self.done,
            Disposition::Ignored => &self.ignored,
            Disposition::SetAside => &self.set_aside,
        };
        if disposition.by_month() { format!("{folder}/{month}") } else { folder.clone() }
    }
}

impl Cursor {
    /// Follows the folder's identity: a new UIDVALIDITY means every UID changed, so scan from the start.
    fn follow(&mut self, state: FolderState, folder: &str) {
        if self.uidvalidity != Some(state.uidvalidity) {
            if let Some(old) = self.uidvalidity {
                warn!(folder, old, new = state.uidvalidity, "IMAP UIDVALIDITY changed; scanning the folder again.");
            }
            *self =
                Cursor { uidvalidity: Some(state.uidvalidity), next_uid: 1, unsettled: BTreeSet::new(), cut: false };
        }
    }

    /// Whether the folder holds UIDs this cursor has not looked at.
    fn behind(&self, state: FolderState) -> bool {
        // Without UIDNEXT, only IDLE or the poll interval can tell.
        self.uidvalidity != Some(state.uidvalidity) || state.uidnext.is_some_and(|next| next > self.next_uid)
    }
}

/// One batch: UIDs past the cursor (or, when there are none, the unsettled ones again), sizes first, then
/// the bodies of those under the limit.
async fn fetch_batch(conn: &mut Conn, cursor: &mut Cursor, ctx: &Ctx, max: usize) -> anyhow::Result<Vec<RawMail>> {
    let state = conn.refresh().await?;
    cursor.follow(state, &ctx.folder);
    let last = state.uidnext.map_or(u32::MAX, |next| next.saturating_sub(1));
    let mut uids = conn.search(cursor.next_uid, last).await?;
    if uids.is_empty()
        && let Some(&oldest) = cursor.unsettled.first()
    {
        cursor.next_uid = oldest;
        cursor.unsettled.clear();
        uids = conn.search(oldest, last).await?;
    }
    let mut complete = uids.len() <= max;
    uids.truncate(max);
    let mut sizes = conn.sizes(&uids).await?;
    // Bodies only up to the pass's byte budget; the rest wait for the next fetch, which comes at once.
    let held = sizes.values().map(|&size| if size <= ctx.max_bytes { size } else { 0 });
    let taken = super::within_budget(held, super::pass_bytes(ctx.max_bytes));
    cursor.cut = false;
    if let Some(&first_left) = sizes.keys().nth(taken) {
        sizes.split_off(&first_left);
        uids.retain(|&uid| uid < first_left);
        (complete, cursor.cut) = (false, true);
    }
    let small: Vec<u32> = sizes.iter().filter(|(_, size)| **size <= ctx.max_bytes).map(|(uid, _)| *uid).collect();
    let mut bodies = conn.bodies(&small).await?;
    // Before the cursor moves past what the answers listed: async-imap reads a FETCH answer cut short by a server
    // going away as complete (the SEARCH is checked by `Conn::search` itself).
    conn.confirm().await?;
    // Every UID the cursor moves past counts as unsettled until moved, also one whose size or body did not come
    // (gone meanwhile, or a FETCH answered NO): a later rescan looks for it again.
    cursor.unsettled.extend(uids.iter().copied());
    let mut mails = Vec::with_capacity(sizes.len());
    for (uid, size) in sizes {
        let content = match bodies.remove(&uid) {
            Some(bytes) => MailContent::Bytes(bytes),
            None if size > ctx.max_bytes => MailContent::TooLarge { size },
            None => {
                debug!(uid, "IMAP message vanished between the size and the body fetch.");
                continue;
            }
        };
        mails.push(RawMail { key: uids::key(state.uidvalidity, uid), content });
    }
    cursor.next_uid = match (uids.last(), state.uidnext) {
        (_, Some(next)) if complete => cursor.next_uid.max(next),
        (Some(&uid), _) => uid.saturating_add(1),
        (None, _) => cursor.next_uid,
    };
    Ok(mails)
}
