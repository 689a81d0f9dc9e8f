//! The loops: [`Daemon::poll_once`] processes what is waiting and returns an [`Outcome`]; [`Daemon::run`] is a
//! thin wrapper that waits for new mail and retries the outbox. Generic over the [`Source`] and the [`Mailer`],
//! so the IMAP and SMTP implementations (or test fakes) slot in; the crash protocol is in `store.rs`.
use std::fmt;
use std::time::Duration;

use anyhow::Context as _;

use crate::backoff::Backoff;
use crate::mailbox::{Disposition, RawMail, Source};
use crate::reply::Mailer;
use crate::service::ShutdownSignal;
use crate::store::{Pending, SourceRecord};
use crate::trust::Verifier;

mod ahead;
mod alerts;
pub mod any;
mod aside;
pub mod build;
mod core;
mod digest;
mod jobs;
mod linked;
mod manual;
mod message;
mod outbox;
mod pool;
mod real;
pub mod replay;
mod seams;
mod selfservice;
mod subscription;
mod watch;

use ahead::Ahead;
pub use core::{Assessed, Core, Effect, Origin, Settle};
pub use manual::MANUAL_PROVIDER;
pub use seams::{Licenser, Reader, Reading};

/// Most messages fetched per pass, fewer when their bytes reach [`crate::mailbox::pass_bytes`]. 400 rather than
/// 100 costs a seventh less CPU per order in a backlog (more orders share each page the store writes,
/// docs/benchmarks.md). A stop sends the replies of the batches in hand only for a while
/// (`STOP_SENDING_FOR` in `outbox.rs`), so up to 800 of them through a slow relay still end within `TimeoutStopSec`.
pub const BATCH: usize = 400;
/// Longest wait for new mail between two passes (the outbox is retried at least this often).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages handed out by the source.
    pub messages: usize,
    /// Orders whose licenses were issued.
    pub fulfilled: usize,
    /// Not orders: a provider's `not_order` mail, and mail from senders no template knows.
    pub ignored: usize,
    /// Of `ignored`, the mail from senders no template knows (shown, so a provider the templates miss is seen).
    pub unknown_senders: usize,
    pub set_aside: usize,
    /// Orders sent to the vendor for review (nothing to the buyer).
    pub review: usize,
    pub revoked: usize,
    /// Duplicates: an email or order already handled.
    pub skipped: usize,
    /// Messages seen again after a crash, only settled again.
    pub resettled: usize,
    /// Messages left unsettled for a later pass: their trust check could not finish (a DNS failure).
    pub retrying: usize,
    pub sent: usize,
    pub send_failures: usize,
    /// Buyers' lost-license requests answered (their licenses resent to the address on file).
    pub self_service: usize,
}

impl From<Effect> for Outcome {
    /// One message's count in the summary.
    fn from(effect: Effect) -> Self {
        let mut outcome = Outcome { messages: 1, ..Outcome::default() };
        let count = match effect {
            Effect::Fulfilled => &mut outcome.fulfilled,
            Effect::Review => &mut outcome.review,
            Effect::Revoked => &mut outcome.revoked,
            Effect::Duplicate => &mut outcome.skipped,
            Effect::Ignored => &mut outcome.ignored,
            Effect::UnknownSender => {
                outcome.ignored = 1;
                &mut outcome.unknown_senders
            }
            Effect::SetAside => &mut outcome.set_aside,
            Effect::Retrying => &mut outcome.retrying,
            Effect::SelfService => &mut outcome.self_service,
        };
        *count = 1;
        outcome
    }
}

impl Outcome {
    pub fn add(&mut self, other: &Outcome) {
        self.messages += other.messages;
        self.fulfilled += other.fulfilled;
        self.ignored += other.ignored;
        self.unknown_senders += other.unknown_senders;
        self.set_aside += other.set_aside;
        self.review += other.review;
        self.revoked += other.revoked;
        self.skipped += other.skipped;
        self.resettled += other.resettled;
        self.retrying += other.retrying;
        self.sent += other.sent;
        self.send_failures += other.send_failures;
        self.self_service += other.self_service;
    }

    /// Nothing happened.
    pub fn is_idle(&self) -> bool {
        *self == Outcome::default()
    }
}

impl Outcome {
    /// A full batch was settled, so more may be waiting right now. Messages waiting to retry their trust check
    /// do not count: a batch of only those would otherwise spin without pause.
    fn filled_batch(&self) -> bool {
        self.messages.saturating_sub(self.retrying) >= BATCH
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fulfilled {}, ignored {} ({} from unknown senders), set aside {}, for review {}, revoked {}, duplicates \
             {}, retrying {}, sent {}, send failures {}, lost-license requests answered {}",
            self.fulfilled,
            self.ignored,
            self.unknown_senders,
            self.set_aside,
            self.review,
            self.revoked,
            self.skipped,
            self.retrying,
            self.sent,
            self.send_failures,
            self.self_service
        )
    }
}

/// How far [`Daemon::decide`] took one message of a batch.
enum Step {
    /// Its outcome is applied (or it only waits for a later pass, or needs moving again).
    Decided(Outcome),
    /// It would revoke a license whose reply this batch queued and has not sent: send the batch's replies first.
    SendFirst,
}

impl From<&Outcome> for crate::telemetry::Counts {
    fn from(o: &Outcome) -> Self {
        let n = |count: usize| u64::try_from(count).unwrap_or(u64::MAX);
        Self {
            messages: n(o.messages),
            fulfilled: n(o.fulfilled),
            ignored: n(o.ignored),
            unknown_senders: n(o.unknown_senders),
            set_aside: n(o.set_aside),
            review: n(o.review),
            revoked: n(o.revoked),
            duplicates: n(o.skipped),
            settled_again: n(o.resettled),
            retrying: n(o.retrying),
            sent: n(o.sent),
            send_failures: n(o.send_failures),
        }
    }
}

/// The daemon: a source, a mailer, and the core they feed.
pub struct Daemon<S: Source, M: Mailer> {
    pub source: S,
    pub mailer: M,
    pub core: Core,
    reader: Box<dyn Reader>,
    verifier: Verifier,
    max_wait: Duration,
    /// Vendor tools' requests from the control socket, carried out between passes.
    jobs: Option<tokio::sync::mpsc::Receiver<crate::control::Job>>,
    /// The next batch, fetched and decided while the last full one was sent (`ahead.rs`): the next pass sends its
    /// replies and settles it.
    ahead: Option<Ahead>,
}

/// What deciding a message reads, apart from the state it writes through a [`Pending`].
#[derive(Clone, Copy)]
struct Judge<'a> {
    core: &'a Core,
    reader: &'a dyn Reader,
    verifier: &'a Verifier,
}

async fn fetch_from<S: Source>(source: &mut S) -> anyhow::Result<Vec<RawMail>> {
    source.fetch_new(BATCH).await.with_context(|| format!("Failed to fetch from {}", source.name()))
}

async fn wait_unless<S: Source>(ready: bool, source: &mut S, wait: Duration) -> anyhow::Result<()> {
    if ready { Ok(()) } else { source.wait_for_new(wait).await }
}

/// The prefetch of the next batch; a failure is only logged: the next pass fetches again (and reports it).
async fn fetch_logged<S: Source>(source: &mut S, core: &Core) -> Option<Vec<RawMail>> {
    match fetch_from(source).await {
        Ok(batch) => {
            core.telemetry.mailbox_reached(core.now().unix_timestamp());
            Some(batch)
        }
        Err(err) => {
            tracing::warn!("Cannot fetch the next batch yet: {err:#}");
            None
        }
    }
}

impl<S: Source, M: Mailer> Daemon<S, M> {
    pub fn new(source: S, mailer: M, core: Core, reader: Box<dyn Reader>, verifier: Verifier) -> Self {
        core.telemetry.set_source(source.name());
        Self { source, mailer, core, reader, verifier, max_wait: MAX_WAIT, jobs: None, ahead: None }
    }

    fn judge(&self) -> Judge<'_> {
        Judge { core: &self.core, reader: self.reader.as_ref(), verifier: &self.verifier }
    }

    /// Caps the wait between passes below the default minute, e.g. at half the service watchdog interval.
    pub fn set_max_wait(&mut self, max_wait: Duration) {
        self.max_wait = max_wait.min(MAX_WAIT);
    }

    /// Sends the due outbox, handles up to [`BATCH`] waiting messages, sends what they queued.
    pub async fn poll_once(&mut self) -> anyhow::Result<Outcome> {
        self.pass(None).await
    }

    /// One pass; with `shutdown`, a requested stop ends it between two messages instead of after the batch (the
    /// messages not handled stay in the source for the next start).
    ///
    /// The batch goes through the store's protocol together: each message's outcome is applied as it is decided
    /// (step 2), all of them are made durable with one flush, then what they queued is sent concurrently over the
    /// mailer's connections, each accepted send noted in the send journal at once and all recorded with one flush
    /// (step 3), while the batch is moved in the source with as few commands as it allows (step 4) and, after a
    /// full batch, the next one is fetched and decided (`ahead.rs`): its replies go out in the next pass, beside
    /// the batch after it. A crash in any of these finds everything it needs in the state, as after step 2. A
    /// single new message is a batch of one: nothing waits for a batch to fill.
    async fn pass(&mut self, shutdown: Option<&ShutdownSignal>) -> anyhow::Result<Outcome> {
        let result = self.pass_unrecorded(shutdown).await;
        let at = self.core.now().unix_timestamp();
        let counts = result.as_ref().map(crate::telemetry::Counts::from).map_err(|err| format!("{err:#}"));
        self.core.telemetry.pass_done(at, counts);
        result
    }

    async fn pass_unrecorded(&mut self, shutdown: Option<&ShutdownSignal>) -> anyhow::Result<Outcome> {
        let ahead = self.ahead.take();
        // A batch decided ahead sends its replies below, with this pass's: not here, where nothing overlaps them.
        let held = ahead.as_ref().map_or(&[][..], |ahead| ahead.queued.message_ids());
        let mut outcome = self.core.send_due_except(&self.mailer, held).await?;
        // Orders waiting for pool codes that an import (or a crash right after one) left unanswered.
        outcome.add(&self.core.answer_waiting(&self.mailer).await?);
        let (batch, mut pending, mut settled) = match ahead {
            Some(ahead) => {
                outcome.add(&ahead.outcome);
                (ahead.rest, self.core.store.pending_after(ahead.queued), ahead.settled)
            }
            None => {
                let batch = self.fetch().await?;
                let settled = Vec::with_capacity(batch.len());
                (batch, self.core.store.pending(), settled)
            }
        };
        let source = self.source.name();
        let mut decided = Ok(());
        for raw in batch {
            if shutdown.is_some_and(ShutdownSignal::is_requested) {
                tracing::info!("Stopping between two messages; the rest stay for the next start.");
                break;
            }
            let mut step = decide(self.judge(), &source, &raw, &mut pending, &mut settled, true).await;
            if let Ok(Step::SendFirst) = step {
                // A refund or cancellation would take back a reply of this batch not sent yet: send those first, as
                // handling one message at a time would, then decide it on the state they left.
                let queued = std::mem::replace(&mut pending, self.core.store.pending()).durable().await?;
                outcome.add(&self.core.send_queued(&self.mailer, &queued).await?);
                step = decide(self.judge(), &source, &raw, &mut pending, &mut settled, false).await;
            }
            match step {
                Ok(Step::Decided(one)) => outcome.add(&one),
                Ok(Step::SendFirst) => {}
                Err(err) => {
                    decided = Err(err);
                    break;
                }
            }
        }
        // Even after a failure: what was applied is made durable before anything (the next pass) could send it.
        let queued = pending.durable().await.context("Failed to record the batch's outcomes")?;
        decided?;
        // Steps 3 and 4 at once: the sends go over SMTP while the batch is moved over IMAP and, after a full batch,
        // the next one is fetched and decided (steps 1 and 2 for it), since the state already holds everything a
        // crash in either needs.
        let full = outcome.messages >= BATCH || self.cut_short(&outcome);
        // Built from the fields, not `self.judge()`: the source is borrowed mutably beside it.
        let judge = Judge { core: &self.core, reader: self.reader.as_ref(), verifier: &self.verifier };
        let (sent, next) = futures::join!(self.core.send_queued(&self.mailer, &queued), async {
            Self::settle_all(&mut self.source, &settled).await;
            // After a stop request nothing more is decided: fetching the next batch would only cost time.
            if !full || shutdown.is_some_and(ShutdownSignal::is_requested) {
                return Ok(None);
            }
            match fetch_logged(&mut self.source, &self.core).await {
                Some(batch) if !batch.is_empty() => {
                    ahead::decide(judge, &source, batch, !queued.is_empty(), shutdown).await.map(Some)
                }
                _ => Ok(None),
            }
        });
        self.ahead = next.context("Failed to record the outcomes of the batch decided ahead")?;
        outcome.add(&sent?);
        self.core.queue_alert_digest().await?;
        // Like the digest: a silence that cannot be checked must not hold back the sends; tried next pass.
        if let Err(err) = self.core.watch_silence().await {
            tracing::error!("Cannot check the providers' silence: {err:#}");
        }
        // A digest that cannot be made must not hold back the replies sent next: logged, tried again next pass.
        if let Err(err) = self.core.queue_digest().await {
            tracing::error!("Cannot queue the digest: {err:#}");
        }
        // Alerts queued by failed sends, a due digest of held alerts and the periodic digest go out in the same pass.
        let held = self.ahead.as_ref().map_or(&[][..], |ahead| ahead.queued.message_ids());
        outcome.add(&self.core.send_due_except(&self.mailer, held).await?);
        Ok(outcome)
    }

    /// Passes until the source has nothing more waiting (`keypost run --once`).
    pub async fn drain(&mut self) -> anyhow::Result<Outcome> {
        let mut total = Outcome::default();
        // Bounded: a message that cannot be moved comes back every pass.
        for _ in 0..10_000 {
            let outcome = self.poll_once().await?;
            total.add(&outcome);
            if !self.more_now(&outcome) {
                break;
            }
        }
        Ok(total)
    }

    /// A failed move is only logged: the messages come back and are settled again from their records.
    async fn settle_all(source: &mut S, settled: &[(String, Disposition)]) {
        if settled.is_empty() {
            return;
        }
        if let Err(err) = source.settle_all(settled).await {
            tracing::warn!("Cannot settle some messages yet: {err:#}");
        }
    }

    async fn fetch(&mut self) -> anyhow::Result<Vec<RawMail>> {
        let batch = fetch_from(&mut self.source).await?;
        self.core.telemetry.mailbox_reached(self.core.now().unix_timestamp());
        Ok(batch)
    }

    /// Polls until `shutdown` fires (a pass in hand ends after the message in hand); errors are logged and
    /// retried with capped backoff. `on_pass` is called after every pass, with its outcome or `None` when it
    /// failed: the service's watchdog ping and status line go there, so a loop that hangs stops calling it.
    pub async fn run(
        &mut self,
        mut shutdown: ShutdownSignal,
        mut on_pass: impl FnMut(Option<&Outcome>),
    ) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        self.core.watch_stop(shutdown.clone());
        loop {
            let wait = match self.pass(Some(&shutdown)).await {
                Ok(outcome) => {
                    backoff.reset();
                    on_pass(Some(&outcome));
                    if !outcome.is_idle() {
                        tracing::info!(%outcome, "Pass done.");
                    }
                    if self.more_now(&outcome) { Duration::ZERO } else { self.until_next_retry() }
                }
                Err(err) if store_failed(&err) => {
                    // What was applied may have queued replies that are not on disk: only a restart (redb back
                    // to its last durable commit, the messages read again) goes on safely.
                    tracing::error!("Stopping: {err:#}");
                    return Err(err);
                }
                Err(err) => {
                    on_pass(None);
                    let wait = backoff.next_delay();
                    tracing::error!(retry_in_secs = wait.as_secs(), "Pass failed: {err:#}");
                    wait
                }
            };
            // A batch decided ahead is waiting already: asking the source (IMAP: a SELECT) would only cost a trip.
            let ready = self.ahead.is_some();
            // In this order: a stop requested during the pass ends the loop even when more mail is ready at once,
            // and a vendor's request is served before the next pass of a long drain.
            tokio::select! {
                biased;
                _ = shutdown.wait() => {
                    self.finish_ahead().await;
                    return Ok(());
                }
                Some(job) = jobs::next(&mut self.jobs) => self.serve(job).await,
                result = wait_unless(ready, &mut self.source, wait) => if let Err(err) = result {
                    tracing::warn!("Waiting for new mail failed: {err:#}");
                    tokio::time::sleep(crate::backoff::FIRST).await;
                },
            }
        }
    }

    /// At a stop: sends the replies of the batch decided ahead and settles its messages, so a stop leaves nothing
    /// decided unanswered. Failures are only logged: the replies wait durably in the outbox for the next start.
    async fn finish_ahead(&mut self) {
        let Some(ahead) = self.ahead.take() else { return };
        if let Err(err) = self.core.send_queued(&self.mailer, &ahead.queued).await {
            tracing::error!("Cannot send the replies decided before the stop; they wait for the next start: {err:#}");
        }
        Self::settle_all(&mut self.source, &ahead.settled).await;
    }

    /// The source stopped this pass's batch at its byte budget with more mail waiting: go on at once, as after a
    /// full batch. Not when every message of it waits to retry its trust check: with nothing newer waiting, a
    /// source hands those out again, and the daemon would spin on them.
    fn cut_short(&self, outcome: &Outcome) -> bool {
        self.source.more_waiting() && outcome.messages > outcome.retrying
    }

    /// After a pass: more mail can be handled at once, as after a full batch. Also after a batch cut short, and
    /// while a batch decided ahead waits (its fetch may have emptied the source), with the same exception.
    fn more_now(&self, outcome: &Outcome) -> bool {
        outcome.filled_batch()
            || self.cut_short(outcome)
            || (self.ahead.is_some() && outcome.messages > outcome.retrying)
    }

    fn until_next_retry(&self) -> Duration {
        let now = self.core.now().unix_timestamp();
        match self.core.store.next_outbox_try() {
            Ok(Some(at)) => Duration::from_secs(u64::try_from(at - now).unwrap_or(0)).min(self.max_wait),
            _ => self.max_wait,
        }
    }
}

/// Whether a pass failed because the state refuses to go on ([`crate::store::StoreError::Failed`]).
fn store_failed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| matches!(cause.downcast_ref(), Some(crate::store::StoreError::Failed)))
}

/// One message of a batch: its outcome applied to the state (step 2, made durable with the batch), and where
/// it is to be moved once the batch's replies are sent. A message waiting for a later pass is not moved.
/// With `may_defer`, a message that would revoke while replies of the batch are still unsent comes back as
/// [`Step::SendFirst`] with nothing written.
#[tracing::instrument(skip_all, fields(source = %source, key = %raw.key))]
async fn decide(
    judge: Judge<'_>,
    source: &str,
    raw: &RawMail,
    pending: &mut Pending<'_>,
    settled: &mut Vec<(String, Disposition)>,
    may_defer: bool,
) -> anyhow::Result<Step> {
    // A message set aside and now back in the inbox was put back by the vendor (after fixing a template, or
    // the trust policy) and is read again; anything else seen before only needs moving. Set-aside mail never
    // produced an order or a reply, so reading it again cannot send twice.
    match judge.core.store.source_record(source, &raw.key)? {
        Some(record) if record.disposition == Disposition::SetAside => {
            tracing::info!("Set aside before and back in the inbox; reading it again.");
        }
        Some(record) => {
            tracing::debug!(disposition = ?record.disposition, "Handled before; settling again.");
            settled.push((raw.key.clone(), record.disposition));
            return Ok(Step::Decided(Outcome { messages: 1, resettled: 1, ..Outcome::default() }));
        }
        None => {}
    }
    // Protocol step 1: everything up to the change that records the outcome; nothing written yet.
    let Assessed { effect, mut change, note } =
        message::assess(judge.core, judge.reader, judge.verifier, source, raw).await?;
    if may_defer && effect == Effect::Revoked && pending.has_queued() {
        return Ok(Step::SendFirst);
    }
    match effect.settle() {
        Settle::Later => {
            // Not final: no source record, not settled, so the source hands it out again on a later pass.
            judge.core.store.commit_waiting(change).context("Failed to record a message's retry")?;
        }
        Settle::Now(disposition) => {
            // Step 2: the outcome, the source's disposition and the outbox entries, as one change.
            let at = judge.core.now().unix_timestamp();
            // Set-aside mail keeps its digest: `keypost aside` finds it again in the set-aside folder.
            let sha256 = (disposition == Disposition::SetAside).then(|| raw.sha256()).flatten();
            change.put_source(source, &raw.key, &SourceRecord { disposition, at, note: note.clone(), sha256 });
            pending.apply(change).context("Failed to record a message's outcome")?;
            settled.push((raw.key.clone(), disposition));
        }
    }
    Ok(Step::Decided(Outcome::from(effect)))
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use crate::store::StoreError;

    #[test]
    fn a_pass_that_failed_on_a_poisoned_state_stops_the_loop_and_other_failures_do_not() {
        let failed: anyhow::Result<()> = Err(StoreError::Failed).context("Failed to record the batch's outcomes");
        assert!(super::store_failed(&failed.unwrap_err()));
        let other: anyhow::Result<()> = Err(StoreError::ReadOnly).context("Failed to record the batch's outcomes");
        assert!(!super::store_failed(&other.unwrap_err()));
        assert!(!super::store_failed(&anyhow::anyhow!("IMAP went away")));
    }
}
