//! The command line: one struct per subcommand (its `///` doc is its `--help`), dispatched to `cli/<group>.rs`.
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod aside;
/// `println!` for a command's output that stops the process quietly when stdout's reader has gone away
/// (`keypost template check | head`), as ripgrep does, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with the same care as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*)) };
}

mod check;
mod generate;
mod orders;
mod owner;
mod pool;
mod replay;
mod run;
mod serial;
mod template;

pub use crate::control::protocol::{EXIT_ERROR, EXIT_INVALID_CONFIG};

/// `keypost --version`: the package version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYPOST_COMMIT"), ")");

/// keypost: turns payment-provider order emails into license serials, sent to each buyer exactly once.
#[derive(Debug, Parser)]
#[command(name = "keypost", version = VERSION, about, long_about = None)]
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
    /// Find orders and licenses by order id, buyer email or licensee (with the other provider's notice of the
    /// same payment, shown as one purchase)
    Lookup(orders::LookupArgs),
    /// Whether the daemon runs, its last contact with the mail servers and last pass, the outbox, set-aside and
    /// review counts (exit 0 running, 3 not running)
    Status(orders::StatusArgs),
    /// Send an order's reply again (same serial)
    Resend(orders::ResendArgs),
    /// Mark an order's license revoked
    Revoke(orders::RevokeArgs),
    /// Issue a license by hand (no order email)
    Issue(orders::IssueArgs),
    /// Extend a licence with a term by N days: a new serial, mailed to the buyer, linked to the first order
    Extend(orders::ExtendArgs),
    /// Export orders and licenses as JSON lines or CSV
    Export(orders::ExportArgs),
    /// Read past order mail (an mbox, a Maildir, an IMAP folder) against the state; --apply fulfils the orders never answered
    Replay(replay::ReplayArgs),
    /// List, show, release (read again) or drop (file as ignored) the messages keypost set aside
    #[command(subcommand)]
    Aside(aside::AsideCommand),
    /// Fill a product's pool of pre-made codes, and see each pool's stock
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Print the man page or shell completions (for packaging)
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
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
        Command::Status(args) => orders::status(args, &globals),
        Command::Resend(args) => orders::resend(args, &globals),
        Command::Revoke(args) => orders::revoke(args, &globals),
        Command::Issue(args) => orders::issue(args, &globals),
        Command::Extend(args) => orders::extend(args, &globals),
        Command::Export(args) => orders::export(args, &globals),
        Command::Aside(command) => aside::run(command, &globals),
        Command::Pool(command) => pool::run(command, &globals),
        Command::Replay(args) => replay::run(args, &globals),
        Command::Generate(args) => generate::run(args),
    }
}

/// Writes a command's output; a reader that went away ends the process with success and nothing said, any other
/// failure with the error and [`EXIT_ERROR`]. Everything durable was committed before output is written.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(err) = std::io::stdout().lock().write_fmt(args) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: Failed to write the output: {err}");
        std::process::exit(i32::from(EXIT_ERROR));
    }
}

/// Whether an error is stdout's reader having gone away (EPIPE), anywhere in its chain.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Loads the configuration, turning problems into one error listing them all. Warnings are `check`'s and the
/// daemon's to list; every other command says only how many there are, so its own output stays readable.
pub fn load_config(globals: &Globals) -> anyhow::Result<crate::config::Loaded> {
    let loaded = load_config_quietly(globals)?;
    match loaded.warnings.len() {
        0 => {}
        1 => tracing::warn!("The configuration has 1 warning; `keypost check` shows it."),
        n => tracing::warn!("The configuration has {n} warnings; `keypost check` lists them."),
    }
    Ok(loaded)
}

/// Loads the configuration and lists every warning, once: for the daemon's start.
pub fn load_config_listing_warnings(globals: &Globals) -> anyhow::Result<crate::config::Loaded> {
    let loaded = load_config_quietly(globals)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}

fn load_config_quietly(globals: &Globals) -> anyhow::Result<crate::config::Loaded> {
    let path = crate::config::locate(globals.config.as_deref())?;
    Ok(crate::config::load(&path)?)
}

/// Logs to stderr; without timestamps under systemd (journald adds its own, and sets JOURNAL_STREAM); colours only
/// when stderr is a terminal and `NO_COLOR` is unset (no escape codes in files, pipes or the journal).
/// `run --once` logs warnings only unless asked for more: its summary on stdout is the result (the README's first
/// command, a cron job); the daemon logs each decision, for the journal.
pub fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // `run --once` and `replay` print their results; their logs are warnings unless asked for more.
    let one_pass =
        matches!(&cli.command, Command::Run(args) if args.once) || matches!(&cli.command, Command::Replay(_));
    let default = match cli.verbose {
        0 if one_pass => "warn",
        0 => "info",
        1 => "keypost=debug,info",
        _ => "keypost=trace,debug",
    };
    let filter = EnvFilter::try_from_env("KEYPOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // A log reader that went away (`keypost run --once 2>&1 | grep -q …`) must not stop the run: tracing's own
    // report of the failed write goes through eprintln!, which panics on a closed stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .log_internal_errors(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}
