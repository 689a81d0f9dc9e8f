//! The vendor's order tools: lookup, resend, revoke, issue, export.
use std::process::ExitCode;

use clap::Args;

use super::Globals;

#[derive(Debug, Args)]
pub struct LookupArgs {}
#[derive(Debug, Args)]
pub struct ResendArgs {}
#[derive(Debug, Args)]
pub struct RevokeArgs {}
#[derive(Debug, Args)]
pub struct IssueArgs {}
#[derive(Debug, Args)]
pub struct ExportArgs {}

pub fn lookup(_args: LookupArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost lookup is being built")
}
pub fn resend(_args: ResendArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost resend is being built")
}
pub fn revoke(_args: RevokeArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost revoke is being built")
}
pub fn issue(_args: IssueArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost issue is being built")
}
pub fn export(_args: ExportArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost export is being built")
}
