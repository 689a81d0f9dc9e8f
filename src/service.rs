//! Living under systemd: sd_notify READY/STATUS/WATCHDOG/STOPPING and graceful SIGTERM/SIGINT.
//! Everything here is a no-op outside systemd (no `NOTIFY_SOCKET`), so `keypost run` behaves the same in a
//! terminal. It never decides anything: the daemon says when it is ready, making progress, or stopping.
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Talks to the service manager (`Type=notify`).
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once (without changing the environment).
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Self { enabled, watchdog: watchdog.filter(|_| enabled) }
    }

    /// A notifier that sends nothing (tests, `--once`).
    pub fn disabled() -> Self {
        Self { enabled: false, watchdog: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `WatchdogSec=` as the service manager set it, if any. Ping [`Notifier::watchdog`] at half of it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Start-up is complete: the config loaded, the state opened, the mailbox reached.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// One line shown by `systemctl status`, e.g. `"Watching INBOX; 12 orders today"`.
    pub fn status(&self, text: &str) {
        // A newline would end the field; the manager shows one line anyway.
        let line = text.lines().next().unwrap_or_default();
        self.send(&[NotifyState::Status(line)]);
    }

    /// The loop made progress. Call only then: a stuck loop must stop pinging so systemd restarts it.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Shutdown has begun (the message in hand is being finished).
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(err) = sd_notify::notify(false, states) {
            tracing::warn!("Failed to notify the service manager: {err}");
        }
    }
}

/// `WATCHDOG_USEC` when it is meant for this process (`WATCHDOG_PID` unset or ours), as systemd specifies.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|usec| *usec > 0)?;
    match pid.map(|pid| pid.trim().parse::<u32>()) {
        None => Some(Duration::from_micros(usec)),
        Some(Ok(pid)) if pid == own_pid => Some(Duration::from_micros(usec)),
        Some(_) => None,
    }
}

/// Asks every [`ShutdownSignal`] made with it to stop; dropping it does too.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<Option<Requested>>,
}

impl ShutdownTrigger {
    pub fn request(&self, stop: Stop) {
        // Only fails when no handle is left, which has nothing to stop. A second request keeps the first's time.
        self.tx.send_if_modified(|now| {
            let first = now.is_none();
            now.get_or_insert(Requested { stop, at: tokio::time::Instant::now() });
            first
        });
    }
}

/// A stop and when it was asked for (the runtime's clock, so tests with paused time see it move).
#[derive(Debug, Clone, Copy)]
struct Requested {
    stop: Stop,
    at: tokio::time::Instant,
}

/// Which signal asked keypost to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Terminate,
    Interrupt,
}

/// Resolves once SIGTERM or SIGINT arrives. Cheap to clone: give one to each loop; check
/// [`ShutdownSignal::is_requested`] between messages and `select!` on [`ShutdownSignal::wait`] while waiting.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<Option<Requested>>,
}

impl ShutdownSignal {
    /// Installs the handlers now, so a signal that comes before the first `wait` is not lost (and does not
    /// kill the process with the default action). Needs a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Self::new();
        tokio::spawn(async move {
            let stop = tokio::select! {
                _ = term.recv() => Stop::Terminate,
                _ = int.recv() => Stop::Interrupt,
            };
            tracing::info!(signal = ?stop, "Shutdown requested; finishing the message in hand.");
            trigger.request(stop);
            // Keep the handlers installed: a second signal must not kill keypost mid-flush.
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
        });
        Ok(shutdown)
    }

    /// A handle that fires when its trigger is pulled (or dropped): what [`ShutdownSignal::install`] builds on,
    /// and how a test stops a daemon.
    pub fn new() -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(None);
        (ShutdownTrigger { tx }, Self { rx })
    }

    /// Whether a stop was requested (without waiting).
    pub fn is_requested(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// When the stop was requested, if it was.
    pub fn requested_at(&self) -> Option<tokio::time::Instant> {
        self.rx.borrow().map(|requested| requested.at)
    }

    /// Waits for SIGTERM or SIGINT; returns at once if one already came.
    pub async fn wait(&mut self) -> Stop {
        match self.rx.wait_for(Option::is_some).await {
            Ok(requested) => requested.map_or(Stop::Terminate, |requested| requested.stop),
            // The handler task is gone (runtime shutting down): treat as a stop.
            Err(_) => Stop::Terminate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_read_only_when_meant_for_this_process() {
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn a_disabled_notifier_ignores_every_call_and_has_no_watchdog() {
        let notifier = Notifier::disabled();
        notifier.ready();
        notifier.status("x\ny");
        notifier.watchdog();
        notifier.stopping();
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), None);
    }
}
