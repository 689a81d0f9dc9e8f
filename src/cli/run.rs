//! `keypost run`: the daemon, or one pass with `--once`.
use std::process::ExitCode;

use clap::Args;

use super::Globals;

#[derive(Debug, Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keypost run is being built")
}
