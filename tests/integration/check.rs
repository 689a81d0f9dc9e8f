//! `keypost check` as a vendor runs it: every problem in the configuration, with file and key, exit 2.
fn check(config_text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keypost.toml");
    std::fs::write(&path, config_text).unwrap();
    let output = crate::support::keypost(dir.path(), &["check", "--config", path.to_str().unwrap()]).output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn check_reports_all_three_mistakes_with_key_and_exits_2() {
    let (code, stdout) = check(
        r#"
colour = "blue"

[mailbox.imap]
host = "imap.example.com"
security = "plain"
user = "orders"
password = { env = "KEYPOST_IMAP_PASSWORD" }

[[product]]
id = "pro"
name = "Pro"
skus = ["PRO"]
min_price = [{ currency = "USD", amount = "nine" }]
serial = { key = { env = "KEYPOST_PRO_KEY" } }
"#,
    );
    assert_eq!(code, 2, "stdout: {stdout}");
    assert!(stdout.contains("keypost.toml: colour: unknown key"), "{stdout}");
    assert!(stdout.contains("mailbox.imap.security"), "{stdout}");
    assert!(stdout.contains("product[0].min_price[0].amount"), "{stdout}");
}

#[test]
fn check_loads_every_secret_and_names_unknown_providers() {
    let (code, stdout) = check(
        r#"
[trust]
sender_only = ["paypall"]

[[product]]
id = "pro"
name = "Pro"
serial = { product_code = 7, key = { env = "KEYPOST_TEST_VARIABLE_THAT_IS_NOT_SET" } }
"#,
    );
    assert_eq!(code, 2, "stdout: {stdout}");
    assert!(
        stdout.contains("product[0].serial: ") && stdout.contains("KEYPOST_TEST_VARIABLE_THAT_IS_NOT_SET"),
        "{stdout}"
    );
    assert!(stdout.contains("trust.sender_only[0]: no template \"paypall\""), "{stdout}");
}

#[test]
fn check_passes_a_good_config_and_warns_about_an_inline_key_without_showing_it() {
    let (code, stdout) = check(
        r#"
[[product]]
id = "pro"
name = "Pro"
serial = { product_code = 7, key = { inline = "00112233445566778899aabbccddeeff" } }
"#,
    );
    assert_eq!(code, 0, "stdout: {stdout}");
    assert!(stdout.contains("warning:") && stdout.contains("product[0].serial.key"), "{stdout}");
    assert!(!stdout.contains("00112233445566778899aabbccddeeff"), "{stdout}");
    assert!(stdout.contains("OK (1 product(s))"), "{stdout}");
}

#[test]
fn check_of_a_sending_config_needs_sender_vendor_and_readable_reply_templates() {
    let (code, stdout) = check(
        r#"
[outbox.files]
dir = "outbox"

[reply.template]
subject = "Your {product} license"
text = { file = "missing-reply.txt" }

[[product]]
id = "pro"
name = "Pro"
activation_url = "myapp://register?name={licensee_url}&serial={serail_url}"
serial = { product_code = 7, key = { inline = "00112233445566778899aabbccddeeff" } }
"#,
    );
    assert_eq!(code, 2, "stdout: {stdout}");
    for key in ["reply.from", "reply.vendor", "reply.template.text", "product[0].activation_url"] {
        assert!(stdout.contains(&format!(": {key}: ")), "{key} missing from:\n{stdout}");
    }
}

#[test]
fn check_warns_that_paypal_and_a_shop_paid_through_paypal_both_answer_one_sale_unless_linked_or_one_is_disabled() {
    let product = r#"
[[product]]
id = "pro"
name = "Pro"
serial = { product_code = 7, key = { inline = "00112233445566778899aabbccddeeff" } }
"#;
    let (code, stdout) = check(product);
    assert_eq!(code, 0, "stdout: {stdout}");
    // WooCommerce's mail does not carry PayPal's transaction id: the two cannot be linked.
    let warning = stdout.lines().find(|l| l.contains("\"woocommerce\" and \"paypal\" are both enabled")).unwrap_or("");
    assert!(warning.starts_with("warning: parsers/woocommerce.toml: "), "{stdout}");
    assert!(warning.contains("cannot be linked"), "{stdout}");
    assert!(warning.contains("add \"paypal\" to `disable` in [templates]"), "{stdout}");
    // E-junkie's and PayPal's notices both read the transaction id: linked, answered once, no warning.
    assert!(!stdout.contains("\"ejunkie\" and \"paypal\""), "{stdout}");

    let (code, stdout) = check(&format!("[templates]\ndisable = [\"paypal\"]\n{product}"));
    assert_eq!(code, 0, "stdout: {stdout}");
    assert!(!stdout.contains("both enabled"), "{stdout}");

    let (code, stdout) = check(&format!("[templates]\ndisable = [\"paypall\"]\n{product}"));
    assert_eq!(code, 2, "stdout: {stdout}");
    assert!(stdout.contains("templates.disable[0]: no template \"paypall\""), "{stdout}");
}

#[test]
fn check_names_an_unknown_placeholder_in_the_renewal_reply_by_its_key() {
    let (code, stdout) = check(
        r#"
[reply.renewal]
subject = "Your {product} license, renewed"
text = "{serial}, valid until {expirs}"

[[product]]
id = "pro"
name = "Pro"
serial = { product_code = 7, key = { inline = "00112233445566778899aabbccddeeff" } }
"#,
    );
    assert_eq!(code, 2, "stdout: {stdout}");
    assert!(stdout.contains(": reply.renewal.text: unknown placeholder {expirs}"), "{stdout}");
}
