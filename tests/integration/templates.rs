//! Integration tests: templates. The golden fixtures through the function `keypost template test` uses, a
//! no-panic property over arbitrary and mutated bytes, and the built binary as a vendor runs it.
use std::path::{Path, PathBuf};

use keypost::template::{Outcome, Templates, golden, test_message};
use proptest::prelude::*;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    manifest_dir().join("fixtures")
}

fn builtin() -> Templates {
    Templates::builtin().unwrap_or_else(|problems| panic!("built-in templates have problems: {problems:#?}"))
}

#[test]
fn every_golden_fixture_gives_its_expected_result() {
    let bless = golden::Mode::from_env();
    let cases = golden::run(&builtin(), &fixtures(), None, bless).unwrap();
    assert!(!cases.is_empty(), "no fixture ran: is fixtures/ empty?");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| match &case.status {
            golden::Status::Failed(diff) | golden::Status::Refused(diff) => {
                Some(format!("{}:\n{diff}", case.eml.display()))
            }
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} fixture(s) failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_builtin_template_has_a_sale_and_a_non_order_fixture() {
    let templates = builtin();
    let cases = golden::run(&templates, &fixtures(), None, golden::Mode::Compare).unwrap();
    for template in templates.iter() {
        let outcomes: Vec<Outcome> = cases
            .iter()
            .filter(|case| case.provider == template.id)
            .filter_map(|case| test_message(&templates, &std::fs::read(&case.eml).unwrap(), None).outcome)
            .collect();
        let has_sale = outcomes.iter().any(|o| matches!(o, Outcome::Order { order, .. } if !order.kind.revokes()));
        let has_non_order = outcomes.iter().any(|o| matches!(o, Outcome::NotAnOrder { .. }));
        assert!(has_sale && has_non_order, "{}: needs a sale fixture and a not-an-order fixture", template.id);
    }
}

/// Every fixture's bytes, for mutation.
fn fixture_bytes() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for dir in std::fs::read_dir(fixtures()).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                all.push(std::fs::read(path).unwrap());
            }
        }
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let templates = builtin();
        let _ = test_message(&templates, &raw, None);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..24),
    ) {
        let all = fixture_bytes();
        let mut raw = all[pick.index(all.len())].clone();
        for (at, byte, op) in edits {
            if raw.is_empty() { break; }
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => { raw.insert(i, byte); }
                _ => { raw.truncate(i); }
            }
        }
        let templates = builtin();
        let _ = test_message(&templates, &raw, None);
    }
}

/// Exit code and stdout + stderr.
fn keypost(args: &[&str], cwd: &Path) -> (i32, String) {
    let output = crate::support::keypost(cwd, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&output.stderr))
}

#[test]
fn template_test_without_config_names_the_template_and_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let eml = fixtures().join("paypal/sale_plain_text.eml");
    let (code, out) = keypost(&["template", "test", eml.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("template:  paypal"), "{out}");
    assert!(out.contains("sale 5TY12345AB678901C"), "{out}");
    assert!(out.contains("<- \"Transaction ID\\n5TY12345AB678901C\""), "{out}");
}

#[test]
fn template_test_json_reports_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let eml = fixtures().join("paypal/sale_plain_text.eml");
    let (code, out) = keypost(&["template", "test", "--json", eml.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["outcome"]["outcome"], "order");
    assert_eq!(json["outcome"]["order"]["buyer_email"], "jane.buyer@example.com");
}

#[test]
fn template_test_of_unknown_mail_lists_near_misses_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("x.eml");
    std::fs::write(&eml, "From: someone@else.example\r\nSubject: You received a payment\r\n\r\nhi\r\n").unwrap();
    let (code, out) = keypost(&["template", "test", "--template", "paypal", eml.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("near miss: paypal: sender someone@else.example is not one of"), "{out}");
}

#[test]
fn template_check_passes_on_the_shipped_fixtures() {
    let (code, out) = keypost(&["template", "check"], manifest_dir());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn template_check_reports_every_problem_with_file_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("parsers")).unwrap();
    std::fs::write(
        dir.path().join("parsers/shop.toml"),
        "name = \"Shop\"\ncolour = 1\n[match]\nsenders = [\"shop.example\"]\n[[rule]]\nsubject = '(unclosed'\n\
         kind = \"sale\"\n[fields.order_id]\npattern = 'Order: (\\d+)'\nrequried = true\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("keypost.toml"), "[templates]\ndir = \"parsers\"\n").unwrap();
    let (code, out) = keypost(&["--config", "keypost.toml", "template", "check"], dir.path());
    assert_eq!(code, 2, "{out}");
    for expected in [
        "shop.toml: colour: unknown key",
        "shop.toml: match.senders[0]:",
        "shop.toml: rule[0].subject: invalid regex",
        "shop.toml: fields.order_id.pattern: needs a named group (?P<value>...)",
        "shop.toml: fields.order_id.requried: unknown key; did you mean `required`?",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn keypost_check_lists_template_problems_alongside_config_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("parsers")).unwrap();
    std::fs::write(dir.path().join("parsers/shop.toml"), "name = \"Shop\"\n[match]\nsenders = [\"@shop.example\"]\n")
        .unwrap();
    std::fs::write(dir.path().join("keypost.toml"), "colour = 1\n[templates]\ndir = \"parsers\"\n").unwrap();
    let (code, out) = keypost(&["--config", "keypost.toml", "check"], dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("keypost.toml: colour: unknown key"), "{out}");
    assert!(out.contains("shop.toml: rule: at least one [[rule]] is needed"), "{out}");
}

#[test]
fn keypost_check_of_a_good_config_checks_the_builtin_templates_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keypost.toml"), "").unwrap();
    let (code, out) = keypost(&["--config", "keypost.toml", "check"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("template(s) OK; 0 fixture(s) passed, 0 failed"), "{out}");
}

#[test]
fn template_test_with_config_uses_the_configured_template_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/shop.toml"),
        "name = \"Shop\"\n[match]\nsenders = [\"@shop.example\"]\n[[rule]]\nsubject = '^New order'\nkind = \"sale\"\n\
         [fields.order_id]\npattern = 'Order: (?P<value>\\S+)'\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("keypost.toml"), "[templates]\ndir = \"templates\"\n").unwrap();
    std::fs::write(dir.path().join("m.eml"), "From: orders@shop.example\r\nSubject: New order\r\n\r\nOrder: S-7\r\n")
        .unwrap();
    let (code, out) = keypost(&["--config", "keypost.toml", "template", "test", "m.eml"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("template:  shop\nresult:    sale S-7"), "{out}");
    let (code, out) = keypost(&["template", "test", "m.eml"], &dir.path().join("templates"));
    assert_eq!(code, 1, "without the config the shop template is unknown:\n{out}");
}

#[test]
fn bless_refuses_to_record_no_match_for_a_fixture_named_as_a_sale_unless_forced() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("paypal")).unwrap();
    let mail = "From: someone@unknown.example\r\nSubject: Hello\r\n\r\nNothing to see.\r\n";
    std::fs::write(root.path().join("paypal/sale_new_layout.eml"), mail).unwrap();
    std::fs::write(root.path().join("paypal/newsletter_not_an_order.eml"), mail).unwrap();
    let cases = golden::run(&builtin(), root.path(), None, golden::Mode::Bless).unwrap();
    let status = |name: &str| cases.iter().find(|c| c.eml.ends_with(name)).map(|c| c.status.clone()).unwrap();
    assert!(matches!(status("sale_new_layout.eml"), golden::Status::Refused(why) if why.contains("named as a sale")));
    assert_eq!(status("newsletter_not_an_order.eml"), golden::Status::Blessed);
    assert!(!root.path().join("paypal/sale_new_layout.expected.json").exists(), "nothing recorded");
    let cases = golden::run(&builtin(), root.path(), None, golden::Mode::ForceBless).unwrap();
    assert!(cases.iter().all(|c| c.status == golden::Status::Blessed));
    assert!(root.path().join("paypal/sale_new_layout.expected.json").exists());
}

/// The attack fixtures (`fixtures/*/buyer_note_*.eml` whose note carries lines marked FORGED or attacker): what
/// the buyer wrote never becomes a value of the order. Each is read with the real values or set aside.
#[test]
fn a_buyer_note_never_supplies_an_item_a_total_an_address_or_an_id() {
    let templates = builtin();
    let mut attacks = 0;
    for dir in std::fs::read_dir(fixtures()).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let raw = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&raw);
            if !name.starts_with("buyer_note_") || !name.ends_with(".eml") || !text.contains("FORGED") {
                continue;
            }
            attacks += 1;
            match test_message(&templates, &raw, None).outcome {
                Some(Outcome::Order { order, .. }) => {
                    let json = serde_json::to_string(&order).unwrap();
                    assert!(!json.contains("FORGED") && !json.contains("attacker"), "{name}: {json}");
                    assert!(name.ends_with("_the_real_values_win.eml"), "{name}: read, so its name must say so");
                }
                Some(Outcome::Broken { .. }) => assert!(name.ends_with("_is_set_aside.eml"), "{name}: set aside"),
                other => panic!("{name}: neither read nor set aside: {other:?}"),
            }
        }
    }
    assert!(attacks >= 6, "only {attacks} attack fixture(s) found");
}
