//! Deciding the next batch while the last one's replies are sent. In a backlog, a pass used to decide a batch
//! (CPU), then send its replies (mostly waiting for the SMTP server), one after the other; now, once a full
//! batch's replies are on their way, the next batch is fetched and decided beside them, and the next pass sends
//! its replies beside the batch after it.
//!
//! Invariants (the store's protocol holds per batch, as in a pass):
//! - The batch decided ahead is made durable before its pass ends; its replies are sent only by the next pass
//!   (`send_due_except` holds them back meanwhile, so they go out beside the next batch's deciding). A crash in
//!   between finds them in the outbox, sent on start-up like any other.
//! - The replies on their way count as unsent for the batch decided ahead ([`Pending::has_queued`]): a refund
//!   that would take one back is not decided ahead; deciding stops there and the next pass continues with it,
//!   after those replies went out, exactly as one message at a time would be handled.
//! - A message whose deciding fails is not decided ahead either: the next pass decides it again and reports.
//! - A requested stop ends deciding ahead between two messages; the rest stay in the source.
//! - It yields to the sends between two messages, so an accepted reply is noted in the send journal within one
//!   message's deciding.
use super::{Judge, Outcome, Step};
use crate::mailbox::{Disposition, RawMail};
use crate::service::ShutdownSignal;
use crate::store::Queued;

/// A batch decided ahead, for the next pass.
#[derive(Debug)]
pub(super) struct Ahead {
    /// The replies it queued, durable, not sent yet.
    pub queued: Queued,
    /// Where its messages go once those are sent.
    pub settled: Vec<(String, Disposition)>,
    pub outcome: Outcome,
    /// Its messages not decided yet (from the first that had to wait), in order.
    pub rest: Vec<RawMail>,
}

/// Decides `batch` while replies are on their way (`sending`) and makes the outcomes durable.
pub(super) async fn decide(
    judge: Judge<'_>,
    source: &str,
    batch: Vec<RawMail>,
    sending: bool,
    shutdown: Option<&ShutdownSignal>,
) -> anyhow::Result<Ahead> {
    let mut pending = judge.core.store.pending_while_sending(sending);
    let mut settled = Vec::with_capacity(batch.len());
    let mut outcome = Outcome::default();
    let mut rest = Vec::new();
    let mut messages = batch.into_iter();
    for raw in messages.by_ref() {
        // Deciding does not wait on anything: without this the sends beside it (same thread) would see their
        // server's answers only after the whole batch, which widens the window in which a kill repeats a reply.
        tokio::task::yield_now().await;
        if shutdown.is_some_and(ShutdownSignal::is_requested) {
            rest.push(raw);
            break;
        }
        match super::decide(judge, source, &raw, &mut pending, &mut settled, true).await {
            Ok(Step::Decided(one)) => outcome.add(&one),
            Ok(Step::SendFirst) => {
                rest.push(raw);
                break;
            }
            Err(err) => {
                tracing::debug!("Not deciding ahead: {err:#}");
                rest.push(raw);
                break;
            }
        }
    }
    rest.extend(messages);
    let queued = pending.durable().await?;
    Ok(Ahead { queued, settled, outcome, rest })
}
