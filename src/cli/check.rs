//! `keypost check`: every problem in the configuration and templates, with file and key.
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_INVALID_CONFIG, Globals};
use crate::config::Loaded;
use crate::problems::{Problems, Severity};
use crate::template::TemplatesConfig;

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let path = crate::config::locate(globals.config.as_deref())?;
    let config_ok = check_config(&path);
    let templates_ok = check_templates(&path)?;
    Ok(if config_ok && templates_ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INVALID_CONFIG) })
}

/// The config file, then what only shows when it is used: every secret loads, every provider it names exists.
fn check_config(path: &Path) -> bool {
    let problems = match crate::config::load(path) {
        Ok(loaded) => {
            let mut problems = Problems::new(path);
            problems.extend(loaded.warnings.iter().cloned());
            check_secrets(&loaded, &mut problems);
            check_provider_ids(&loaded, &mut problems);
            check_replies(&loaded, &mut problems);
            super::pool::check_stock(&loaded, &mut problems);
            if !problems.has_errors() {
                for warning in problems.items() {
                    outln!("{warning}");
                }
                outln!("{}: OK ({} product(s))", path.display(), loaded.config.products.len());
                return true;
            }
            problems.into_items()
        }
        Err(err) => err.0,
    };
    for problem in &problems {
        outln!("{problem}");
    }
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    outln!("{}: {errors} error(s)", path.display());
    false
}

/// Loads every key and password the daemon would load, so a missing variable, an unreadable or world-readable
/// file shows up now rather than at start-up. Only where each comes from is printed, never a value.
fn check_secrets(loaded: &Loaded, problems: &mut Problems) {
    for (index, product) in loaded.config.products.iter().enumerate() {
        if let Some(Err(err)) = product.serial.as_ref().map(|serial| serial.maker(&loaded.base_dir)) {
            problems.error(format!("product[{index}].serial"), err);
        }
    }
    let mailbox_password = loaded.config.mailbox.as_ref().and_then(|m| m.imap.as_ref()).map(|imap| &imap.password);
    if let Some(Err(err)) = mailbox_password.map(|source| source.load(&loaded.base_dir)) {
        problems.error("mailbox.imap.password", err);
    }
    let smtp_password = loaded.config.outbox.as_ref().and_then(|o| o.smtp.as_ref()).and_then(|s| s.password.as_ref());
    if let Some(Err(err)) = smtp_password.map(|source| source.load(&loaded.base_dir)) {
        problems.error("outbox.smtp.password", err);
    }
}

/// A configuration that sends (has an `[outbox]`) must have what `keypost run` needs to render replies: sender,
/// vendor, readable reply template files with known placeholders.
fn check_replies(loaded: &Loaded, problems: &mut Problems) {
    if loaded.config.outbox.is_none() {
        return;
    }
    if let Err(err) = crate::daemon::build::renderer(loaded) {
        problems.extend(err.0);
    }
}

/// `trust.sender_only` and `templates.disable` name templates; a typo there would silently trust nothing (or the
/// wrong provider), or leave enabled a template meant to be off.
fn check_provider_ids(loaded: &Loaded, problems: &mut Problems) {
    let all = crate::template::TemplatesConfig { disable: Vec::new(), ..loaded.config.templates.clone() };
    if let Ok(templates) = crate::template::Templates::load(&all, &loaded.base_dir) {
        for (index, id) in loaded.config.templates.disable.iter().enumerate() {
            if templates.get(id).is_none() {
                let known: Vec<_> = templates.iter().map(|t| t.id.as_str()).collect();
                problems.error(
                    format!("templates.disable[{index}]"),
                    format!("no template {id:?}; known: {}", known.join(", ")),
                );
            }
        }
    }
    let templates = match crate::template::Templates::load(&loaded.config.templates, &loaded.base_dir) {
        Ok(templates) => templates,
        Err(_) => return, // listed by the template check
    };
    for (index, id) in loaded.config.trust.sender_only.iter().enumerate() {
        if templates.get(id).is_none() {
            let known: Vec<_> = templates.iter().map(|t| t.id.as_str()).collect();
            problems.error(
                format!("trust.sender_only[{index}]"),
                format!("no template {id:?}; known: {}", known.join(", ")),
            );
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
