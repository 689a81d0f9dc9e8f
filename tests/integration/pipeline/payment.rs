//! One purchase, two notifications: a shop's notice (`shop`) and its processor's notice (`processor`) of the
//! same payment, under different order ids, answered once in either arrival order, across a restart between
//! the two, and revoked once by a refund through either.
use keypost::mailbox::Disposition;
use keypost::store::ReplyState;

use super::fakes::{self, mail};

const PAYMENT: &str = "paypal:8DE45678FG901234H";

fn notice(provider: &str, order_id: &str, kind: &str) -> String {
    format!(
        "kind: {kind}\nprovider: {provider}\norder: {order_id}\npayment: {PAYMENT}\nname: Åsa Öberg\nemail: asa@example.com\nsku: ACME-PRO\nqty: 1"
    )
}

#[tokio::test]
async fn the_processors_notice_after_a_restart_is_linked_to_the_shops_order_and_gets_no_second_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::daemon(dir.path(), "");
    daemon.source.deliver("1-shop", &mail("s1@shop.example", &notice("shop", "1042", "sale")));
    assert_eq!(daemon.poll_once().await.unwrap().fulfilled, 1);
    // A crash between the two notices: the first one's outcome is in the state, nothing is in memory.
    drop(daemon);
    let mut daemon = fakes::daemon(dir.path(), "");
    daemon.source.deliver("2-processor", &mail("p1@shop.example", &notice("processor", "TXN-1", "sale")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.skipped, outcome.sent), (0, 1, 0), "{outcome}");
    assert!(daemon.mailer.sent.borrow().is_empty(), "no reply, no alert: {:?}", daemon.mailer.sent.borrow());
    assert_eq!(daemon.source.disposition("2-processor"), Some(Disposition::Done));
    let link = daemon.core.store.order_line("processor", "TXN-1", 0).unwrap().unwrap();
    assert_eq!(link.decision, "link");
    assert_eq!(link.linked_to.map(|to| to.to_string()).as_deref(), Some("shop/1042"));
    assert_eq!((link.license, link.reply), (None, ReplyState::None));
    // `lookup` by either order id shows both notices as one purchase.
    for query in ["1042", "TXN-1"] {
        let found: Vec<String> = daemon.core.store.lookup(query).unwrap().iter().map(|r| r.label()).collect();
        assert_eq!(found, ["processor/TXN-1#0", "shop/1042#0"], "{query}");
    }
    let events: Vec<String> = daemon.core.store.audit().unwrap().into_iter().map(|a| a.event).collect();
    assert_eq!(events, ["decided", "sent", "linked"]);
}

#[tokio::test]
async fn the_shops_notice_after_the_processors_in_one_batch_is_linked_and_a_refund_through_the_shop_revokes_the_one_license()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::daemon(dir.path(), "");
    daemon.source.deliver("1-processor", &mail("p1@shop.example", &notice("processor", "TXN-1", "sale")));
    daemon.source.deliver("2-shop", &mail("s1@shop.example", &notice("shop", "1042", "sale")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.skipped), (1, 1), "{outcome}");
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "exactly one reply");
    let link = daemon.core.store.order_line("shop", "1042", 0).unwrap().unwrap();
    assert_eq!(link.linked_to.map(|to| to.to_string()).as_deref(), Some("processor/TXN-1"));

    daemon.source.deliver("3-shop-refund", &mail("s2@shop.example", &notice("shop", "1042", "refund")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.revoked, 1, "{outcome}");
    let licensed = daemon.core.store.order_line("processor", "TXN-1", 0).unwrap().unwrap();
    assert_eq!(licensed.revoked.map(|r| r.reason).as_deref(), Some("refund"));
    let alerts = daemon.mailer.vendor_only();
    assert!(alerts.iter().any(|a| a.contains("revoked: processor/TXN-1 (refund)")), "{alerts:?}");
    // The processor's refund of the same payment finds nothing left to take back.
    daemon.source.deliver("4-processor-refund", &mail("p2@shop.example", &notice("processor", "TXN-1", "refund")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.revoked, outcome.skipped), (0, 1), "{outcome}");
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "the buyer only ever got the one license");
}

#[tokio::test]
async fn a_refund_through_the_processor_before_any_sale_keeps_the_shops_sale_from_being_fulfilled() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::daemon(dir.path(), "");
    daemon.source.deliver("1-refund", &mail("p2@shop.example", &notice("processor", "TXN-1", "refund")));
    assert_eq!(daemon.poll_once().await.unwrap().review, 1);
    daemon.source.deliver("2-shop", &mail("s1@shop.example", &notice("shop", "1042", "sale")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.revoked), (0, 1), "{outcome}");
    assert!(daemon.mailer.to("asa@example.com").is_empty(), "the buyer gets nothing");
    let line = daemon.core.store.order_line("shop", "1042", 0).unwrap().unwrap();
    assert_eq!(line.decision, "sale-revoked");
}

#[tokio::test]
async fn notices_without_a_payment_id_are_not_linked() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::daemon(dir.path(), "");
    let without = |provider: &str, id: &str| notice(provider, id, "sale").replace(&format!("payment: {PAYMENT}\n"), "");
    daemon.source.deliver("1-shop", &mail("s1@shop.example", &without("shop", "1042")));
    daemon.source.deliver("2-processor", &mail("p1@shop.example", &without("processor", "TXN-1")));
    assert_eq!(daemon.poll_once().await.unwrap().fulfilled, 2, "two orders as far as keypost can tell");
}
