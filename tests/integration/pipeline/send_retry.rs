//! The retry schedule of a reply the SMTP server refused for now, through the running daemon loop with tokio's
//! clock paused: the first retry comes within seconds, later ones back off.
use std::cell::{Cell, RefCell};
use std::time::Duration;

use keypost::daemon::Daemon;
use keypost::mailbox::{RawMail, Source};
use keypost::reply::{Mailer, Outgoing, SendError};
use keypost::service::{ShutdownSignal, ShutdownTrigger, Stop};
use keypost::trust::Verifier;
use tokio::time::Instant;

use super::fakes::{MemorySource, TestReader, daemon, mail, sale};

/// The in-memory source, waiting for new mail as a polling source does (the fake's own wait returns at once,
/// which would spin a paused clock).
struct Polled(MemorySource);

impl Source for Polled {
    fn name(&self) -> String {
        self.0.name()
    }
    fn more_waiting(&self) -> bool {
        false
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        self.0.fetch_new(max).await
    }
    async fn settle(&mut self, key: &str, disposition: keypost::mailbox::Disposition) -> anyhow::Result<()> {
        self.0.settle(key, disposition).await
    }
    async fn settle_all(&mut self, settled: &[(String, keypost::mailbox::Disposition)]) -> anyhow::Result<()> {
        self.0.settle_all(settled).await
    }
    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        tokio::time::sleep(max_wait).await;
        Ok(())
    }
}

/// Answers 421 to the first `refusals` tries, then accepts and stops the daemon; remembers when each try came.
struct Refusing {
    started: Instant,
    refusals: Cell<u32>,
    tries: RefCell<Vec<(u64, bool)>>,
    accepted: ShutdownTrigger,
}

impl Mailer for Refusing {
    async fn send(&self, _mail: &Outgoing) -> Result<(), SendError> {
        let at = self.started.elapsed().as_secs();
        let refuse = self.refusals.get() > 0;
        self.tries.borrow_mut().push((at, !refuse));
        if refuse {
            self.refusals.set(self.refusals.get() - 1);
            return Err(SendError::Transient("421 4.3.2 try again later".into()));
        }
        self.accepted.request(Stop::Terminate);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_reply_is_retried_after_2_s_then_8_s_then_32_s_and_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = daemon(dir.path(), "");
    let mut core = base.core;
    core.config.reply.send_attempts = 8; // the default; the fakes' 3 would give up before the fourth try
    // The state's clock follows tokio's paused one.
    let (wall, started) = (time::OffsetDateTime::now_utc(), Instant::now());
    core.set_clock(move || wall + started.elapsed());
    let verifier = Verifier::new(&core.config.trust).unwrap();
    let (accepted, shutdown) = ShutdownSignal::new();
    let mailer = Refusing { started, refusals: Cell::new(3), tries: RefCell::new(Vec::new()), accepted };
    let mut source = Polled(base.source);
    source.0.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let mut daemon = Daemon::new(source, mailer, core, Box::new(TestReader), verifier);

    // Not a timer: the paused clock jumps to the next timer whenever the runtime waits, e.g. for the state's fsync
    // on a blocking thread, so a timer here would end the run at once.
    daemon.run(shutdown, |_| {}).await.unwrap();

    let tries = daemon.mailer.tries.borrow().clone();
    let times: Vec<u64> = tries.iter().map(|(at, _)| *at).collect();
    let accepted: Vec<bool> = tries.iter().map(|(_, ok)| *ok).collect();
    assert_eq!(accepted, [false, false, false, true], "{tries:?}");
    // Whole seconds in the state: each retry may come up to a second after its due time.
    let expected = [0, 2, 10, 42];
    for (got, want) in times.iter().zip(expected) {
        assert!((want..=want + 1).contains(got), "tries at {times:?} s, expected about {expected:?}");
    }
    assert_eq!(daemon.core.store.outbox_len(), 0, "nothing left to send");
}
