//! Integration tests: a buyer's lost-license request through real Dovecot and a real SMTP server (aiosmtpd),
//! with the built binary: the licenses on file go to the address on file only, at most `per_day` times, and the
//! request shows in `keypost lookup`; requests are never set aside nor counted as unknown senders.
use std::time::Duration;

use crate::support::binary::{VENDOR, config};
use crate::support::{Dovecot, Keypost, Orders, RecordingSink, done_folder, ignored_folder};

/// A buyer's mail asking for the serial; `extra` headers go on top.
fn request(n: usize, from: &str, subject: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "{extra}From: A Buyer <{from}>\r\nTo: sales@vendor.example\r\nSubject: {subject}\r\n\
         Message-ID: <request-{n}@mail.example>\r\nDate: Mon, 30 Nov 2026 08:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn run_once(keypost: &Keypost) -> String {
    let output = keypost.tool(&["run", "--once"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn a_lost_license_request_resends_to_the_address_on_file_only_rate_limited_and_audited() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, "[self_service]\nper_day = 2\n"));
    let mut client = dovecot.client().await;
    client.append("INBOX", &orders.mail(0)).await;
    assert!(run_once(&keypost).contains("fulfilled: 1"));
    sink.wait_count(Duration::from_secs(10), |n| n >= 1);

    // The buyer asks twice (German, then English with a Reply-To elsewhere); a third request is over the limit.
    client
        .append("INBOX", &request(1, "Buyer0@Example.com", "Hilfe", "Ich habe meinen Lizenzschlüssel verloren.", ""))
        .await;
    let reply_to = "Reply-To: thief@attacker.example\r\n";
    client.append("INBOX", &request(2, "buyer0@example.com", "Lost serial", "Please resend.", reply_to)).await;
    client.append("INBOX", &request(3, "buyer0@example.com", "lost license key", "Again?", "")).await;
    // No order on file: no answer by default. An auto-reply quoting a request: never answered.
    client.append("INBOX", &request(4, "stranger@example.net", "Lost serial", "Hi", "")).await;
    let auto = "Auto-Submitted: auto-replied\r\n";
    client.append("INBOX", &request(5, "buyer0@example.com", "Lost serial", "I am away.", auto)).await;
    let summary = run_once(&keypost);
    assert!(summary.contains("lost licenses: 2"), "{summary}");
    assert!(summary.contains("unknown senders: 0") && summary.contains("set aside: 0"), "{summary}");

    sink.wait_count(Duration::from_secs(10), |n| n >= 3);
    std::thread::sleep(Duration::from_millis(500));
    let arrivals = sink.arrivals();
    let resends: Vec<_> =
        arrivals.iter().filter(|a| String::from_utf8_lossy(&a.bytes).contains("keypost.resend.")).collect();
    assert_eq!(resends.len(), 2, "two answered, the third rate-limited: {arrivals:#?}");
    for resend in &resends {
        let text = String::from_utf8_lossy(&resend.bytes);
        println!("--- a resend as the SMTP server received it ---\n{text}");
        assert_eq!(resend.recipients.len(), 1, "{:?}", resend.recipients);
        assert!(resend.recipients[0].contains("buyer0@example.com"), "the address on file: {:?}", resend.recipients);
        assert!(text.contains(&Orders::id(0)) && text.contains("Licensee 0"), "the license on file: {text}");
    }
    assert!(arrivals.iter().all(|a| a.recipients.iter().all(|r| !r.contains("attacker") && !r.contains("stranger"))));

    let lookup = keypost.tool(&["lookup", "buyer0@example.com"]);
    let lookup = String::from_utf8_lossy(&lookup.stdout);
    assert_eq!(lookup.matches("resent 1 license(s) to the address on file").count(), 2, "{lookup}");
    assert!(lookup.contains("rate limited"), "{lookup}");
    assert!(lookup.contains("automated mail (auto-submitted: auto-replied)"), "{lookup}");
    let stranger = keypost.tool(&["lookup", "stranger@example.net"]);
    assert!(String::from_utf8_lossy(&stranger.stdout).contains("no license on file; no answer"));
    // `--json` tells the same: the order and every request, answered or not.
    let json = keypost.tool(&["lookup", "--json", "buyer0@example.com"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["orders"][0]["order_id"], Orders::id(0).as_str(), "{json:#}");
    let requests = json["lost_license_requests"].as_array().unwrap();
    let resent: Vec<_> = requests.iter().filter(|r| r["resent"] == 1).collect();
    assert_eq!(resent.len(), 2, "{json:#}");
    assert!(requests.iter().any(|r| r["outcome"].as_str().unwrap().contains("rate limited")), "{json:#}");
    let stranger = keypost.tool(&["lookup", "--json", "stranger@example.net"]);
    assert_eq!(stranger.status.code(), Some(0), "a request on file is something found");
    let stranger: serde_json::Value = serde_json::from_slice(&stranger.stdout).unwrap();
    assert_eq!(stranger["orders"], serde_json::json!([]));
    assert!(stranger["lost_license_requests"][0]["outcome"].as_str().unwrap().contains("no license on file"));

    let counts = client.folder_counts().await;
    assert_eq!(counts.get(&done_folder()), Some(&3), "the order and the two answered requests: {counts:?}");
    assert_eq!(counts.get(&ignored_folder()), Some(&3), "the unanswered requests: {counts:?}");
    assert_eq!(counts.get("keypost.set-aside").copied().unwrap_or(0), 0, "{counts:?}");
    client.logout().await;
}

#[tokio::test]
async fn a_writer_with_no_license_gets_the_configured_answer_at_their_own_address() {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let orders = Orders::new();
    let extra = "[self_service.unknown_answer]\nsubject = \"Your license\"\ntext = \"We found no license for this address. Write from the address you bought with.\"\n";
    let keypost = Keypost::new(&config(dovecot.port, sink.port, &orders, extra));
    let mut client = dovecot.client().await;
    client.append("INBOX", &request(1, "stranger@example.net", "Clé de licence perdue", "Bonjour", "")).await;
    run_once(&keypost);
    sink.wait_count(Duration::from_secs(10), |n| n >= 1);
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), 1, "{arrivals:#?}");
    let text = String::from_utf8_lossy(&arrivals[0].bytes);
    println!("--- the answer as the SMTP server received it ---\n{text}");
    assert!(arrivals[0].recipients[0].contains("stranger@example.net"));
    assert!(text.contains("Subject: Your license") && text.contains("We found no license"), "{text}");
    client.logout().await;
}
