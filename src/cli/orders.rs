//! The vendor's order tools: lookup, resend, revoke, issue, export. Each becomes a [`Request`]; when the state
//! is free the tool carries it out itself, and while `keypost run` holds it (its file lock allows one process) the tool
//! asks the daemon over its control socket. Either way `Core::execute` carries it out and `control::answer` writes the output and the exit code.
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Globals;
use crate::config::Loaded;
use crate::control::{self, Answer, ExportFormat, Request};
use crate::daemon::{Licenser, any::AnyMailer, build};
use crate::reply::Renderer;
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// An order id, a buyer email address or a licensee name (the last two case-insensitive)
    pub query: String,
    /// One JSON object instead of lines: `orders` (the fields `export` writes) and `lost_license_requests`
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object with stable field names instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResendArgs {
    /// The provider (template id) the order came through, or `manual`
    pub provider: String,
    /// The provider's order id
    pub order_id: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The provider (template id) the order came through, or `manual`
    pub provider: String,
    /// The provider's order id
    pub order_id: String,
    /// Why, for the audit trail
    #[arg(long, default_value = "revoked by the vendor")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Product id from the configuration
    #[arg(long)]
    pub product: String,
    /// Licensee name, exactly as the buyer will type it
    #[arg(long)]
    pub name: String,
    /// The buyer's email address; the reply goes there
    #[arg(long)]
    pub email: String,
    /// Number of seats
    #[arg(long, default_value_t = 1)]
    pub seats: u32,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The provider (template id) the order came through, or `manual`
    pub provider: String,
    /// The order id of the licence's first order (or of any of its renewals)
    pub order_id: String,
    /// Days past the licence's current expiry
    #[arg(long)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
}

pub fn lookup(args: LookupArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    carry_out(globals, Request::Lookup { query: args.query, json: args.json })
}

pub fn status(args: StatusArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    carry_out(globals, Request::Status { json: args.json })
}

pub fn resend(args: ResendArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    carry_out(globals, Request::Resend { provider: args.provider, order_id: args.order_id })
}

pub fn revoke(args: RevokeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    carry_out(globals, Request::Revoke { provider: args.provider, order_id: args.order_id, reason: args.reason })
}

pub fn issue(args: IssueArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let IssueArgs { product, name, email, seats } = args;
    carry_out(globals, Request::Issue { product, name, email, seats })
}

pub fn extend(args: ExtendArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    carry_out(globals, Request::Extend { provider: args.provider, order_id: args.order_id, days: args.days })
}

/// Rows are written as they are read (constant memory however many orders there are): by this process when the
/// state is free, else by the running daemon, which streams them over its control socket.
pub fn export(args: ExportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let request = Request::Export { format: args.format };
    let state = build::state_dir(&loaded);
    if super::owner::foreign_owner(&state)?.is_some() {
        // Acting as the state's owner is `carry_out_with`'s business.
        return carry_out_with(&loaded, request);
    }
    match Store::open_read(&state) {
        Ok(store) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            control::answer::export_to(&store, args.format, &mut out)?;
            out.flush().context("Failed to write the output")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Locked { .. }) => carry_out_with(&loaded, request),
        Err(err) => Err(err.into()),
    }
}

/// Opens the state, or asks the running daemon when it holds it; prints the answer; returns its exit code. Run as
/// root against a state folder another user owns (the service's), it acts as that user (`owner.rs`).
pub(super) fn carry_out(globals: &Globals, request: Request) -> anyhow::Result<ExitCode> {
    carry_out_with(&super::load_config(globals)?, request)
}

/// The same with the configuration already loaded.
pub(super) fn carry_out_with(loaded: &Loaded, request: Request) -> anyhow::Result<ExitCode> {
    let mut loaded = loaded.clone();
    let shown = build::state_dir(&loaded);
    let mut state = shown.clone();
    let mut early = None;
    if let Some(owner) = super::owner::foreign_owner(&state)? {
        super::owner::absolute_paths(&mut loaded)?;
        // Secrets may be root's to read: read now; kept as a result, since a read needs none of them.
        early = Some(Parts::build(&loaded));
        state = owner.become_owner(&state)?;
    }
    let opened = if control::answer::reads_only(&request) { Store::open_read(&state) } else { Store::open(&state) };
    let answer = match opened {
        Ok(store) => directly(&loaded, store, &request, early)?,
        Err(StoreError::Locked { .. }) => {
            // A streamed answer (`export`) goes to stdout as it arrives.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let response = control::ask_into(&control::socket_path(&state), &request, &mut out).with_context(|| {
                format!("The state {} is in use by a running keypost, which could not be asked", shown.display())
            });
            out.flush().context("Failed to write the output")?;
            drop(out);
            anyhow::Result::<Answer>::from(response?)?
        }
        Err(err) => return Err(err.into()),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(answer.stdout.as_bytes()).and_then(|()| out.flush()).context("Failed to write the output")?;
    Ok(ExitCode::from(answer.exit))
}

/// What a tool needs besides the state to change it: the reply renderer, the serial makers and the mailer.
struct Parts {
    renderer: Renderer,
    licenser: Box<dyn Licenser>,
    mailer: AnyMailer,
}

impl Parts {
    fn build(loaded: &Loaded) -> anyhow::Result<Self> {
        Ok(Self {
            renderer: build::renderer(loaded)?,
            licenser: build::licenser(loaded)?,
            mailer: AnyMailer::from_config(loaded)?,
        })
    }
}

/// No daemon holds the state: this process carries the request out with its own core and mailer (built now,
/// or `early`, before it became the state's owner).
fn directly(
    loaded: &Loaded,
    store: Store,
    request: &Request,
    early: Option<anyhow::Result<Parts>>,
) -> anyhow::Result<Answer> {
    if let Some(answer) = control::answer::read(&store, request) {
        return answer;
    }
    let Parts { renderer, licenser, mailer } = early.unwrap_or_else(|| Parts::build(loaded))?;
    let core = build::core_from(loaded, store, renderer, licenser);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(core.execute(&mailer, request))
}
