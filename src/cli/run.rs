//! `keypost run`: the daemon, or one pass with `--once`. The daemon also serves the vendor's tools on its
//! control socket (`control.rs`); `--once` does not listen (a tool run meanwhile says to wait for it).
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Globals;
use crate::control::ControlServer;
use crate::daemon::{Outcome, build};
use crate::metrics::MetricsServer;
use crate::service::{Notifier, ShutdownSignal};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process what is waiting, send the replies, print a summary and exit (instead of watching for new mail)
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // The daemon's signal handlers come first: a stop asked for while it starts (config, templates, state) ends
    // it cleanly once it is up, instead of killing it with the signal's default action.
    let shutdown = if args.once {
        None
    } else {
        Some(runtime.block_on(async { ShutdownSignal::install() }).context("Failed to install the signal handlers")?)
    };
    // The daemon lists its configuration's warnings once, for the journal; one pass only counts them.
    let loaded = if args.once { super::load_config(globals)? } else { super::load_config_listing_warnings(globals)? };
    super::owner::refuse_root_daemon(&build::state_dir(&loaded), args.once)?;
    runtime.block_on(async {
        let mut daemon = build::daemon(&loaded)?;
        let Some(shutdown) = shutdown else {
            let outcome = daemon.drain().await?;
            outln!("{}", summary(&outcome));
            let waiting = daemon.core.store.outbox_len();
            if waiting > 0 {
                outln!("{waiting} message(s) wait in the outbox for a retry.");
            }
            return Ok(ExitCode::SUCCESS);
        };
        // Dropped when this returns (a clean stop or an error): stops serving and removes the socket. Without
        // it keypost still fulfils orders; only the vendor's tools cannot reach it while it runs.
        let control = match ControlServer::start(
            &build::state_dir(&loaded),
            daemon.core.store.clone(),
            daemon.core.telemetry.clone(),
        ) {
            Ok((control, jobs)) => {
                daemon.serve_jobs(jobs);
                Some(control)
            }
            Err(err) => {
                tracing::error!("{err:#}; the order tools cannot reach keypost while it runs");
                None
            }
        };
        // Dropped when this returns. Without it keypost still fulfils orders; the scrape's `up` shows it is gone.
        let metrics = match loaded.config.metrics.address() {
            Some(address) => {
                let (store, telemetry) = (daemon.core.store.clone(), daemon.core.telemetry.clone());
                MetricsServer::start(address, store, telemetry)
                    .await
                    .inspect_err(|err| tracing::error!("{err:#}; keypost goes on without its metrics endpoint"))
                    .ok()
            }
            None => None,
        };
        let notifier = Notifier::from_env();
        if let Some(interval) = notifier.watchdog_interval() {
            daemon.set_max_wait(interval / 2);
            // A pass sending a backlog through a slow relay can outlast the interval: its sends ping too.
            let pinger = notifier.clone();
            daemon.core.on_progress(move || pinger.watchdog());
        }
        daemon.source.connect().await;
        notifier.ready();
        tracing::info!(source = %crate::mailbox::Source::name(&daemon.source), "keypost is running.");
        let mut total = Outcome::default();
        let on_pass = |outcome: Option<&Outcome>| {
            notifier.watchdog();
            match outcome {
                Some(outcome) => {
                    total.add(outcome);
                    notifier.status(&format!("Since start: {total}"));
                }
                None => notifier.status("The last pass failed; retrying (see the log)"),
            }
        };
        daemon.run(shutdown, on_pass).await?;
        notifier.stopping();
        drop(control);
        drop(metrics);
        tracing::info!("keypost stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// The `--once` summary: one line per count, so it reads well and greps well.
pub fn summary(outcome: &Outcome) -> String {
    let rows = [
        ("messages", outcome.messages),
        ("fulfilled", outcome.fulfilled),
        ("ignored", outcome.ignored),
        ("unknown senders", outcome.unknown_senders),
        ("set aside", outcome.set_aside),
        ("for review", outcome.review),
        ("revoked", outcome.revoked),
        ("duplicates", outcome.skipped),
        ("settled again", outcome.resettled),
        ("retrying", outcome.retrying),
        ("replies sent", outcome.sent),
        ("send failures", outcome.send_failures),
        ("lost licenses", outcome.self_service),
    ];
    rows.iter().map(|(name, count)| format!("{name:>15}: {count}")).collect::<Vec<_>>().join("\n")
}
