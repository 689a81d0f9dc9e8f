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
        ..Email::default()
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
fn provider_mail_no_rule_classifies_is_unclassified_naming_the_closest_rule() {
    let outcome = shop_templates().classify(&email("orders@shop.example", "Welcome!", "hi"));
    let Outcome::Unclassified { template, provider, closest, near_misses } = outcome else { panic!("{outcome:?}") };
    assert_eq!((template.as_str(), provider.as_str()), ("shop", "Shop"));
    assert!(closest.starts_with("shop: rule[0] (sale): subject \"Welcome!\" does not match"), "{closest}");
    assert!(near_misses.iter().any(|m| m.starts_with("shop: sender matches but no [[rule]]")), "{near_misses:?}");
}

#[test]
fn mail_signed_by_a_provider_domain_from_another_sender_is_unclassified_not_ignored() {
    let mut mail = email("someone@elsewhere.example", "You've got money", "hi");
    mail.signing_domains = vec!["shop.example".into()];
    let outcome = shop_templates().classify(&mail);
    assert!(matches!(&outcome, Outcome::Unclassified { template, .. } if template == "shop"), "{outcome:?}");
}

#[test]
fn mail_from_an_unknown_sender_is_unrecognised_with_the_closest_rule() {
    let outcome = shop_templates().classify(&email("x@unknown.example", "New order", "Order: A-1"));
    let Outcome::Unrecognised { closest, .. } = outcome else { panic!("{outcome:?}") };
    let closest = closest.unwrap();
    assert!(closest.starts_with("shop: sender x@unknown.example is not one of"), "{closest}");
    assert!(closest.contains("rule[0] (sale) matches"), "{closest}");
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

/// The shop template with `extra` TOML appended and the `[fields]`/`[items]` part replaced by `fields`.
fn templates_with(fields: &str) -> Templates {
    let head = SHOP.split("[fields.order_id]").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), format!("{head}{fields}")).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"))
}

fn sale(templates: &Templates, text: &str) -> Outcome {
    templates.classify(&email("orders@shop.example", "New order", text))
}

fn problems(outcome: Outcome) -> Vec<String> {
    match outcome {
        Outcome::Broken { problems, .. } => problems,
        other => panic!("not broken: {other:?}"),
    }
}

#[test]
fn alternative_patterns_each_find_the_field_in_their_layout() {
    let t = templates_with("[fields.order_id]\npattern = ['Order: (?P<value>\\S+)', 'Bestellung: (?P<value>\\S+)']\n");
    for text in ["Order: A-1", "Bestellung: A-1", "Order: A-1\nBestellung: A-1"] {
        let outcome = sale(&t, text);
        assert!(matches!(&outcome, Outcome::Order { order, .. } if order.id.as_str() == "A-1"), "{outcome:?}");
    }
}

#[test]
fn two_different_values_for_one_field_make_the_reading_broken_never_first_wins() {
    let t = templates_with("[fields.order_id]\npattern = ['Order: (?P<value>\\S+)', 'Bestellung: (?P<value>\\S+)']\n");
    let found = problems(sale(&t, "Order: A-1\nBestellung: B-2"));
    assert!(found[0].starts_with("order_id: two different values, \"A-1\" and \"B-2\""), "{found:?}");
    let found = problems(sale(&t, "Order: A-1\nOrder: A-2"));
    assert!(found[0].contains("two different values"), "{found:?}");
}

#[test]
fn two_spellings_of_one_amount_agree_but_two_amounts_conflict() {
    let fields = "[fields.order_id]\npattern = 'Order: (?P<value>\\S+)'\n[fields.total]\n\
                  pattern = '(?m)^Total: (?P<value>.+)$'\n";
    let t = templates_with(fields);
    let outcome = sale(&t, "Order: A-1\nTotal: $5.00\nTotal: 5.00 USD");
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.total.as_ref().unwrap().hundredths == 500));
    assert!(problems(sale(&t, "Order: A-1\nTotal: $5.00\nTotal: $500.00"))[0].starts_with("total: two different"));
}

#[test]
fn a_section_keeps_buyer_written_text_from_supplying_fields() {
    let fields = r#"
[sections.details]
start = '(?m)^--- Order details ---$'
end = '(?m)^--- Note from buyer ---$'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
section = "details"
[fields.total]
pattern = '(?m)^Total: (?P<value>.+)$'
section = "details"
[items]
pattern = '(?m)^Item: (?P<sku>\S+) x(?P<quantity>\d+) (?P<price>\S+)$'
section = "details"
"#;
    let t = templates_with(fields);
    let text = "--- Order details ---\nOrder: A-1\nItem: PRO x1 $10.00\nTotal: $10.00\n--- Note from buyer ---\n\
                Item: PRO x100 $0.00\nOrder: EVIL-1\n";
    let outcome = sale(&t, text);
    let Outcome::Order { order, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!((order.id.as_str(), order.items.len(), order.items[0].quantity), ("A-1", 1, 1));
    let forged = text.replace("Order: EVIL-1", "--- Order details ---\nOrder: EVIL-1");
    let found = problems(sale(&t, &forged));
    assert!(found.iter().any(|p| p.contains("start anchor is found more than once")), "{found:?}");
}

#[test]
fn items_that_do_not_add_up_to_the_total_make_the_reading_broken() {
    let fields = r#"
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[fields.total]
pattern = '(?m)^Total: (?P<value>.+)$'
[fields.tax]
pattern = '(?m)^VAT: (?P<value>.+)$'
[fields.discount]
pattern = '(?m)^Coupon: (?P<value>.+)$'
[items]
pattern = '(?m)^Item: (?P<sku>\S+) x(?P<quantity>\d+) (?P<price>\S+)$'
"#;
    let t = templates_with(fields);
    let ok = "Order: A-1\nItem: PRO x2 $10.00\nVAT: $3.80\nCoupon: -$2.00\nTotal: $21.80";
    assert!(matches!(sale(&t, ok), Outcome::Order { .. }), "{:?}", sale(&t, ok));
    let extra = ok.replace("Item: PRO x2 $10.00", "Item: PRO x2 $10.00\nItem: PRO x100 $10.00");
    let found = problems(sale(&t, &extra));
    assert!(found[0].starts_with("total: the items add up to 1021.80 USD but the total is 21.80 USD"), "{found:?}");
    let other_currency = ok.replace("Item: PRO x2 $10.00", "Item: PRO x2 €10.00");
    assert!(problems(sale(&t, &other_currency))[0].contains("another currency"));
}

#[test]
fn fields_can_come_from_the_subject_the_links_or_a_header() {
    let fields = r#"
[fields.order_id]
pattern = 'https://shop\.example/orders/(?P<value>[A-Z0-9-]+)'
from = "links"
[fields.buyer_name]
pattern = 'for (?P<value>.+)$'
from = "subject"
[fields.buyer_email]
pattern = '(?P<value>\S+@\S+)'
from = "header:X-Buyer"
"#;
    let t = templates_with(fields);
    let mut mail = email("orders@shop.example", "New order for Jo Doe", "Thanks!");
    mail.links = vec!["mailto:help@shop.example".into(), "https://shop.example/orders/A-7".into()];
    mail.headers = vec![("x-buyer".into(), "jo@example.com".into())];
    let outcome = t.classify(&mail);
    let Outcome::Order { order, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(order.id.as_str(), "A-7");
    assert_eq!(order.buyer_name.as_deref(), Some("Jo Doe"));
    assert_eq!(order.buyer_email.unwrap().as_str(), "jo@example.com");
}

#[test]
fn a_rule_requires_the_fields_of_its_layout() {
    let text = SHOP.replace(
        "[[rule]]\nsubject = '^New order'\nkind = \"sale\"",
        "[[rule]]\nsubject = '^New order \\(short\\)'\nkind = \"sale\"\nrequire = [\"buyer_email\"]\n\
         [[rule]]\nsubject = '^New order'\nkind = \"sale\"",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), text).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let t = Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"));
    // The short layout has no name and no items, but must have the email.
    let short = t.classify(&email("orders@shop.example", "New order (short)", "Order: A-1\nEmail: a@example.com"));
    assert!(matches!(short, Outcome::Order { .. }), "{short:?}");
    let found = problems(t.classify(&email("orders@shop.example", "New order (short)", "Order: A-1")));
    assert!(found[0].starts_with("buyer_email: required"), "{found:?}");
    // The full layout keeps the fields' own requirements.
    let found = problems(t.classify(&email("orders@shop.example", "New order", "Order: A-1\nEmail: a@example.com")));
    assert!(found.iter().any(|p| p.starts_with("buyer_name: required")), "{found:?}");
}

#[test]
fn unknown_sections_sources_and_required_names_are_template_problems() {
    let dir = tempfile::tempdir().unwrap();
    let text = SHOP
        .replace("kind = \"refund\"", "kind = \"refund\"\nrequire = [\"nmae\"]")
        .replace("pattern = 'Name: (?P<value>[^\\n]+)'", "pattern = 'Name: (?P<value>[^\\n]+)'\nsection = \"nope\"")
        .replace("pattern = 'Email: (?P<value>\\S+)'", "pattern = 'Email: (?P<value>\\S+)'\nfrom = \"footer\"");
    std::fs::write(dir.path().join("shop.toml"), text).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in ["rule[1].require[0]", "fields.buyer_name.section", "fields.buyer_email.from"] {
        assert!(keys.contains(&key), "missing {key} in {problems:#?}");
    }
}

#[test]
fn templates_are_tried_by_priority_then_vendor_before_built_in_then_id() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("t")).unwrap();
    let catch_all = |id: &str, priority: i32| {
        format!(
            "id = \"{id}\"\npriority = {priority}\nname = \"{id}\"\n[match]\nsenders = [\"@paypal.com\"]\n\
             [[rule]]\nsubject = '.*'\nkind = \"not_order\"\nreason = \"{id}\"\n"
        )
    };
    std::fs::write(base.path().join("t/b-mine.toml"), catch_all("b-mine", 0)).unwrap();
    std::fs::write(base.path().join("t/a-mine.toml"), catch_all("a-mine", 0)).unwrap();
    std::fs::write(base.path().join("t/z-first.toml"), catch_all("z-first", 5)).unwrap();
    let config = TemplatesConfig { dir: Some("t".into()), ..TemplatesConfig::default() };
    let templates = Templates::load(&config, base.path()).unwrap();
    let order: Vec<&str> = templates.iter().map(|t| t.id.as_str()).take(4).collect();
    assert_eq!(order[..3], ["z-first", "a-mine", "b-mine"]);
    let outcome = templates.classify(&email("service@paypal.com", "You received a payment", "x"));
    assert!(matches!(&outcome, Outcome::NotAnOrder { template, .. } if template == "z-first"), "{outcome:?}");
    let warnings = templates.shadowing_warnings();
    assert!(warnings.iter().any(|w| w.contains("\"a-mine\" can never win: \"z-first\"")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("\"b-mine\" can never win")), "{warnings:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Wherever two different order ids appear, in whatever order and with whatever text around them, the
    /// reading is broken: never one of them.
    #[test]
    fn two_different_order_ids_anywhere_are_always_broken(
        a in "[A-Z0-9]{4,10}", b in "[A-Z0-9]{4,10}", before in "[a-z \n]{0,20}", between in "[a-z \n]{0,20}",
    ) {
        proptest::prop_assume!(a != b);
        let text = format!("{before}\nOrder: {a}\n{between}\nOrder: {b}\nName: Jo\nItem: PRO x1 $1.00\n");
        let outcome = shop_templates().classify(&email("orders@shop.example", "New order", &text));
        let broken = matches!(&outcome, Outcome::Broken { problems, .. }
            if problems.iter().any(|p| p.starts_with("order_id: two different values")));
        proptest::prop_assert!(broken, "{:?}", outcome);
    }
}

#[test]
fn the_payment_id_is_read_from_the_order_id_and_named_by_its_processor() {
    let payment = "[fields.order_id]\npattern = 'Order: (?P<value>\\S+)'\n[fields.payment_id]\nfrom = \"order_id\"\n\
                   pattern = '\\A(?P<value>[0-9A-Z]{17})\\z'\n";
    let read = |top: &str, text: &str| {
        let head = SHOP.split("[fields.order_id]").next().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.toml"), format!("{top}{head}{payment}")).unwrap();
        let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
        let t = Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"));
        match sale(&t, text) {
            Outcome::Order { order, .. } => order.payment_id.map(|p| p.as_str().to_owned()),
            other => panic!("{other:?}"),
        }
    };
    // A shop paid through one processor names the id by it; a processor by itself.
    let head = "paid_through = [\"paypal\"]\n";
    let shop = |text| read(head, text);
    assert_eq!(shop("Order: 8DE45678FG901234H").as_deref(), Some("paypal:8DE45678FG901234H"));
    assert_eq!(read("", "Order: 8DE45678FG901234H").as_deref(), Some("shop:8DE45678FG901234H"));
    // Another processor's id (E-junkie's "gc-..."): no payment id, nothing to link.
    assert_eq!(shop("Order: gc-12345"), None);
}

#[test]
fn a_payment_id_whose_processor_is_unclear_or_order_id_as_a_source_elsewhere_are_template_problems() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "paid_through = [\"paypal\", \"stripe\"]\n{}",
        SHOP.replace(
            "[fields.buyer_email]",
            "[fields.payment_id]\nfrom = \"order_id\"\npattern = '(?P<value>.+)'\n[fields.buyer_email]"
        )
        .replace("pattern = 'Name: (?P<value>[^\\n]+)'", "pattern = 'Name: (?P<value>[^\\n]+)'\nfrom = \"order_id\"")
    );
    std::fs::write(dir.path().join("shop.toml"), text).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"fields.payment_id"), "{problems:#?}");
    assert!(keys.contains(&"fields.buyer_name.from"), "{problems:#?}");
}

#[test]
fn items_of_two_layouts_come_each_from_its_own_section_and_a_free_line_is_refused_when_items_are_priced() {
    let fields = r#"
[sections.goods]
start = '(?m)^--- Items ---$'
[sections.invoice]
start = '(?m)^Description Qty Price$'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[fields.total]
pattern = '(?m)^Total: (?P<value>.+)$'
[items]
pattern = '(?m)^Item: (?P<sku>\S+) x(?P<quantity>\d+) (?P<price>\S+)$'
section = "goods"
priced = true
[[items.also]]
pattern = '(?m)^(?P<sku>[A-Z-]+) (?P<quantity>\d+) (?P<price>\S+)$'
section = "invoice"
"#;
    let t = templates_with(fields);
    // A note before either table cannot add an item; each layout's table is read in its own section.
    for text in [
        "Order: A-1\nTotal: $10.00\nNote: Item: TEAM x9 $0.00\nTEAM 9 $0.00\n--- Items ---\nItem: PRO x1 $10.00\n",
        "Order: A-1\nTotal: $10.00\nNote:\nItem: TEAM x9 $0.00\nDescription Qty Price\nPRO 1 $10.00\n",
    ] {
        let Outcome::Order { order, .. } = sale(&t, text) else { panic!("{text}") };
        let skus: Vec<_> = order.items.iter().map(|i| i.sku.as_ref().unwrap().as_str().to_owned()).collect();
        assert_eq!(skus, ["PRO"], "{text}");
    }
    // A line that costs nothing inside the table (text the buyer could have written there) breaks the reading.
    let free = "Order: A-1\nTotal: $10.00\n--- Items ---\nItem: PRO x1 $10.00\nItem: TEAM x9 $0.00\n";
    let found = problems(sale(&t, free));
    assert!(found.iter().any(|p| p.starts_with("items[1]: no price above zero")), "{found:?}");
}

#[test]
fn a_sequence_number_is_read_per_product_and_a_number_too_large_breaks_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("sequence_per = \"product\"\n{SHOP}[fields.sequence]\npattern = 'SQNM: (?P<value>\\d+)'\n");
    std::fs::write(dir.path().join("shop.toml"), text).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let t = Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"));
    let mail = |sqnm: &str| {
        format!("Order: A-1\nName: Jane Doe\nEmail: jane@example.com\nItem: ACME-PRO x1 $19.00\nTotal: $19.00\n{sqnm}")
    };
    match sale(&t, &mail("SQNM: 0017")) {
        Outcome::Order { order, .. } => {
            let expected = crate::order::Sequence { scope: "shop/ACME-PRO".into(), number: 17 };
            assert_eq!(order.sequence.as_deref(), Some(&expected));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(sale(&t, &mail("")), Outcome::Order { order, .. } if order.sequence.is_none()));
    assert!(matches!(sale(&t, &mail("SQNM: 99999999999999999999999")), Outcome::Broken { .. }));
}

#[test]
fn a_rule_reads_its_order_id_where_order_id_from_says_and_names_its_key_when_misused() {
    let renewal = "[[rule]]\nsubject = '^Renewed'\nkind = \"renewal\"\norder_id = '^<(?P<value>[^@]+)@'\n";
    let dir = tempfile::tempdir().unwrap();
    let with = |extra: &str| SHOP.replacen("[[rule]]", &format!("{renewal}{extra}\n[[rule]]"), 1);
    std::fs::write(dir.path().join("shop.toml"), with("order_id_from = \"header:Message-ID\"")).unwrap();
    let config = TemplatesConfig { dir: Some(dir.path().to_owned()), ..TemplatesConfig::default() };
    let templates = Templates::load(&config, Path::new("/")).unwrap_or_else(|p| panic!("{p:#?}"));
    let mut mail = email("orders@shop.example", "Renewed", "Order: A-1\nName: Jo");
    mail.headers.push(("Message-ID".into(), "<r-77@shop.example>".into()));
    let outcome = templates.classify(&mail);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.id.as_str() == "r-77"), "{outcome:?}");

    for (extra, message) in
        [("order_id_from = \"order_id\"", "payment_id only"), ("order_id_from = \"mime\"", "is not")]
    {
        std::fs::write(dir.path().join("shop.toml"), with(extra)).unwrap();
        let problems = Templates::load(&config, Path::new("/")).unwrap_err();
        let found = problems.iter().any(|p| p.key == "rule[0].order_id_from" && p.message.contains(message));
        assert!(found, "{extra}: {problems:?}");
    }
    let without = SHOP.replacen(
        "[[rule]]",
        "[[rule]]\nsubject = '^R'\nkind = \"renewal\"\norder_id_from = \"subject\"\n[[rule]]",
        1,
    );
    std::fs::write(dir.path().join("shop.toml"), without).unwrap();
    let problems = Templates::load(&config, Path::new("/")).unwrap_err();
    assert!(problems.iter().any(|p| p.key == "rule[0].order_id_from" && p.message.contains("needs")), "{problems:?}");
}

#[test]
fn the_headers_templates_read_are_handed_to_the_trust_check() {
    let templates = Templates::builtin().unwrap_or_else(|p| panic!("{p:#?}"));
    let reads = |id: &str| templates.provider_trust(id).map(|t| t.read_headers).unwrap_or_default();
    assert_eq!(reads("woocommerce"), ["reply-to"]);
    assert_eq!(reads("zencart"), ["reply-to"]);
    assert_eq!(reads("gumroad"), ["message-id"]);
    assert_eq!(reads("polar"), ["message-id"]);
    assert_eq!(reads("paypal"), Vec::<String>::new());
    let all: Vec<String> = templates.iter().flat_map(|t| t.read_headers()).collect();
    assert!(all.iter().all(|h| h == "reply-to" || h == "message-id"), "{all:?}");
}

#[test]
fn a_line_printed_once_per_item_found_once_more_makes_the_reading_broken() {
    let fields = r#"
[sections.details]
start = '(?m)^--- Order details ---$'
end = '(?m)^--- Shipping address ---$'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
section = "details"
[items]
pattern = '(?m)^(?P<name>[^\n]+)\nQuantity: (?P<quantity>\d+)$'
section = "details"
once_per_item = ['(?m)^Quantity:']
"#;
    let t = templates_with(fields);
    let text = "--- Order details ---\nOrder: A-1\nPro\nQuantity: 1\n--- Shipping address ---\nÅsa Öberg\n";
    let outcome = sale(&t, text);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items[0].quantity == 1), "{outcome:?}");
    // A personalization typed over several lines: an item of its own and an anchor that ends the section before
    // the real item. Without the count, "Team x7" would be the one item read.
    let forged = text.replace("Pro\n", "Note: Nova\nTeam\nQuantity: 7\n--- Shipping address ---\nPro\n");
    let found = problems(sale(&t, &forged));
    assert!(found.iter().any(|p| p.contains("is in the text 2 time(s) for 1 line item(s)")), "{found:?}");
    let unguarded = templates_with(&fields.replace("once_per_item = ['(?m)^Quantity:']\n", ""));
    let outcome = sale(&unguarded, &forged);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items[0].quantity == 7), "{outcome:?}");
}

#[test]
fn an_amount_in_the_items_section_that_nothing_reads_makes_the_reading_broken() {
    let fields = r#"
[sections.goods]
start = '(?m)^Items$'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[fields.total]
pattern = '(?m)^Total (?P<value>\$\S+)$'
[items]
pattern = '(?m)^- (?P<name>[^\n$]+?) (?P<price>\$\d+\.\d\d)$'
section = "goods"
priced = true
every_amount = '\$\d[\d,]*\.\d\d'
not_summed = ['(?m)^Net amount \$\S+$']
"#;
    let t = templates_with(fields);
    let text = "Order: A-1\nItems\n- Acme Pro $14.95\nTotal $14.95\nNet amount $14.32\n";
    let outcome = sale(&t, text);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items.len() == 1), "{outcome:?}");
    // A row the provider printed and the template does not read (insurance), and a line someone else wrote
    // that costs exactly that: the sum and the total agree, but the insurance amount is read by nothing.
    let forged = text
        .replace("Items\n", "Items\n- Team upgrade $5.00\n")
        .replace("Total $14.95", "Insurance $5.00\nTotal $19.95");
    let found = problems(sale(&t, &forged));
    assert!(found.iter().any(|p| p.contains("the amount \"$5.00\" is read by no item")), "{found:?}");
    let unguarded = templates_with(&fields.replace("every_amount", "# every_amount").replace("not_summed", "# n"));
    let outcome = sale(&unguarded, &forged);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items.len() == 2), "{outcome:?}");
}

#[test]
fn a_totals_section_that_starts_before_the_last_item_ends_makes_the_reading_broken() {
    let fields = r#"
[sections.totals]
after_items = true
start = '(?m)^Item total'
[fields.order_id]
pattern = 'Order: (?P<value>\S+)'
[fields.total]
pattern = '(?m)^Total (?P<value>\$\S+)$'
[fields.discount]
pattern = '(?m)^Discount -(?P<value>\$\S+)$'
section = "totals"
[items]
pattern = '(?m)^- (?P<name>[^\n$]+?) (?P<price>\$\d+\.\d\d)$'
priced = true
"#;
    let t = templates_with(fields);
    let text = "Order: A-1\n- Acme Pro $14.95\nItem total $14.95\nDiscount -$2.00\nTotal $12.95\n";
    let outcome = sale(&t, text);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items.len() == 1), "{outcome:?}");
    // A layout without the provider's own "Item total" row, and a buyer's note among the items that brings one,
    // a discount and an item costing exactly that discount: it adds up, but the totals start among the items.
    let forged =
        "Order: A-1\n- Acme Pro $14.95\nItem total $14.95\nDiscount -$5.00\n- Team upgrade $5.00\nTotal $14.95\n";
    let found = problems(sale(&t, forged));
    assert!(found.iter().any(|p| p.contains("section \"totals\" starts before the last line item ends")), "{found:?}");
    let unguarded = templates_with(&fields.replace("after_items = true", ""));
    let outcome = sale(&unguarded, forged);
    assert!(matches!(&outcome, Outcome::Order { order, .. } if order.items.len() == 2), "{outcome:?}");
}

#[test]
fn a_vendor_template_reading_wordpress_default_address_is_warned_about() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("t")).unwrap();
    let pmpro = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers/pmpro.toml")).unwrap();
    let mine = pmpro.replace("wordpress@pmpro-site.example", "WordPress@shop.example");
    std::fs::write(base.path().join("t/pmpro.toml"), mine).unwrap();
    let config = TemplatesConfig { dir: Some("t".into()), ..TemplatesConfig::default() };
    let templates = Templates::load(&config, base.path()).unwrap();
    let warnings = templates.shared_sender_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"wordpress@shop.example\", WordPress's default address"), "{warnings:?}");
    // The built-in placeholders are not the vendor's choice.
    let built_in = Templates::load(&TemplatesConfig::default(), base.path()).unwrap();
    assert!(built_in.shared_sender_warnings().is_empty());
}
