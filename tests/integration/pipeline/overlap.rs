//! A full batch's replies are sent while the batch is moved and the next batch fetched and decided (steps 3 and 4
//! at once, `src/daemon/ahead.rs`): a mailer that will not answer until the source has moved the batch and handed
//! out the next one would wait for ever if they ran one after the other; a refund decided beside the reply it
//! takes back waits for it. Counted in polls of the runtime, not in time.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use keypost::daemon::{BATCH, Daemon};
use keypost::mailbox::{Disposition, RawMail, Source};
use keypost::reply::{Mailer, Outgoing, SendError};
use keypost::service::{ShutdownSignal, ShutdownTrigger, Stop};
use keypost::trust::Verifier;

use super::fakes::{MemorySource, TestReader, daemon, mail};

/// Order `A-n`'s sale notice, for buyer `b{n}@example.com`.
fn sale(n: usize) -> Vec<u8> {
    let lines = format!("kind: sale\norder: A-{n}\nname: Buyer {n}\nemail: b{n}@example.com\nsku: ACME-PRO");
    mail(&format!("m{n}@shop.example"), &lines)
}

/// What the source did so far, shared with the mailer.
#[derive(Default)]
struct Progress {
    fetches: Cell<usize>,
    settled: Cell<usize>,
    waits: Cell<usize>,
}

struct Watched(MemorySource, Rc<Progress>);

impl Source for Watched {
    fn name(&self) -> String {
        self.0.name()
    }
    fn more_waiting(&self) -> bool {
        false
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        self.1.fetches.set(self.1.fetches.get() + 1);
        self.0.fetch_new(max).await
    }
    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        self.0.settle(key, disposition).await
    }
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        self.0.settle_all(settled).await?;
        self.1.settled.set(self.1.settled.get() + settled.len());
        Ok(())
    }
    async fn wait_for_new(&mut self, _max_wait: Duration) -> anyhow::Result<()> {
        self.1.waits.set(self.1.waits.get() + 1);
        Ok(())
    }
}

/// Accepts a reply only once the first batch is moved and the second fetched; gives up after many polls.
struct WaitsForTheSource {
    progress: Rc<Progress>,
    sent: RefCell<Vec<String>>,
}

impl Mailer for WaitsForTheSource {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        for _ in 0..10_000 {
            if self.progress.settled.get() >= BATCH && self.progress.fetches.get() >= 2 {
                self.sent.borrow_mut().extend(mail.to.iter().cloned());
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        Err(SendError::Transient("the batch was not moved while its replies were sent".into()))
    }
}

#[tokio::test]
async fn a_full_batch_is_moved_and_the_next_fetched_while_its_replies_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let progress = Rc::new(Progress::default());
    let mut source = Watched(base.source, progress.clone());
    let orders = BATCH + BATCH / 2;
    for n in 0..orders {
        source.0.deliver(&format!("{n:04}"), &sale(n));
    }
    let verifier = Verifier::new(&base.core.config.trust).unwrap();
    let mailer = WaitsForTheSource { progress: progress.clone(), sent: RefCell::default() };
    let mut daemon = Daemon::new(source, mailer, base.core, Box::new(TestReader), verifier);

    let first = daemon.poll_once().await.unwrap();
    assert_eq!((first.fulfilled, first.sent, first.send_failures), (BATCH, BATCH, 0), "{first}");
    assert_eq!(progress.fetches.get(), 2, "the second batch was fetched during the first pass");
    let second = daemon.poll_once().await.unwrap();
    assert_eq!((second.fulfilled, second.sent, second.send_failures), (BATCH / 2, BATCH / 2, 0), "{second}");
    assert_eq!(progress.fetches.get(), 2, "the second pass took the batch fetched ahead; it was not full");
    assert!(daemon.source.0.waiting.is_empty(), "every message moved");

    let buyers: Vec<String> =
        daemon.mailer.sent.borrow().iter().filter(|to| to.ends_with("@example.com")).cloned().collect();
    let mut distinct = buyers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((buyers.len(), distinct.len()), (orders, orders), "every buyer answered, once");
}

/// Counts the source's waits for new mail at each send; stops the daemon after the last reply.
struct StopsAfter {
    progress: Rc<Progress>,
    replies: usize,
    waits_at_send: RefCell<Vec<usize>>,
    done: ShutdownTrigger,
}

impl Mailer for StopsAfter {
    async fn send(&self, _mail: &Outgoing) -> Result<(), SendError> {
        let mut waits = self.waits_at_send.borrow_mut();
        waits.push(self.progress.waits.get());
        if waits.len() == self.replies {
            self.done.request(Stop::Terminate);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_loop_does_not_ask_the_source_for_news_while_a_batch_fetched_ahead_waits() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let progress = Rc::new(Progress::default());
    let mut source = Watched(base.source, progress.clone());
    let orders = 2 * BATCH + BATCH / 2;
    for n in 0..orders {
        source.0.deliver(&format!("{n:04}"), &sale(n));
    }
    let verifier = Verifier::new(&base.core.config.trust).unwrap();
    let (done, shutdown) = ShutdownSignal::new();
    let mailer = StopsAfter { progress: progress.clone(), replies: orders, waits_at_send: RefCell::default(), done };
    let mut daemon = Daemon::new(source, mailer, base.core, Box::new(TestReader), verifier);

    daemon.run(shutdown, |_| {}).await.unwrap();

    let waits = daemon.mailer.waits_at_send.borrow().clone();
    assert_eq!(waits.len(), orders, "every order answered");
    assert_eq!(waits.last(), Some(&0), "three batches, two of them fetched ahead: no wait for news in between");
    assert_eq!(progress.fetches.get(), 3);
}

/// Records every send after yielding to the runtime a few times, so a pass's other work runs while its replies
/// are on their way.
#[derive(Default)]
struct Unhurried(super::fakes::RecordingMailer);

impl Mailer for Unhurried {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        self.0.send(mail).await
    }
}

#[tokio::test]
async fn a_refund_in_the_batch_decided_ahead_waits_until_the_reply_it_takes_back_has_gone_out() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let mut source = base.source;
    for n in 0..BATCH {
        source.deliver(&format!("{n:04}"), &sale(n));
    }
    // The next batch opens with a refund of an order of the first, whose reply is still on its way.
    source.deliver(&format!("{BATCH:04}"), &mail("r5@shop.example", "kind: refund\norder: A-5"));
    for n in BATCH..BATCH + 20 {
        source.deliver(&format!("{:04}", n + 1), &sale(n));
    }
    let verifier = Verifier::new(&base.core.config.trust).unwrap();
    let mut daemon = Daemon::new(source, Unhurried::default(), base.core, Box::new(TestReader), verifier);

    let total = daemon.drain().await.unwrap();

    assert_eq!((total.fulfilled, total.revoked, total.send_failures), (BATCH + 20, 1, 0), "{total}");
    for n in 0..BATCH + 20 {
        assert_eq!(daemon.mailer.0.to(&format!("b{n}@example.com")).len(), 1, "buyer {n}");
    }
    let line = daemon.core.store.order_line("shop", "A-5", 0).unwrap().unwrap();
    assert!(line.revoked.is_some(), "the refund revoked the license");
    assert!(matches!(line.reply, keypost::store::ReplyState::Sent { .. }), "{:?}", line.reply);
    // The vendor is told the buyer has the serial (it went out first), not that its reply was cancelled.
    let alerts = daemon.mailer.0.vendor_only();
    let revoked: Vec<&String> = alerts.iter().filter(|a| a.contains("A-5 revoked")).collect();
    assert_eq!(revoked.len(), 1, "{alerts:#?}");
    assert!(!revoked[0].contains("never received"), "{}", revoked[0]);
    assert!(daemon.source.waiting.is_empty(), "every message moved");
}

/// Hands out at most `per_fetch` messages, as a source does when their bytes reach its budget, and says so.
struct Budgeted {
    inner: MemorySource,
    per_fetch: usize,
    cut: bool,
    waits: usize,
}

impl Source for Budgeted {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn more_waiting(&self) -> bool {
        self.cut
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        let batch = self.inner.fetch_new(max.min(self.per_fetch)).await?;
        self.cut = self.inner.waiting.len() > batch.len() && batch.len() < max;
        Ok(batch)
    }
    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        self.inner.settle(key, disposition).await
    }
    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        self.inner.settle_all(settled).await
    }
    async fn wait_for_new(&mut self, _max_wait: Duration) -> anyhow::Result<()> {
        self.waits += 1;
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_the_source_cut_at_its_byte_budget_is_followed_at_once_and_run_once_drains_everything() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let mut source = Budgeted { inner: base.source, per_fetch: 3, cut: false, waits: 0 };
    for n in 0..8 {
        source.inner.deliver(&format!("{n:04}"), &sale(n));
    }
    let verifier = Verifier::new(&base.core.config.trust).unwrap();
    let mut daemon = Daemon::new(source, base.mailer, base.core, Box::new(TestReader), verifier);

    let total = daemon.drain().await.unwrap();
    assert_eq!((total.fulfilled, total.sent, total.send_failures), (8, 8, 0), "{total}");
    assert!(daemon.source.inner.waiting.is_empty(), "every message moved");
    assert_eq!(daemon.source.waits, 0, "no wait for news between the cut batches");
}

/// A relay that takes a second per message, one at a time; with `stop`, it asks the daemon to stop at its first.
#[derive(Default)]
struct OneASecond {
    inner: super::fakes::RecordingMailer,
    one_at_a_time: tokio::sync::Mutex<()>,
    stop: Option<ShutdownTrigger>,
}

impl Mailer for OneASecond {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        let _turn = self.one_at_a_time.lock().await;
        if let Some(stop) = &self.stop {
            stop.request(Stop::Terminate);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.inner.send(mail).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_sends_for_thirty_seconds_then_leaves_the_rest_in_the_outbox_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let mut source = base.source;
    let orders = 100;
    for n in 0..orders {
        source.deliver(&format!("{n:04}"), &sale(n));
    }
    let verifier = Verifier::new(&base.core.config.trust).unwrap();
    let (stop, shutdown) = ShutdownSignal::new();
    let relay = OneASecond { stop: Some(stop), ..OneASecond::default() };
    let mut first = Daemon::new(source, relay, base.core, Box::new(TestReader), verifier);

    let started = tokio::time::Instant::now();
    first.run(shutdown, |_| {}).await.unwrap();

    // A hundred seconds of sending, cut at thirty after the stop (asked for at the first send).
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(30) && took < Duration::from_secs(32), "{took:?}");
    let sent = first.mailer.inner.sent.borrow().len();
    assert!((29..=30).contains(&sent), "{sent} sent before the stop");
    assert_eq!(first.core.store.outbox_len(), orders - sent, "the rest wait in the outbox");
    assert!(first.source.waiting.is_empty(), "every message settled: its reply is durable in the outbox");

    // The next start sends the rest, and none of the first ones again.
    let source = std::mem::take(&mut first.source);
    let before = first.mailer.inner.sent.borrow().clone();
    drop(first);
    let restarted = daemon(dir.path(), "");
    let verifier = Verifier::new(&restarted.core.config.trust).unwrap();
    let mut second = Daemon::new(source, restarted.mailer, restarted.core, Box::new(TestReader), verifier);
    second.drain().await.unwrap();
    let mut buyers: Vec<String> =
        before.iter().chain(second.mailer.sent.borrow().iter()).flat_map(|mail| mail.to.clone()).collect();
    buyers.retain(|to| to.ends_with("@example.com"));
    buyers.sort();
    let answered = buyers.len();
    buyers.dedup();
    assert_eq!((answered, buyers.len()), (orders, orders), "every buyer answered once");
    assert_eq!(second.core.store.outbox_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn sends_report_progress_at_most_once_a_second_so_a_long_pass_keeps_the_watchdog_fed() {
    for (slow, orders, pings) in [(true, 10, 10), (false, 50, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let base = daemon(dir.path(), "");
        let mut source = base.source;
        for n in 0..orders {
            source.deliver(&format!("{n:04}"), &sale(n));
        }
        let verifier = Verifier::new(&base.core.config.trust).unwrap();
        let mut core = base.core;
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&count);
        core.on_progress(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let sent = if slow {
            let mut daemon = Daemon::new(source, OneASecond::default(), core, Box::new(TestReader), verifier);
            daemon.drain().await.unwrap();
            daemon.mailer.inner.sent.borrow().len()
        } else {
            let mut daemon = Daemon::new(source, base.mailer, core, Box::new(TestReader), verifier);
            daemon.drain().await.unwrap();
            daemon.mailer.sent.borrow().len()
        };
        assert_eq!(sent, orders);
        // One a second: ten sends a second apart ping ten times, fifty in the same instant once.
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), pings, "slow relay: {slow}");
    }
}
