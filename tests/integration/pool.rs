//! Integration tests: code pools. Here, in-process fakes (`pipeline::fakes`) drive `poll_once()` and the vendor's
//! requests through `Core::execute`: stock running out, the order that waits and is answered by an import,
//! refunds, and the crash on either side of the durable commit. `servers`: the built binary against real
//! Dovecot and SMTP, and SIGKILLed again and again while it hands out codes.
use std::collections::BTreeSet;

use keypost::control::Request;
use keypost::daemon::Origin;
use keypost::fulfil::{Decision, Grant, Recipient};
use keypost::order::{BuyerEmail, Licensee, Order, OrderId, OrderKind};
use keypost::store::{CodeState, ReplyState};

use crate::pipeline::fakes::{TestDaemon, daemon, mail};

mod servers;

/// A product `game` whose licences are pool codes, alerting below 2.
const POOL: &str = "[[product]]\nid = \"game\"\nname = \"Game\"\nskus = [\"GAME\"]\npool = { low_water = 2 }\n";

fn game_sale(order: &str, buyer: &str) -> Vec<u8> {
    mail(
        &format!("{order}@shop.example"),
        &format!("kind: sale\norder: {order}\nname: Bo {order}\nemail: {buyer}\nsku: GAME\nqty: 1"),
    )
}

async fn import(daemon: &TestDaemon, codes: &[&str]) -> String {
    let request = Request::PoolImport {
        product: "game".into(),
        codes: codes.iter().map(|c| c.to_string()).collect(),
        blank: 0,
        repeated: 0,
    };
    daemon.core.execute(&daemon.mailer, &request).await.unwrap().stdout
}

async fn status(daemon: &TestDaemon) -> String {
    let request = Request::PoolStatus { pools: vec![("game".into(), 2)], json: false };
    daemon.core.execute(&daemon.mailer, &request).await.unwrap().stdout
}

/// The code in the single reply sent to `buyer`.
fn code_sent_to(daemon: &TestDaemon, buyer: &str) -> String {
    let replies = daemon.mailer.to(buyer);
    assert_eq!(replies.len(), 1, "one reply to {buyer}");
    let text = String::from_utf8_lossy(&replies[0].bytes).into_owned();
    ["CODE-A", "CODE-B", "CODE-C", "CODE-D"]
        .into_iter()
        .find(|code| text.contains(code))
        .unwrap_or_else(|| panic!("no code in the reply: {text}"))
        .to_owned()
}

#[tokio::test]
async fn two_codes_answer_two_orders_the_third_waits_for_review_and_is_answered_when_codes_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), POOL);
    assert!(import(&daemon, &["CODE-A", "CODE-B"]).await.starts_with("game: 2 code(s) added"));
    for (n, key) in ["1", "2", "3"].iter().enumerate() {
        daemon.source.deliver(key, &game_sale(&format!("G-{n}"), &format!("b{n}@example.com")));
    }
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.review), (2, 1), "{outcome}");
    let codes: BTreeSet<String> = (0..2).map(|n| code_sent_to(&daemon, &format!("b{n}@example.com"))).collect();
    assert_eq!(codes, BTreeSet::from(["CODE-A".to_owned(), "CODE-B".to_owned()]), "two distinct codes");
    assert!(daemon.mailer.to("b2@example.com").is_empty(), "the third buyer waits");
    let alerts = daemon.mailer.vendor_only();
    assert!(alerts.iter().any(|a| a.contains("pool empty: game")), "{alerts:?}");
    assert!(
        alerts.iter().any(|a| a.contains("review: shop/G-2") && a.contains("once codes are imported")),
        "{alerts:?}"
    );
    assert!(status(&daemon).await.contains(
        "game: 0 available, 2 handed out, 0 revoked; low-water mark 2; 1 order(s) waiting for codes (EMPTY)"
    ));

    // A licence issued by hand finds the pool empty too: refused with the reason, nothing recorded.
    let issue = Request::Issue { product: "game".into(), name: "Cy".into(), email: "c@example.com".into(), seats: 1 };
    let refused = daemon.core.execute(&daemon.mailer, &issue).await.unwrap_err();
    assert!(format!("{refused:#}").contains("the code pool of game has 0 code(s)"), "{refused:#}");
    assert_eq!(daemon.core.store.waiting_orders().unwrap().len(), 1);
    // Another pass with the pool still empty changes nothing.
    assert!(daemon.poll_once().await.unwrap().is_idle());
    let printed = import(&daemon, &["CODE-A", "CODE-C", "CODE-D"]).await;
    assert!(
        printed.starts_with("game: 2 code(s) added; skipped: 0 already in the pool, 1 already handed out"),
        "{printed}"
    );
    assert!(printed.contains("1 order(s) that waited for codes answered"), "{printed}");
    assert_eq!(code_sent_to(&daemon, "b2@example.com"), "CODE-C", "the oldest import first");
    let line = daemon.core.store.order_line("shop", "G-2", 0).unwrap().unwrap();
    assert_eq!(line.decision, "issue");
    assert_eq!(line.license.map(|l| l.serial).as_deref(), Some("CODE-C"));
    assert!(matches!(line.reply, ReplyState::Sent { .. }), "{:?}", line.reply);
    let lookup =
        daemon.core.execute(&daemon.mailer, &Request::Lookup { query: "G-2".into(), json: false }).await.unwrap();
    assert!(lookup.stdout.contains("game x1 for \"Bo G-2\": CODE-C"), "{}", lookup.stdout);
    // Importing the same file again adds nothing.
    let again = import(&daemon, &["CODE-A", "CODE-C", "CODE-D"]).await;
    assert!(
        again.starts_with("game: 0 code(s) added; skipped: 1 already in the pool, 2 already handed out"),
        "{again}"
    );
    assert!(daemon.poll_once().await.unwrap().is_idle());
    assert_eq!(daemon.mailer.to("b2@example.com").len(), 1);
}

#[tokio::test]
async fn a_resend_mails_the_same_code_and_a_refund_revokes_it_without_returning_it_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), POOL);
    import(&daemon, &["CODE-A", "CODE-B", "CODE-C"]).await;
    daemon.source.deliver("1", &game_sale("G-1", "b@example.com"));
    daemon.poll_once().await.unwrap();
    assert_eq!(code_sent_to(&daemon, "b@example.com"), "CODE-A");
    let resend = Request::Resend { provider: "shop".into(), order_id: "G-1".into() };
    daemon.core.execute(&daemon.mailer, &resend).await.unwrap();
    let replies = daemon.mailer.to("b@example.com");
    assert_eq!(replies.len(), 2);
    assert!(String::from_utf8_lossy(&replies[1].bytes).contains("CODE-A"), "the same code again");

    daemon.source.deliver("2", &mail("r1@shop.example", "kind: refund\norder: G-1"));
    assert_eq!(daemon.poll_once().await.unwrap().revoked, 1);
    let code = daemon.core.store.pool_code("game", "CODE-A").unwrap().unwrap();
    assert!(matches!(code.state, CodeState::Revoked { ref reason, .. } if reason == "refund"), "{code:?}");
    assert!(status(&daemon).await.starts_with("game: 2 available, 0 handed out, 1 revoked"));
    // Imported again, a revoked code stays out.
    assert!(
        import(&daemon, &["CODE-A"])
            .await
            .contains("0 code(s) added; skipped: 0 already in the pool, 1 already handed out")
    );
    daemon.source.deliver("3", &game_sale("G-2", "c@example.com"));
    daemon.poll_once().await.unwrap();
    assert_eq!(code_sent_to(&daemon, "c@example.com"), "CODE-B");
}

#[tokio::test]
async fn a_refund_for_an_order_waiting_for_codes_ends_its_wait_and_an_import_does_not_answer_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), POOL);
    daemon.source.deliver("1", &game_sale("G-1", "b@example.com"));
    assert_eq!(daemon.poll_once().await.unwrap().review, 1);
    daemon.source.deliver("2", &mail("r1@shop.example", "kind: refund\norder: G-1"));
    assert_eq!(daemon.poll_once().await.unwrap().revoked, 1);
    assert!(!daemon.core.store.has_waiting_orders());
    let line = daemon.core.store.order_line("shop", "G-1", 0).unwrap().unwrap();
    assert_eq!(line.revoked.map(|r| r.reason).as_deref(), Some("refund"));
    let printed = import(&daemon, &["CODE-A"]).await;
    assert!(!printed.contains("answered"), "{printed}");
    assert!(daemon.poll_once().await.unwrap().is_idle());
    assert!(daemon.mailer.to("b@example.com").is_empty(), "the refunded buyer gets no code");
    assert_eq!(daemon.core.store.pool_available_count("game"), 1);
}

/// `provider`'s notice (`kind`) of order `id`; with `payment`, of the payment both providers' notices name.
fn game_notice(provider: &str, id: &str, kind: &str, payment: bool) -> Vec<u8> {
    let payment = if payment { "\npayment: paypal:8DE45678FG901234H" } else { "" };
    let text =
        format!("kind: {kind}\nprovider: {provider}\norder: {id}{payment}\nname: Bo\nemail: b@example.com\nsku: GAME");
    mail(&format!("{provider}-{kind}-{id}@shop.example"), &text)
}

#[tokio::test]
async fn a_refund_naming_only_the_other_notice_of_the_payment_ends_the_wait_of_the_order_waiting_for_codes() {
    // The refund names the processor's id: by the payment id it shares (nothing else of the processor on file),
    // or through the processor's sale notice recorded as linked to the waiting order (the refund without an id).
    for linked_sale_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = daemon(dir.path(), POOL);
        daemon.source.deliver("1", &game_notice("shop", "G-1", "sale", true));
        assert_eq!(daemon.poll_once().await.unwrap().review, 1, "the pool is empty: it waits");
        if linked_sale_first {
            daemon.source.deliver("2", &game_notice("processor", "TXN-1", "sale", true));
            assert_eq!(daemon.poll_once().await.unwrap().skipped, 1, "linked to the waiting order");
            assert!(daemon.core.store.has_waiting_orders());
        }
        daemon.source.deliver("3", &game_notice("processor", "TXN-1", "refund", !linked_sale_first));
        let outcome = daemon.poll_once().await.unwrap();
        assert_eq!(outcome.revoked, 1, "{outcome}");
        assert!(!daemon.core.store.has_waiting_orders(), "linked sale first: {linked_sale_first}");
        let reason = "refund through processor/TXN-1, the same payment";
        let line = daemon.core.store.order_line("shop", "G-1", 0).unwrap().unwrap();
        assert_eq!(line.revoked.map(|r| r.reason).as_deref(), Some(reason));
        let audit = daemon.core.store.audit().unwrap();
        let entry = audit.iter().find(|a| a.event == "revoked").expect("an audit line");
        assert_eq!(
            (entry.subject.as_str(), entry.detail.as_str()),
            ("shop/G-1", &*format!("{reason}: the order no longer waits for codes"))
        );
        let lookup = Request::Lookup { query: "G-1".into(), json: false };
        let found = daemon.core.execute(&daemon.mailer, &lookup).await.unwrap().stdout;
        assert!(found.contains(&format!("REVOKED ({reason})")), "{found}");
        let alerts = daemon.mailer.vendor_only();
        assert!(alerts.iter().any(|a| a.contains("revoked: shop/G-1 (refund through processor/TXN-1")), "{alerts:#?}");

        let printed = import(&daemon, &["CODE-A"]).await;
        assert!(!printed.contains("answered"), "{printed}");
        assert!(daemon.poll_once().await.unwrap().is_idle());
        assert!(daemon.mailer.to("b@example.com").is_empty(), "the refunded buyer gets no code");
        assert_eq!(daemon.core.store.pool_available_count("game"), 1);
    }
}

#[tokio::test]
async fn a_multi_seat_line_of_a_pool_product_gets_one_code_covering_its_seats() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), POOL);
    import(&daemon, &["CODE-A", "CODE-B", "CODE-C"]).await;
    let sale = "kind: sale\norder: G-1\nname: Bo\nemail: b@example.com\nsku: GAME\nqty: 3";
    daemon.source.deliver("1", &mail("m@shop.example", sale));
    assert_eq!(daemon.poll_once().await.unwrap().fulfilled, 1);
    assert_eq!(code_sent_to(&daemon, "b@example.com"), "CODE-A");
    let line = daemon.core.store.order_line("shop", "G-1", 0).unwrap().unwrap();
    assert_eq!(line.license.map(|l| (l.serial, l.grant.seats)), Some(("CODE-A".into(), 3)));
    assert_eq!(daemon.core.store.pool_available_count("game"), 2);
}

#[tokio::test]
async fn the_low_water_alert_goes_out_once_when_stock_falls_below_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), POOL);
    import(&daemon, &["CODE-A", "CODE-B", "CODE-C", "CODE-D"]).await;
    for n in 0..3 {
        daemon.source.deliver(&n.to_string(), &game_sale(&format!("G-{n}"), &format!("b{n}@example.com")));
        daemon.poll_once().await.unwrap();
    }
    let alerts = daemon.mailer.vendor_only();
    let low: Vec<&String> = alerts.iter().filter(|a| a.contains("pool low: game")).collect();
    assert_eq!(low.len(), 1, "{alerts:?}");
    assert!(low[0].contains("pool low: game (1 left)"), "4 -> 3 -> 2 -> 1: below 2 after the third: {}", low[0]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
}

fn game_order(id: &str) -> (Origin, Order, Decision) {
    let licensee = Licensee::parse("Bo").unwrap();
    let order = Order {
        provider: "shop".into(),
        kind: OrderKind::Sale,
        id: OrderId::parse(id).unwrap(),
        test: false,
        licensee: Some(licensee.clone()),
        buyer_name: None,
        buyer_email: Some(BuyerEmail::parse("b@example.com").unwrap()),
        items: Vec::new(),
        total: None,
        subscription: None,
        period_end: None,
        payment_id: None,
        sequence: None,
    };
    let grants =
        vec![Grant { line: 0, product: "game".into(), seats: 1, licensee, sku: None, expires: None, follows: None }];
    let origin = Origin { label: format!("memory/{id}"), message_id: None, content_hash: format!("hash-{id}") };
    (origin, order, Decision::Issue { grants, recipient: Recipient::Buyer })
}

#[tokio::test]
async fn a_crash_before_the_commit_leaves_the_code_in_the_pool_and_after_it_the_same_code_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(dir.path(), POOL);
    import(&daemon, &["CODE-A", "CODE-B"]).await;
    // Decided, never committed (the process died before the flush): nothing taken.
    let (origin, order, decision) = game_order("G-1");
    let assessed = daemon.core.apply(&origin, &order, decision.clone()).unwrap();
    drop(assessed);
    assert_eq!(daemon.core.store.pool_available_count("game"), 2);
    // Committed, then the process died before sending.
    let assessed = daemon.core.apply(&origin, &order, decision).unwrap();
    daemon.core.store.commit_durable(assessed.change).await.unwrap();
    drop(daemon);
    let mut daemon = crate::pipeline::fakes::daemon(dir.path(), POOL);
    assert_eq!(daemon.core.store.pool_available_count("game"), 1);
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.sent, 2, "the reply and the low-water alert, sent on the next pass: {outcome}");
    assert_eq!(code_sent_to(&daemon, "b@example.com"), "CODE-A");
    let code = daemon.core.store.pool_code("game", "CODE-A").unwrap().unwrap();
    assert!(matches!(code.state, CodeState::HandedOut { ref order, .. } if order == "shop/G-1#0"), "{code:?}");
    let alerts = daemon.mailer.vendor_only();
    assert!(alerts.iter().any(|a| a.contains("pool low: game (1 left)")), "queued with the reply: {alerts:?}");
}

/// `keypost check` and `keypost pool` as a vendor runs them, in a temp dir with `config`.
fn tool(dir: &std::path::Path, config: &str, args: &[&str]) -> (i32, String) {
    std::fs::write(dir.join("keypost.toml"), config).unwrap();
    let output = crate::support::keypost(dir, &["--config", "keypost.toml"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn check_lists_every_pool_configuration_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[product]]
id = "neither"
name = "Neither"

[[product]]
id = "both"
name = "Both"
serial = { product_code = 1, key = { inline = "0123456789abcdef0123456789abcdef" } }
pool = {}

[[product]]
id = "typo"
name = "Typo"
pool = { lowwater = 3 }

[[product]]
id = "huge"
name = "Huge"
pool = { low_water = 5000000 }
"#;
    let (code, out) = tool(dir.path(), config, &["check"]);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "keypost.toml: product[0].serial: is required",
        "keypost.toml: product[1].pool: a product hands out serials ([product.serial]) or pool codes ([product.pool]), not both",
        "keypost.toml: product[2].pool.lowwater: unknown key",
        "keypost.toml: product[3].pool.low_water: must be at most 1000000",
    ] {
        assert!(out.contains(expected), "{expected:?} missing:\n{out}");
    }
}

#[test]
fn check_warns_about_a_pool_without_codes_until_codes_are_imported_and_the_tools_work_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[outbox.files]
dir = "outbox"

[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"

[[product]]
id = "game"
name = "Game"
pool = { low_water = 1 }
"#;
    let (code, out) = tool(dir.path(), config, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: keypost.toml: product[0].pool: the pool of \"game\" has no codes"), "{out}");
    std::fs::write(dir.path().join("codes.txt"), "K-1\n\nK-2\nK-1\n  K-3  \n").unwrap();
    let (code, out) = tool(dir.path(), config, &["pool", "import", "game", "codes.txt"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("game: 3 code(s) added; skipped: 0 already in the pool, 0 already handed out, 1 repeated in the file, 1 blank line(s); 3 available now\n"), "{out}");
    let (_, again) = tool(dir.path(), config, &["pool", "import", "game", "codes.txt"]);
    assert!(again.starts_with("game: 0 code(s) added; skipped: 3 already in the pool"), "{again}");
    let state = dir.path().join("state").join("keypost.redb");
    let before = std::fs::read(&state).unwrap();
    let (code, out) = tool(dir.path(), config, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("has no codes"), "{out}");
    assert!(std::fs::read(&state).unwrap() == before, "`check` only reads the state: the file is as it was");
    let (_, json) = tool(dir.path(), config, &["pool", "status", "--json"]);
    let stocks: Vec<keypost::pool::Stock> = serde_json::from_str(&json).unwrap();
    assert_eq!((stocks.len(), stocks[0].available, stocks[0].low_water), (1, 3, Some(1)));
    // A file with a control character is refused whole, naming the line; nothing is imported.
    std::fs::write(dir.path().join("bad.txt"), "K-9\nK\u{1b}[31m\n").unwrap();
    let (code, out) = tool(dir.path(), config, &["pool", "import", "game", "bad.txt"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("bad.txt:line 2: contains a control character") && out.contains("nothing was imported"),
        "{out}"
    );
    let (_, status) = tool(dir.path(), config, &["pool", "status"]);
    assert_eq!(status, "game: 3 available, 0 handed out, 0 revoked; low-water mark 1\n");
    let (code, out) = tool(dir.path(), config, &["pool", "import", "nope", "codes.txt"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("product \"nope\" has no [product.pool]") && out.contains("pool products: \"game\""), "{out}");
}
