//! Unit tests of loading and classifying with small inline templates (the fixtures cover the real ones).
use super::*;

#[test]
fn builtin_templates_all_load() {
    let templates = Templates::builtin().unwrap_or_else(|p| panic!("{p:#?}"));
    assert!(templates.iter().count() >= 2);
}
