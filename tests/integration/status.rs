//! Integration tests: `keypost status` and the `--json` outputs, with the built binary on the demo configuration,
//! while the daemon runs (its facts over the control socket) and after it stopped (the state alone).
use std::path::Path;

use crate::control::{Daemon, keypost, wait_until_processed};
use crate::support::copy_demo;

fn json(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let output = keypost(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!("{args:?} printed no JSON ({err}): {stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    (output.status.code(), value)
}

#[test]
fn status_and_json_outputs_tell_the_same_while_the_daemon_runs_and_after_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_demo(dir);
    let mut daemon = Daemon::start(dir);
    wait_until_processed(dir, &mut daemon);

    let (code, status) = json(dir, &["status", "--json"]);
    assert_eq!(code, Some(0), "{status:#}");
    assert_eq!(status["running"], true);
    let running = &status["daemon"];
    assert!(running["source"].as_str().unwrap().contains("maildir"), "{status:#}");
    assert!(running["mailbox"]["seconds_ago"].as_i64().unwrap() >= 0, "the mailbox was reached: {status:#}");
    assert!(running["smtp"]["last_contact"].is_string(), "the files outbox took the replies: {status:#}");
    assert!(running["since_start"]["fulfilled"].as_u64().unwrap() >= 1, "{status:#}");
    assert_eq!(running["last_pass"]["ok"], true);
    assert!(status["set_aside"].as_u64().unwrap() >= 1, "the demo has a message keypost sets aside: {status:#}");
    assert_eq!(status["outbox"]["waiting"], 0);
    assert_eq!(status["pools"], serde_json::json!([]), "the demo has no code pools");

    let text = keypost(dir, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("running since"), "{text}");
    assert!(text.contains(&format!("set aside: {} (keypost aside list)", status["set_aside"])), "{text}");

    let (code, aside) = json(dir, &["aside", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(aside.as_array().unwrap().len() as u64, status["set_aside"].as_u64().unwrap());
    assert!(aside[0]["id"].is_string() && aside[0]["reason"].is_string(), "{aside:#}");

    let order = "8HJ45678KL901234M";
    let (code, found) = json(dir, &["lookup", "--json", order]);
    assert_eq!(code, Some(0));
    assert_eq!(found["orders"][0]["order_id"], order);
    assert_eq!(found["orders"][0]["decision"], "issue");
    assert_eq!(found["orders"][0]["reply"]["state"], "sent");
    assert_eq!(found["lost_license_requests"], serde_json::json!([]));
    let (code, nothing) = json(dir, &["lookup", "--json", "nobody@example.com"]);
    let empty = serde_json::json!({ "orders": [], "lost_license_requests": [] });
    assert_eq!((code, nothing), (Some(1), empty));

    let (exit, _) = daemon.terminate();
    assert!(exit.success());
    let (code, stopped) = json(dir, &["status", "--json"]);
    assert_eq!(code, Some(3), "not running: exit 3, as systemctl status");
    assert_eq!(stopped["running"], false);
    assert!(stopped["daemon"].is_null());
    assert_eq!(stopped["set_aside"], status["set_aside"], "the state alone tells the same counts");
    assert_eq!(stopped["review"], status["review"]);
    let (_, found_again) = json(dir, &["lookup", "--json", order]);
    assert_eq!(found_again["orders"][0]["license"]["serial"], found["orders"][0]["license"]["serial"]);
}

/// `GET /metrics` over loopback; the samples as (name with labels, value).
fn scrape(port: u16) -> Vec<(String, f64)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
            (name.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}")))
        })
        .collect()
}

#[test]
fn the_metrics_endpoint_on_loopback_counts_the_orders_the_daemon_answered() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_demo(dir);
    let port = crate::support::free_port();
    let config = dir.join("demo.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(dir);
    wait_until_processed(dir, &mut daemon);
    let (_, status) = json(dir, &["status", "--json"]);

    let samples = scrape(port);
    let value = |name: &str| {
        samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {name} in {samples:?}"))
    };
    let fulfilled = status["daemon"]["since_start"]["fulfilled"].as_f64().unwrap();
    assert!(fulfilled >= 1.0);
    assert_eq!(value("keypost_messages_total{outcome=\"fulfilled\"}"), fulfilled);
    assert_eq!(value("keypost_set_aside"), status["set_aside"].as_f64().unwrap());
    let sent = value("keypost_replies_total{result=\"sent\"}");
    assert!(sent >= fulfilled, "every fulfilled order's reply went out: {sent} < {fulfilled}");
    assert_eq!(value("keypost_replies_total{result=\"failed\"}"), 0.0);
    assert_eq!(value("keypost_reply_latency_seconds_count"), sent, "one latency per first reply");
    assert_eq!(value("keypost_reply_latency_seconds_bucket{le=\"+Inf\"}"), sent);
    assert!(value("keypost_reply_latency_seconds_bucket{le=\"60\"}") >= 1.0, "answered within a minute");
    let age = value("keypost_mailbox_contact_age_seconds");
    assert!((0.0..60.0).contains(&age), "the mailbox was reached moments ago: {age}");
    assert_eq!(value("keypost_outbox_waiting"), 0.0);
    daemon.terminate();
}
