//! `keypost check`: every problem in the configuration and templates, with file and key.
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_INVALID_CONFIG, Globals};

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let path = crate::config::locate(globals.config.as_deref())?;
    match crate::config::load(&path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("{warning}");
            }
            println!("{}: OK ({} product(s))", path.display(), loaded.config.products.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            for problem in &err.0 {
                println!("{problem}");
            }
            let errors = err.0.iter().filter(|p| p.severity == crate::config::Severity::Error).count();
            println!("{}: {errors} error(s)", path.display());
            Ok(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}
