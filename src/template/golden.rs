//! Golden fixtures: `<root>/<provider>/<case>.eml` next to `<case>.expected.json`. Each case goes through
//! [`test_message`], the function `keypost template test` uses; `bless` rewrites the expectations.
use std::path::{Path, PathBuf};

use super::{Outcome, Templates, test_message};

/// The environment variable that makes the golden test rewrite expectations: `1`, or `force` to also record
/// "no template matched" for a fixture named as a sale.
pub const BLESS_VAR: &str = "KEYPOST_BLESS";

/// Compare with the expectations, or rewrite them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Compare,
    /// Rewrite, except that a fixture named as a sale (`sale`, `order` or `purchase` in its name, without
    /// `not`) that no template classifies is refused: that is a template to fix, not an expectation to record.
    Bless,
    /// Rewrite everything.
    ForceBless,
}

impl Mode {
    /// From [`BLESS_VAR`]'s value.
    pub fn from_env() -> Mode {
        match std::env::var(BLESS_VAR).as_deref() {
            Ok("1") => Mode::Bless,
            Ok("force") => Mode::ForceBless,
            _ => Mode::Compare,
        }
    }
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// The expectation was (re)written.
    Blessed,
    /// Not blessed: why.
    Refused(String),
    /// What differs, as expected vs actual JSON.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The folder name: the provider the case belongs to.
    pub provider: String,
    pub eml: PathBuf,
    pub status: Status,
}

/// Runs every case under `root` (only `provider`'s when given), sorted by path.
pub fn run(templates: &Templates, root: &Path, provider: Option<&str>, mode: Mode) -> std::io::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (provider, eml) in case_files(root, provider)? {
        let raw = std::fs::read(&eml)?;
        let report = test_message(templates, &raw, None);
        let actual = report.expectation();
        let expected_path = eml.with_extension("expected.json");
        let unmatched = matches!(report.outcome, Some(Outcome::Unrecognised { .. } | Outcome::Unclassified { .. }));
        let status = if mode == Mode::Bless && unmatched && named_as_sale(&eml) {
            Status::Refused(format!(
                "{} is named as a sale but no template classifies it; fix the template, rename the fixture, or \
                 bless with force ({BLESS_VAR}=force, template check --bless --force)",
                eml.display()
            ))
        } else if mode != Mode::Compare {
            let text = serde_json::to_string_pretty(&actual).unwrap_or_default() + "\n";
            std::fs::write(&expected_path, text)?;
            Status::Blessed
        } else {
            compare(&expected_path, &actual)
        };
        cases.push(Case { provider, eml, status });
    }
    Ok(cases)
}

/// `sale`, `order` or `purchase` is a word of the file name, and `not` is not.
fn named_as_sale(eml: &Path) -> bool {
    let stem = eml.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_lowercase();
    let words: Vec<&str> = stem.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    words.iter().any(|w| matches!(*w, "sale" | "order" | "purchase")) && !words.contains(&"not")
}

fn compare(expected_path: &Path, actual: &serde_json::Value) -> Status {
    let expected = match std::fs::read_to_string(expected_path) {
        Ok(text) => text,
        Err(err) => {
            return Status::Failed(format!("cannot read {}: {err} (run with {BLESS_VAR}=1)", expected_path.display()));
        }
    };
    match serde_json::from_str::<serde_json::Value>(&expected) {
        Ok(expected) if &expected == actual => Status::Passed,
        Ok(expected) => Status::Failed(format!(
            "expected:\n{}\nactual:\n{}",
            serde_json::to_string_pretty(&expected).unwrap_or_default(),
            serde_json::to_string_pretty(actual).unwrap_or_default()
        )),
        Err(err) => Status::Failed(format!("{} is not JSON: {err}", expected_path.display())),
    }
}

/// `(provider, path)` of every `.eml` one folder down from `root`.
fn case_files(root: &Path, only: Option<&str>) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root)? {
        let dir = dir?.path();
        let Some(provider) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !dir.is_dir() || only.is_some_and(|only| only != provider) {
            continue;
        }
        for file in std::fs::read_dir(&dir)? {
            let file = file?.path();
            if file.extension().is_some_and(|ext| ext == "eml") {
                found.push((provider.clone(), file));
            }
        }
    }
    found.sort();
    Ok(found)
}
