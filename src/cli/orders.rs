//! The vendor's order tools: lookup, resend, revoke, issue, export. They open the state themselves, so
//! `keypost run` must not be running at the same time (sled allows one process).
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::Globals;
use crate::daemon::{Core, any::AnyMailer, build};
use crate::store::{OrderRecord, ReplyState};

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// An order id, a buyer email address or a licensee name (the last two case-insensitive)
    pub query: String,
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
pub struct ExportArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

pub fn lookup(args: LookupArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let found = build::store(&loaded)?.lookup(&args.query)?;
    for record in &found {
        println!("{}", describe(record));
    }
    if found.is_empty() {
        println!("nothing found for {:?}", args.query);
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(record: &OrderRecord) -> String {
    let license = record.license.as_ref().map_or_else(
        || "no license".to_owned(),
        |l| format!("{} x{} for {:?}: {}", l.grant.product, l.grant.seats, l.grant.licensee.as_str(), l.serial),
    );
    let buyer = record.buyer_email.as_ref().map_or("-", |b| b.as_str());
    let revoked = record.revoked.as_ref().map(|r| format!(" REVOKED ({})", r.reason)).unwrap_or_default();
    format!(
        "{} {} {}: {license}; buyer {buyer}; reply {}{revoked}",
        record.label(),
        record.kind.as_str(),
        record.decision,
        reply_state(&record.reply)
    )
}

fn reply_state(state: &ReplyState) -> String {
    match state {
        ReplyState::None => "none".to_owned(),
        ReplyState::Queued { .. } => "queued".to_owned(),
        ReplyState::Sent { at, .. } => format!("sent {}", rfc3339(*at)),
        ReplyState::Failed { reason, attempts } => format!("failed after {attempts} attempt(s): {reason}"),
        ReplyState::Cancelled { reason } => format!("cancelled: {reason}"),
    }
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

/// The core and the mailer, for the commands that send.
fn sending(globals: &Globals) -> anyhow::Result<(Core, AnyMailer)> {
    let loaded = super::load_config(globals)?;
    Ok((build::core(&loaded)?, AnyMailer::from_config(&loaded)?))
}

fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future)
}

pub fn resend(args: ResendArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (core, mailer) = sending(globals)?;
    block_on(async {
        let queued = core.resend(&args.provider, &args.order_id).await?;
        let outcome = core.send_queued(&mailer, &queued).await?;
        println!("{} reply(ies) queued, {} sent, {} failed", queued.len(), outcome.sent, outcome.send_failures);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn revoke(args: RevokeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (core, mailer) = sending(globals)?;
    block_on(async {
        let revoked = core.revoke(&args.provider, &args.order_id, &args.reason).await?;
        core.send_due(&mailer).await?;
        println!("{revoked} license(s) of {}/{} revoked", args.provider, args.order_id);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn issue(args: IssueArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (core, mailer) = sending(globals)?;
    block_on(async {
        let (order_id, queued) = core.issue_manual(&args.product, &args.name, &args.email, args.seats).await?;
        let outcome = core.send_queued(&mailer, &queued).await?;
        println!(
            "issued {}/{order_id}: {} sent, {} failed",
            crate::daemon::MANUAL_PROVIDER,
            outcome.sent,
            outcome.send_failures
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn export(args: ExportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let orders = build::store(&loaded)?.orders()?;
    let mut out = std::io::stdout().lock();
    match args.format {
        ExportFormat::Jsonl => {
            for record in &orders {
                writeln!(out, "{}", serde_json::to_string(record)?)?;
            }
        }
        ExportFormat::Csv => {
            writeln!(out, "{}", CSV_HEADER.join(","))?;
            for record in &orders {
                writeln!(out, "{}", csv_row(record).iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const CSV_HEADER: [&str; 15] = [
    "provider",
    "order_id",
    "line",
    "kind",
    "test",
    "received_at",
    "decision",
    "reason",
    "product",
    "seats",
    "licensee",
    "serial",
    "buyer_email",
    "reply",
    "revoked",
];

fn csv_row(r: &OrderRecord) -> [String; 15] {
    let license = r.license.as_ref();
    [
        r.provider.clone(),
        r.order_id.to_string(),
        r.line.to_string(),
        r.kind.as_str().to_owned(),
        r.test.to_string(),
        rfc3339(r.received_at),
        r.decision.clone(),
        r.reason.clone(),
        license.map(|l| l.grant.product.clone()).unwrap_or_default(),
        license.map(|l| l.grant.seats.to_string()).unwrap_or_default(),
        license.map(|l| l.grant.licensee.to_string()).unwrap_or_default(),
        license.map(|l| l.serial.clone()).unwrap_or_default(),
        r.buyer_email.as_ref().map(ToString::to_string).unwrap_or_default(),
        reply_state(&r.reply),
        r.revoked.as_ref().map(|v| v.reason.clone()).unwrap_or_default(),
    ]
}

/// RFC 4180 quoting; a leading `=+-@` is prefixed with `'` so a spreadsheet does not run a buyer's name.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_field("Åsa, \"Bo\""), "\"Åsa, \"\"Bo\"\"\"");
        assert_eq!(super::csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::csv_field("plain"), "plain");
    }
}
