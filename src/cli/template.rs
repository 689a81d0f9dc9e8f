//! `keypost template test` and `keypost template check`.
use std::process::ExitCode;

use clap::Subcommand;

use super::Globals;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {}

pub fn run(command: TemplateCommand, _globals: &Globals) -> anyhow::Result<ExitCode> {
    match command {}
}
