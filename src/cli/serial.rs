//! `keypost serial` and `keypost verify`.
use std::process::ExitCode;

use clap::Args;

use super::Globals;

#[derive(Debug, Args)]
pub struct SerialArgs {}

#[derive(Debug, Args)]
pub struct VerifyArgs {}

pub fn serial(_args: SerialArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost serial is being built")
}

pub fn verify(_args: VerifyArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost verify is being built")
}
