//! `keypost check`: every problem in the configuration and templates, with file and key.
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_INVALID_CONFIG, Globals};
use crate::template::TemplatesConfig;

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let path = crate::config::locate(globals.config.as_deref())?;
    let config_code = check_config(&path);
    let templates_ok = check_templates(&path)?;
    Ok(if templates_ok { config_code } else { ExitCode::from(EXIT_INVALID_CONFIG) })
}

fn check_config(path: &Path) -> ExitCode {
    match crate::config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("{warning}");
            }
            println!("{}: OK ({} product(s))", path.display(), loaded.config.products.len());
            ExitCode::SUCCESS
        }
        Err(err) => {
            for problem in &err.0 {
                println!("{problem}");
            }
            let errors = err.0.iter().filter(|p| p.severity == crate::config::Severity::Error).count();
            println!("{}: {errors} error(s)", path.display());
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

/// The templates the daemon would load, and the fixtures in the configured templates dir. `[templates]` is read
/// on its own so its problems are listed even when other sections have some.
fn check_templates(path: &Path) -> anyhow::Result<bool> {
    let base_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let config = templates_section(path).unwrap_or_default();
    let roots: Vec<_> = super::template::configured_fixtures(&config, base_dir).into_iter().collect();
    super::template::check_templates(&config, base_dir, &roots, super::template::Fixtures::default())
}

/// The `[templates]` table of the config file, when it reads as one (the config check reports it otherwise).
fn templates_section(path: &Path) -> Option<TemplatesConfig> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut table: toml::Table = toml::from_str(&text).ok()?;
    match table.remove("templates") {
        Some(section) => section.try_into().ok(),
        None => Some(TemplatesConfig::default()),
    }
}
