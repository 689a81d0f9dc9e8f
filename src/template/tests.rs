//! Unit tests of loading and classifying with small inline templates (the fixtures cover the shipped ones).
use std::path::Path;

use super::*;
use crate::email::Address;

const SHOP: &str = r#"
name = "Shop"
[trust]
dkim_domains = ["shop.example"]
[match]
senders = ["orders@shop.example", "@mail.shop.example"]
[[rule]]
subject = '^New order'
kind = "sale"
[[rule]]
subject = '^Refund'
kind = "refund"
[[rule]]
subject = '^Payout'
kind = "not_order"
reason = "payout"
[test]
subject = '\[TEST\]'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[fields.buyer_name]
pattern = 'Name: (?P<value>[^\n]+)'
required = true
[fields.buyer_email]
pattern = 'Email: (?P<value>\S+)'
[fields.total]
pattern = 'Total: (?P<value>[^\n]+)'
[items]
pattern = '(?m)^Item: (?P<sku>\S+) x(?P<quantity>\d+) (?P<price>\S+)$'
required = true
"#;

fn shop_templates() -> Templates {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), SHOP).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"))
}

fn email(from: &str, subject: &str, text: &str) -> Email {
    Email {
        message_id: None,
        from: Some(Address { name: None, address: from.to_owned() }),
        subject: subject.to_owned(),
        date: None,
        text: text.to_owned(),
        forwarded: None,
        attached_original: None,
        authentication_results: Vec::new(),
        content_hash: String::new(),
    }
}

const SALE_TEXT: &str = "Order: A-1\nName: Åsa Öberg\nEmail: asa@example.se\nItem: PRO x2 $10.00\nItem: ADD x1 $5.00\n\
                         Total: $25.00";

#[test]
fn builtin_templates_all_load() {
    let templates = Templates::builtin().unwrap_or_else(|p| panic!("{p:#?}"));
    assert!(templates.iter().count() >= 8);
}

#[test]
fn a_sale_becomes_an_order_with_every_field() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "New order", SALE_TEXT));
    let Outcome::Order { template, order } = outcome else { panic!("{outcome:?}") };
    assert_eq!(template, "shop");
    assert_eq!((order.id.as_str(), order.kind, order.test), ("A-1", crate::order::OrderKind::Sale, false));
    assert_eq!(order.license_name(), Some("Åsa Öberg"));
    assert_eq!(order.buyer_email.unwrap().as_str(), "asa@example.se");
    assert_eq!(order.items.len(), 2);
    assert_eq!(order.items[0].quantity, 2);
    assert_eq!(order.items[0].unit_price.as_ref().map(|m| m.hundredths), Some(1000));
    assert_eq!(order.total.unwrap().hundredths, 2500);
}

#[test]
fn subdomain_of_a_listed_domain_is_the_provider_but_a_lookalike_is_not() {
    let templates = shop_templates();
    let sale = |from: &str| templates.classify(&email(from, "New order", SALE_TEXT));
    assert!(matches!(sale("x@eu.mail.shop.example"), Outcome::Order { .. }));
    assert!(matches!(sale("orders@shop.example.evil.example"), Outcome::Unrecognised { .. }));
    assert!(matches!(sale("x@notmail.shop.example"), Outcome::Unrecognised { .. }));
}

#[test]
fn test_flag_comes_from_the_subject_pattern() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "New order [TEST]", SALE_TEXT));
    assert!(matches!(outcome, Outcome::Order { order, .. } if order.test));
}

#[test]
fn payout_from_the_same_sender_is_not_an_order() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "Payout sent", "Order: A-1"));
    assert_eq!(outcome, Outcome::NotAnOrder { template: "shop".into(), reason: "payout".into() });
}

#[test]
fn refund_needs_only_the_order_id() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "Refund", "Order: A-1"));
    assert!(matches!(outcome, Outcome::Order { order, .. } if order.kind == crate::order::OrderKind::Refund));
}

#[test]
fn missing_required_field_is_broken_not_ignored() {
    let text = SALE_TEXT.replace("Name: Åsa Öberg\n", "");
    let outcome = shop_templates().classify(&email("orders@shop.example", "New order", &text));
    let Outcome::Broken { template, problems } = outcome else { panic!("{outcome:?}") };
    assert_eq!(template, "shop");
    assert!(problems.iter().any(|p| p.starts_with("buyer_name: required")), "{problems:?}");
}

#[test]
fn bidi_override_or_bad_email_in_a_field_is_broken() {
    let text = SALE_TEXT.replace("Åsa Öberg", "evil\u{202E}gpj.exe");
    let outcome = shop_templates().classify(&email("orders@shop.example", "New order", &text));
    assert!(
        matches!(&outcome, Outcome::Broken { problems, .. } if problems[0].starts_with("buyer_name")),
        "{outcome:?}"
    );
    let text = SALE_TEXT.replace("asa@example.se", "asa@example.se,bcc@x.example");
    let outcome = shop_templates().classify(&email("orders@shop.example", "New order", &text));
    assert!(
        matches!(&outcome, Outcome::Broken { problems, .. } if problems[0].starts_with("buyer_email")),
        "{outcome:?}"
    );
}

#[test]
fn sender_without_a_matching_rule_is_a_near_miss() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "Welcome!", "hi"));
    let Outcome::Unrecognised { near_misses } = outcome else { panic!("{outcome:?}") };
    assert!(near_misses.iter().any(|m| m.starts_with("shop: sender matches but no [[rule]]")), "{near_misses:?}");
}

#[test]
fn provider_trust_comes_from_the_template() {
    let trust = shop_templates().provider_trust("shop").unwrap();
    assert_eq!(trust.dkim_domains, ["shop.example"]);
    assert_eq!(trust.senders, ["orders@shop.example", "@mail.shop.example"]);
    assert!(shop_templates().provider_trust("nobody").is_none());
}

#[test]
fn a_template_in_the_configured_dir_overrides_the_builtin_one() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("t")).unwrap();
    std::fs::write(base.path().join("t/paypal.toml"), SHOP).unwrap();
    let config = TemplatesConfig { dir: Some("t".into()), ..TemplatesConfig::default() };
    let templates = Templates::load(&config, base.path()).unwrap();
    assert_eq!(templates.get("paypal").unwrap().name, "Shop");
    assert!(templates.get("fastspring").is_some());
}

#[test]
fn every_problem_of_every_template_is_reported_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "name = \"A\"\nbogus = 1\n[match]\nsenders = []\n").unwrap();
    let bad_rules = SHOP.replace("kind = \"refund\"", "kind = \"refnud\"").replace("'^Payout'", "'(unclosed'");
    std::fs::write(dir.path().join("b.toml"), bad_rules).unwrap();
    std::fs::write(dir.path().join("c.toml"), "name = \"C\"\n[match\n").unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    let found: Vec<String> =
        problems.iter().map(|p| format!("{}: {}", p.file.file_name().unwrap().to_string_lossy(), p.key)).collect();
    for expected in [
        "a.toml: bogus",
        "a.toml: match.senders",
        "a.toml: rule",
        "b.toml: rule[1].kind",
        "b.toml: rule[2].subject",
        "c.toml: line 2",
    ] {
        assert!(found.iter().any(|f| f == expected), "missing {expected:?} in {found:?}");
    }
}

#[test]
fn a_regex_too_big_for_the_size_limit_is_refused() {
    let huge = SHOP.replace(r"'Order: (?P<value>\S+)'", r"'(?P<value>\w{1000}\w{1000}\w{1000})'");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), huge).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.key == "fields.order_id.pattern" && p.message.contains("size limit")),
        "{problems:?}"
    );
}

#[test]
fn two_files_claiming_one_id_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.toml"), format!("id = \"shop\"\n{SHOP}")).unwrap();
    std::fs::write(dir.path().join("two.toml"), format!("id = \"shop\"\n{SHOP}")).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    assert!(problems.iter().any(|p| p.key == "id" && p.message.contains("already used")), "{problems:?}");
}
