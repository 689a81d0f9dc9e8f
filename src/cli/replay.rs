//! `keypost replay`: past order mail (an mbox, a Maildir, an IMAP folder) against the state, one line per
//! message and a summary; `--apply` fulfils the orders never answered (`daemon/replay.rs` says how).
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use super::Globals;
use crate::daemon::any::AnyMailer;
use crate::daemon::build;
use crate::daemon::replay::{Finding, Replayer, Summary};
use crate::mailbox::archive::{Archive, ArchiveSpec, Progress};
use crate::store::{Store, StoreError};
use crate::trust::Verifier;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// An mbox file or a Maildir folder of past order mail (or --folder for an IMAP folder)
    #[arg(required_unless_present = "folder", conflicts_with = "folder")]
    pub source: Option<PathBuf>,
    /// A folder of the configured IMAP account ([mailbox.imap]) instead of a file, e.g. "Archive/orders-2025"
    #[arg(long, value_name = "NAME")]
    pub folder: Option<String>,
    /// Fulfil the orders never answered (the "new" ones) and send their replies, exactly once; without it the
    /// replay only shows what it finds and changes nothing
    #[arg(long)]
    pub apply: bool,
}

/// Run as root against a state folder another user owns (the service's), it acts as that user, as `lookup` does
/// (`owner.rs`): the archive is opened and the secrets are read first, as root, then the state as its owner.
pub fn run(args: ReplayArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let mut loaded = super::load_config(globals)?;
    let state = build::state_dir(&loaded);
    let owner = super::owner::foreign_owner(&state)?;
    if owner.is_some() {
        super::owner::absolute_paths(&mut loaded)?;
    }
    let spec = match (&args.source, &args.folder) {
        // Absolute: acting as the state's owner changes the working folder.
        (Some(path), _) => {
            ArchiveSpec::Path(std::path::absolute(path).context("Failed to resolve the archive's path")?)
        }
        (None, Some(folder)) => {
            let mailbox = loaded.config.mailbox.as_ref().and_then(|m| m.imap.as_ref());
            let config = mailbox.context(
                "--folder reads a folder of the IMAP account in [mailbox.imap], and the configuration has none",
            )?;
            ArchiveSpec::Imap {
                config: Box::new(config.clone()),
                base_dir: loaded.base_dir.clone(),
                folder: folder.clone(),
            }
        }
        (None, None) => anyhow::bail!("give an mbox file, a Maildir or --folder NAME"),
    };
    let (renderer, licenser) = (build::renderer(&loaded)?, build::licenser(&loaded)?);
    let reader = build::reader(&loaded)?;
    let verifier = Verifier::new(&loaded.config.trust).context("Failed to set up the trust checks")?;
    let mailer = if args.apply { Some(AnyMailer::from_config(&loaded)?) } else { None };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let max_bytes = loaded.config.templates.max_message_bytes;
        let mut archive = Archive::open(&spec, max_bytes).await?;
        let state = match owner {
            Some(owner) => owner.become_owner(&state)?,
            None => state,
        };
        let store = Store::open(&state).map_err(|err| match err {
            StoreError::Locked { .. } => anyhow::Error::new(err).context(
                "keypost replay reads the state itself: stop `keypost run` first (systemctl stop keypost), replay, start it again",
            ),
            err => err.into(),
        })?;
        let replayer = Replayer::new(build::core_from(&loaded, store, renderer, licenser), reader, verifier);
        let summary = replay(&replayer, &mut archive, mailer.as_ref()).await;
        archive.close().await;
        summary
    })?;
    outln!("{summary}");
    if args.apply {
        outln!(
            "applied: fulfilled {}, replies sent {}, send failures {}",
            summary.fulfilled,
            summary.sent,
            summary.send_failures
        );
    } else if summary.new > 0 {
        outln!("{} order(s) never answered: run again with --apply to fulfil them", summary.new);
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(replayer: &Replayer, archive: &mut Archive, mailer: Option<&AnyMailer>) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut bar = Bar::new();
    while let Some(raw) = archive.next().await? {
        let finding = replayer.look(&raw).await?;
        summary.count(&finding);
        let mut line = format!("{:>8}  {finding}", raw.key);
        if let (Some(mailer), Finding::New { .. }) = (mailer, &finding) {
            let (effect, outcome) = replayer.apply(mailer, archive.name(), &raw).await?;
            summary.fulfilled += usize::from(effect == crate::daemon::Effect::Fulfilled);
            summary.sent += outcome.sent;
            summary.send_failures += outcome.send_failures;
            line.push_str(&format!("  -> {effect:?}"));
        }
        bar.clear();
        outln!("{line}");
        bar.show(archive.progress());
    }
    bar.clear();
    Ok(summary)
}

/// A one-line progress bar on stderr: only when stderr is a terminal, only once the replay has run a second,
/// redrawn at most ten times a second, and cleared before each line of output.
struct Bar {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Bar {
    fn new() -> Self {
        Self { enabled: std::io::stderr().is_terminal(), started: Instant::now(), drawn: None }
    }

    fn show(&mut self, progress: Progress) {
        let now = Instant::now();
        if !self.enabled || now - self.started < Duration::from_secs(1) {
            return;
        }
        if self.drawn.is_some_and(|at| now - at < Duration::from_millis(100)) {
            return;
        }
        let percent = (progress.done * 100).checked_div(progress.total).unwrap_or(100).min(100);
        let filled = usize::try_from(percent / 5).unwrap_or(20);
        eprint!("\r[{}{}] {percent:>3}%", "#".repeat(filled), "-".repeat(20 - filled));
        self.drawn = Some(now);
    }

    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}
