//! `keypost template test` and `keypost template check`: the tools a vendor uses to add or fix a provider.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{EXIT_ERROR, EXIT_INVALID_CONFIG, Globals};
use crate::config::Loaded;
use crate::problems::Problem;
use crate::template::{Outcome, Templates, TemplatesConfig, golden, test_message};

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Show what the templates make of one saved message (.eml)
    ///
    /// Which template matched (or why none did: the near misses), the classification, every extracted field
    /// and the text it came from. Exit 0 when the message was classified (an order or not an order), 1 when
    /// no template matched, the extraction is broken or the message is unreadable.
    Test(TestArgs),
    /// Compile every template and run every fixture; exit 2 on any problem
    ///
    /// Fixtures are <fixtures>/<provider>/<case>.eml, each checked against <case>.expected.json. Every
    /// problem is listed with its file and key.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The message as saved from the mail client (an .eml file: headers and body, unchanged)
    pub file: PathBuf,
    /// Try only this template (by id, e.g. paypal) and say why it does not match
    #[arg(long)]
    pub template: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Also print the text the templates were run against (what the patterns must match)
    #[arg(long)]
    pub show_text: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A fixture folder; repeatable [default: ./fixtures when it exists, and fixtures/ in the configured
    /// templates dir]
    #[arg(long)]
    pub fixtures: Vec<PathBuf>,
    /// Run only the fixtures of this provider (the fixture folder name, e.g. payhip)
    #[arg(long)]
    pub template: Option<String>,
    /// Write each case's .expected.json from what keypost extracts now, instead of comparing (review the diff!).
    /// A fixture named as a sale that no template classifies is refused
    #[arg(long)]
    pub bless: bool,
    /// With --bless: also record "no template matched" for fixtures named as a sale
    #[arg(long, requires = "bless")]
    pub force: bool,
}

pub fn run(command: TemplateCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    match command {
        TemplateCommand::Test(args) => test(args, globals),
        TemplateCommand::Check(args) => check(args, globals),
    }
}

fn test(args: TestArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = optional_config(globals)?;
    let templates = match load_templates(loaded.as_ref()) {
        Ok(templates) => templates,
        Err(problems) => return Ok(print_problems(&problems)),
    };
    let raw = std::fs::read(&args.file).with_context(|| format!("Failed to read {}", args.file.display()))?;
    let report = test_message(&templates, &raw, args.template.as_deref());
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.render(args.show_text));
    }
    Ok(if report.is_classified() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_ERROR) })
}

fn check(args: CheckArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = optional_config(globals)?;
    let (config, base_dir) = templates_config(loaded.as_ref());
    let mut roots = args.fixtures;
    if roots.is_empty() {
        roots.extend(Some(PathBuf::from("fixtures")).filter(|p| p.is_dir()));
        roots.extend(configured_fixtures(&config, &base_dir));
    }
    let only = args.template.as_deref();
    let ok = check_templates(
        &config,
        &base_dir,
        &roots,
        Fixtures { only, mode: bless_mode(args.bless, args.force), warn_uncovered: only.is_none() },
    )?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INVALID_CONFIG) })
}

/// Which fixtures [`check_templates`] runs and how.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fixtures<'a> {
    /// Only this provider's.
    pub only: Option<&'a str>,
    /// Compare, or rewrite the expectations.
    pub mode: golden::Mode,
    /// Warn about templates that have no fixtures.
    pub warn_uncovered: bool,
}

/// Loads the templates and runs the fixtures under `roots`, printing every problem; true when all is well.
/// `keypost check` uses it too.
pub(super) fn check_templates(
    config: &TemplatesConfig,
    base_dir: &Path,
    roots: &[PathBuf],
    how: Fixtures<'_>,
) -> anyhow::Result<bool> {
    let templates = match Templates::load(config, base_dir) {
        Ok(templates) => templates,
        Err(problems) => {
            print_problems(&problems);
            return Ok(false);
        }
    };
    let (mut passed, mut failed) = (0, 0);
    let mut covered = std::collections::BTreeSet::new();
    for root in roots {
        let cases = golden::run(&templates, root, how.only, how.mode)
            .with_context(|| format!("Failed to read fixtures in {}", root.display()))?;
        for case in cases {
            covered.insert(case.provider.clone());
            if let Some(warning) = taken_by_another(&templates, &case) {
                outln!("warning: {warning}");
            }
            match case.status {
                golden::Status::Failed(diff) => {
                    failed += 1;
                    outln!("error: {}: fixture does not match\n{diff}", case.eml.display());
                }
                golden::Status::Refused(why) => {
                    failed += 1;
                    outln!("error: {why}");
                }
                golden::Status::Passed | golden::Status::Blessed => passed += 1,
            }
        }
    }
    for template in templates.iter().filter(|t| how.warn_uncovered && !covered.contains(&t.id)) {
        outln!("warning: {}: template {:?} has no fixtures", template.file.display(), template.id);
    }
    let warnings = templates.shadowing_warnings().into_iter().chain(templates.double_notice_warnings());
    for warning in warnings.chain(templates.shared_sender_warnings()) {
        outln!("warning: {warning}");
    }
    let verb = if how.mode == golden::Mode::Compare { "passed" } else { "written" };
    outln!("{} template(s) OK; {passed} fixture(s) {verb}, {failed} failed", templates.iter().count());
    Ok(failed == 0)
}

/// A fixture in a template's folder that another template classifies: that template can never win it.
fn taken_by_another(templates: &Templates, case: &golden::Case) -> Option<String> {
    let own = templates.get(&case.provider)?;
    let raw = std::fs::read(&case.eml).ok()?;
    let taker = match test_message(templates, &raw, None).outcome? {
        Outcome::Order { template, .. } | Outcome::NotAnOrder { template, .. } | Outcome::Broken { template, .. } => {
            template
        }
        Outcome::Unclassified { .. } | Outcome::Unrecognised { .. } => return None,
    };
    let classified_alone = test_message(templates, &raw, Some(&own.id)).is_classified();
    (taker != own.id && classified_alone).then(|| {
        format!(
            "{}: template {:?} can never win this fixture: {taker:?} is tried first and takes it (see \"Order\" in \
             docs/templates.md; raise {:?}'s priority)",
            case.eml.display(),
            own.id,
            own.id
        )
    })
}

fn bless_mode(bless: bool, force: bool) -> golden::Mode {
    match (bless, force) {
        (true, true) => golden::Mode::ForceBless,
        (true, false) => golden::Mode::Bless,
        (false, _) => golden::Mode::Compare,
    }
}

/// `<templates.dir>/fixtures`, when a templates dir is configured and has one.
pub(super) fn configured_fixtures(config: &TemplatesConfig, base_dir: &Path) -> Option<PathBuf> {
    config.dir.as_ref().map(|dir| base_dir.join(dir).join("fixtures")).filter(|p| p.is_dir())
}

/// The `[templates]` section and the folder its paths are relative to; the defaults without a configuration.
fn templates_config(loaded: Option<&Loaded>) -> (TemplatesConfig, PathBuf) {
    match loaded {
        Some(loaded) => (loaded.config.templates.clone(), loaded.base_dir.clone()),
        None => (TemplatesConfig::default(), PathBuf::from(".")),
    }
}

/// The configuration when `--config` is given or a default one exists; templates work without one.
fn optional_config(globals: &Globals) -> anyhow::Result<Option<Loaded>> {
    if globals.config.is_none() && crate::config::locate(None).is_err() {
        return Ok(None);
    }
    super::load_config(globals).map(Some)
}

fn load_templates(loaded: Option<&Loaded>) -> Result<Templates, Vec<Problem>> {
    let (config, base_dir) = templates_config(loaded);
    Templates::load(&config, &base_dir)
}

fn print_problems(problems: &[Problem]) -> ExitCode {
    for problem in problems {
        outln!("{problem}");
    }
    outln!("{} problem(s) in the templates", problems.len());
    ExitCode::from(EXIT_INVALID_CONFIG)
}
