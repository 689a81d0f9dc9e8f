use super::*;
use crate::config::Loaded;
use crate::order::BuyerEmail;

fn loaded(reply: &str, dir: &Path) -> Loaded {
    let config = crate::fulfil::tests::config(&format!(
        "[reply]\nfrom = \"Acme <licenses@acme.example>\"\nvendor = \"boss@acme.example\"\n{reply}"
    ));
    Loaded { config, path: dir.join("keypost.toml"), base_dir: dir.to_owned(), warnings: vec![] }
}

fn reply<'a>(buyer: &'a BuyerEmail, recipient: Recipient) -> LicenseReply<'a> {
    LicenseReply {
        provider: "paypal",
        order_id: "A-1",
        line: 0,
        product: "pro",
        licensee: "Åsa & Bo",
        serial: "PRO-1234",
        seats: 2,
        buyer_name: Some("Åsa\r\nBcc: evil@x.example"),
        buyer_email: buyer,
        recipient,
        expires: None,
        renewal: false,
        resend: 0,
    }
}

fn text(outgoing: &Outgoing) -> String {
    String::from_utf8(outgoing.bytes.clone()).unwrap()
}

#[test]
fn a_reply_goes_to_the_buyer_with_a_blind_copy_and_a_deterministic_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let renderer = crate::daemon::build::renderer(&loaded("", dir.path())).unwrap();
    let buyer = BuyerEmail::parse("asa@example.com").unwrap();
    let (first, notice) = renderer.license(&reply(&buyer, Recipient::Buyer)).unwrap();
    let (second, _) = renderer.license(&reply(&buyer, Recipient::Buyer)).unwrap();
    assert!(notice.is_none());
    assert_eq!(first.message_id, second.message_id);
    assert!(first.message_id.ends_with("@acme.example"), "{}", first.message_id);
    assert_eq!(first.to, ["asa@example.com", "boss@acme.example"]);
    let body = text(&first);
    assert!(!body.lines().any(|line| line.starts_with("Bcc:")), "no Bcc header, blind or injected:\n{body}");
    assert!(body.contains(&format!("Message-ID: <{}>", first.message_id)));
}

#[test]
fn a_renewal_reply_says_until_when_the_licence_runs_and_a_configured_one_replaces_the_built_in_text() {
    let dir = tempfile::tempdir().unwrap();
    let renderer = crate::daemon::build::renderer(&loaded("", dir.path())).unwrap();
    let buyer = BuyerEmail::parse("asa@example.com").unwrap();
    let renewal = LicenseReply { expires: Some("2027-11-30"), renewal: true, ..reply(&buyer, Recipient::Buyer) };
    let body = text(&renderer.license(&renewal).unwrap().0);
    assert!(body.contains("Subject: Your Acme Pro license, renewed"), "{body}");
    assert!(body.contains("Valid until: 2027-11-30") && body.contains("PRO-1234"), "{body}");
    let extra = "[reply.template]\nsubject = \"Sale\"\ntext = \"{serial} until {expires}\"\n\
                 [reply.renewal]\nsubject = \"Renewed\"\ntext = \"{serial} now until {expires}\"\n";
    let renderer = crate::daemon::build::renderer(&loaded(extra, dir.path())).unwrap();
    let body = text(&renderer.license(&renewal).unwrap().0);
    assert!(body.contains("Subject: Renewed") && body.contains("PRO-1234 now until 2027-11-30"), "{body}");
    let first = text(&renderer.license(&reply(&buyer, Recipient::Buyer)).unwrap().0);
    assert!(first.contains("PRO-1234 until never (perpetual license)"), "{first}");
}

#[test]
fn a_test_order_reply_goes_to_the_vendor_only() {
    let dir = tempfile::tempdir().unwrap();
    let renderer = crate::daemon::build::renderer(&loaded("", dir.path())).unwrap();
    let buyer = BuyerEmail::parse("asa@example.com").unwrap();
    let (main, _) = renderer.license(&reply(&buyer, Recipient::Vendor)).unwrap();
    assert_eq!(main.to, ["boss@acme.example"]);
}

#[test]
fn html_bodies_escape_values_and_activation_links_encode_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.html"), "<p>{licensee}</p><a href=\"{activation_url}\">go</a>").unwrap();
    let extra = "vendor_copy = \"notice\"\n[reply.template]\nsubject = \"{product} for {licensee}\"\ntext = \"{serial}\"\nhtml = { file = \"r.html\" }\n";
    let mut loaded = loaded(extra, dir.path());
    loaded.config.products[0].activation_url = Some("myapp://register?name={licensee_url}&serial={serial_url}".into());
    let renderer = crate::daemon::build::renderer(&loaded).unwrap();
    let buyer = BuyerEmail::parse("asa@example.com").unwrap();
    let (main, notice) = renderer.license(&reply(&buyer, Recipient::Buyer)).unwrap();
    let html = renderer_html(&main);
    assert!(html.contains("<p>Åsa &amp; Bo</p>"), "{html}");
    assert!(html.contains("name=%C3%85sa%20%26%20Bo&amp;serial=PRO-1234"), "{html}");
    assert_eq!(main.to, ["asa@example.com"]);
    let notice = notice.unwrap();
    assert_eq!(notice.to, ["boss@acme.example"]);
    assert!(!text(&notice).contains("PRO-1234"), "the notice carries no serial");
}

/// The HTML part, decoded from whatever transfer encoding lettre chose.
fn renderer_html(outgoing: &Outgoing) -> String {
    let message = mail_parser::MessageParser::default().parse(&outgoing.bytes).unwrap();
    message.body_html(0).unwrap().into_owned()
}

#[test]
fn unknown_placeholders_and_missing_files_are_reported_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.txt"), "Hi {licence}").unwrap();
    let extra =
        "[reply.template]\nsubject = \"{nope}\"\ntext = { file = \"bad.txt\" }\nhtml = { file = \"missing.html\" }\n";
    let err = crate::daemon::build::renderer(&loaded(extra, dir.path())).unwrap_err();
    let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["reply.template.subject", "reply.template.text (bad.txt)", "reply.template.html"]);
}

#[test]
fn run_needs_a_sender_and_a_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = loaded("", dir.path());
    loaded.config.reply.from = None;
    let err = crate::daemon::build::renderer(&loaded).unwrap_err();
    assert_eq!(err.0[0].key, "reply.from");
}
