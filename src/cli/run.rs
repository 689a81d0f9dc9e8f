//! `keypost run`: the daemon, or one pass with `--once`.
use std::process::ExitCode;

use clap::Args;

use super::Globals;
use crate::daemon::{Outcome, build};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process what is waiting, send the replies, print a summary and exit (instead of watching for new mail)
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut daemon = build::daemon(&loaded)?;
        if args.once {
            let outcome = daemon.drain().await?;
            println!("{}", summary(&outcome));
            let waiting = daemon.core.store.outbox_len();
            if waiting > 0 {
                println!("{waiting} message(s) wait in the outbox for a retry.");
            }
        } else {
            tracing::info!(source = %crate::mailbox::Source::name(&daemon.source), "keypost is running.");
            daemon.run(shutdown(), |_| {}).await?;
            tracing::info!("keypost stopped.");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The `--once` summary: one line per count, so it reads well and greps well.
pub fn summary(outcome: &Outcome) -> String {
    let rows = [
        ("messages", outcome.messages),
        ("fulfilled", outcome.fulfilled),
        ("ignored", outcome.ignored),
        ("set aside", outcome.set_aside),
        ("for review", outcome.review),
        ("revoked", outcome.revoked),
        ("duplicates", outcome.skipped),
        ("settled again", outcome.resettled),
        ("replies sent", outcome.sent),
        ("send failures", outcome.send_failures),
    ];
    rows.iter().map(|(name, count)| format!("{name:>14}: {count}")).collect::<Vec<_>>().join("\n")
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
