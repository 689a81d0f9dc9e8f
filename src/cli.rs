//! The command line: one struct per subcommand (its `///` doc is its `--help`), dispatched to `cli/<group>.rs`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod check;
mod orders;
mod run;
mod serial;
mod template;

pub use crate::control::protocol::{EXIT_ERROR, EXIT_INVALID_CONFIG};

/// keypost: turns payment-provider order emails into license serials, sent to each buyer exactly once.
#[derive(Debug, Parser)]
#[command(name = "keypost", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: ./keypost.toml, then /etc/keypost/keypost.toml]
    #[arg(long, short = 'c', global = true, env = "KEYPOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); KEYPOST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the mailbox and fulfil orders (the daemon); with --once, process what is waiting and exit
    Run(run::RunArgs),
    /// Validate the configuration and every template; list every problem (exit 2 if any)
    Check(check::CheckArgs),
    /// Print the serial for a licensee name
    Serial(serial::SerialArgs),
    /// Check a serial against a licensee name (exit 0 valid, 1 not or expired)
    Verify(serial::VerifyArgs),
    /// Print the offline activation code binding a serial to a machine id
    Activate(serial::ActivateArgs),
    /// Try and check provider templates
    #[command(subcommand)]
    Template(template::TemplateCommand),
    /// Find orders and licenses by order id, buyer email or licensee
    Lookup(orders::LookupArgs),
    /// Send an order's reply again (same serial)
    Resend(orders::ResendArgs),
    /// Mark an order's license revoked
    Revoke(orders::RevokeArgs),
    /// Issue a license by hand (no order email)
    Issue(orders::IssueArgs),
    /// Export orders and licenses as JSON lines or CSV
    Export(orders::ExportArgs),
}

/// Options every command that reads the configuration shares.
#[derive(Debug, Clone, Args)]
pub struct Globals {
    pub config: Option<PathBuf>,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let globals = Globals { config: cli.config };
    match cli.command {
        Command::Run(args) => run::run(args, &globals),
        Command::Check(args) => check::run(args, &globals),
        Command::Serial(args) => serial::serial(args, &globals),
        Command::Verify(args) => serial::verify(args, &globals),
        Command::Activate(args) => serial::activate(args, &globals),
        Command::Template(command) => template::run(command, &globals),
        Command::Lookup(args) => orders::lookup(args, &globals),
        Command::Resend(args) => orders::resend(args, &globals),
        Command::Revoke(args) => orders::revoke(args, &globals),
        Command::Issue(args) => orders::issue(args, &globals),
        Command::Export(args) => orders::export(args, &globals),
    }
}

/// Whether an error is stdout's reader having gone away (EPIPE), anywhere in its chain.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Loads the configuration, turning problems into one error listing them all; prints warnings to stderr.
pub fn load_config(globals: &Globals) -> anyhow::Result<crate::config::Loaded> {
    let path = crate::config::locate(globals.config.as_deref())?;
    let loaded = crate::config::load(&path)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}

/// Logs to stderr; without timestamps under systemd (journald adds its own, and sets JOURNAL_STREAM).
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "keypost=debug,info",
        _ => "keypost=trace,debug",
    };
    let filter = EnvFilter::try_from_env("KEYPOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}
