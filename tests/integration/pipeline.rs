//! Integration tests: the whole pipeline. Here, in-process fakes at the seams (`fakes`) drive `poll_once()`
//! directly, no sleeping, plus one case through the real templates. `property`: any arrival order of copies and
//! refunds; `demo`: the built binary on the embedded demo and the vendor's tools; `kill`: the built binary
//! killed with SIGKILL 25 times while it drains 300 orders; `servers`: real Dovecot and smtp-sink on loopback;
//! `retry`: a DKIM key lookup that fails for now leaves the message unsettled until `trust.retry_hours`;
//! `recipient`: a reply goes to the trusted order's buyer only; `send_retry`: the retry schedule of a refused reply
//! through the running loop, on tokio's paused clock; `payment`: a shop's and its processor's notice of one payment;
//! `silence`: a provider that stops sending order mail; `overlap`: a full batch is moved and the next one fetched
//! while its replies are sent.
use keypost::daemon::Outcome;
use keypost::mailbox::Disposition;
use keypost::reply::SendError;
use keypost::store::ReplyState;

mod demo;
pub(crate) mod fakes;
mod kill;
mod overlap;
mod payment;
mod property;
mod recipient;
mod retry;
mod send_retry;
mod servers;
mod silence;

use fakes::{VENDOR, daemon, mail, sale};

fn counts(outcome: &Outcome) -> [usize; 6] {
    [outcome.fulfilled, outcome.skipped, outcome.review, outcome.revoked, outcome.ignored, outcome.set_aside]
}

#[tokio::test]
async fn the_same_order_arriving_three_ways_gets_one_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    let original = mail("m1@shop.example", &sale("A-1", "asa@example.com"));
    let forwarded =
        mail("fw@vendor.example", &format!("Fwd: your order\n-- forwarded --\n{}", sale("A-1", "asa@example.com")));
    let second = mail("m2@shop.example", &format!("{}\nnote: your receipt", sale("A-1", "asa@example.com")));
    daemon.source.deliver("1-original", &original);
    daemon.source.deliver("2-same-again", &original);
    daemon.source.deliver("3-forwarded", &forwarded);
    daemon.source.deliver("4-same-order-id", &second);
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [1, 3, 0, 0, 0, 0], "{outcome}");
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "exactly one reply");
    assert_eq!(outcome.sent, 1);
    for key in ["1-original", "2-same-again", "3-forwarded", "4-same-order-id"] {
        assert_eq!(daemon.source.disposition(key), Some(Disposition::Done), "{key}");
    }
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert!(matches!(line.reply, ReplyState::Sent { .. }), "{:?}", line.reply);
    let events: Vec<String> = daemon.core.store.audit().unwrap().into_iter().map(|a| a.event).collect();
    assert_eq!(
        events,
        ["decided", "duplicate", "duplicate", "skipped", "sent"],
        "by Message-ID, content hash, order id; the batch's reply is sent once the batch is recorded"
    );
}

#[tokio::test]
async fn a_repeat_purchase_by_the_same_buyer_is_a_new_order_with_its_own_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.source.deliver("2", &mail("m2@shop.example", &sale("A-2", "asa@example.com")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.fulfilled, 2);
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 2);
}

/// Some providers' mail carries no order id of its own (Gumroad: the Message-ID stands in). A second purchase of
/// the same thing by the same buyer then reads like a copy of the first mail: it goes to a person, it is not
/// filed as a duplicate. The same text under the same id is still the same email.
#[tokio::test]
async fn the_same_text_under_another_order_id_goes_to_review_not_to_the_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    // The forward marker keeps the order line out of the content hash, as a Message-ID order id is.
    let text = "kind: sale\nname: Åsa Öberg\nemail: asa@example.com\nsku: ACME-PRO\nqty: 2";
    let purchase = |n: &str| mail(&format!("m{n}@shop.example"), &format!("order: G-{n}\n-- forwarded --\n{text}"));
    daemon.source.deliver("1-first", &purchase("1"));
    daemon.source.deliver("2-bought-again", &purchase("2"));
    daemon.source.deliver("3-first-copied", &mail("m9@shop.example", &format!("order: G-1\n-- forwarded --\n{text}")));
    let outcome = daemon.poll_once().await.unwrap();

    assert_eq!(counts(&outcome), [1, 1, 1, 0, 0, 0], "{outcome}");
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "the second one waits for the vendor");
    let alerts = daemon.mailer.vendor_only();
    let review = alerts.iter().find(|a| a.contains("same text as order shop/G-1")).expect("a review alert");
    assert!(review.contains("keypost issue"), "{review}");
    assert!(daemon.core.store.order_line("shop", "G-2", 0).unwrap().is_some(), "recorded, so lookup shows it");
}

#[tokio::test]
async fn a_refund_after_a_sale_revokes_the_license_and_alerts_the_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.poll_once().await.unwrap();
    daemon.source.deliver("2", &mail("r1@shop.example", "kind: refund\norder: A-1"));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [0, 0, 0, 1, 0, 0], "{outcome}");
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert_eq!(line.revoked.map(|r| r.reason).as_deref(), Some("refund"));
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("revoked: shop/A-1 (refund)"), "{}", alerts[0]);
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "the buyer only ever got the license");
}

#[tokio::test]
async fn a_refund_before_its_sale_is_remembered_and_the_sale_is_recorded_revoked_with_no_serial() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("r1@shop.example", "kind: chargeback\norder: A-1"));
    let first = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&first), [0, 0, 1, 0, 0, 0], "{first}");
    // A restart between the two: the refund is in the state, not in memory.
    drop(daemon);
    let mut daemon = fakes::daemon(dir.path(), "");
    daemon.source.deliver("2", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let second = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&second), [0, 0, 0, 1, 0, 0], "{second}");
    assert!(daemon.mailer.to("asa@example.com").is_empty(), "the buyer gets nothing");
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert_eq!((line.license, line.reply, line.decision.as_str()), (None, ReplyState::None, "sale-revoked"));
    assert_eq!(line.revoked.map(|r| r.reason).as_deref(), Some("chargeback received before the sale"));
    let alerts = daemon.mailer.vendor_only();
    assert!(alerts.iter().any(|a| a.contains("revoked: shop/A-1 (chargeback received before the sale)")), "{alerts:?}");
    // The same sale mailed again is a duplicate, still without a serial.
    daemon.source.deliver("3", &mail("m2@shop.example", &format!("{}\nnote: receipt", sale("A-1", "asa@example.com"))));
    assert_eq!(daemon.poll_once().await.unwrap().skipped, 1);
    assert!(daemon.mailer.to("asa@example.com").is_empty());
}

#[tokio::test]
async fn an_order_revoked_while_its_first_reply_waited_for_a_retry_alerts_that_the_buyer_never_got_the_serial() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    *daemon.mailer.failure_for.borrow_mut() = Some(("asa@example.com".into(), SendError::Transient("451".into())));
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.poll_once().await.unwrap();
    daemon.source.deliver("2", &mail("r1@shop.example", "kind: refund\norder: A-1"));
    assert_eq!(daemon.poll_once().await.unwrap().revoked, 1);
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert!(matches!(line.reply, ReplyState::Cancelled { .. }), "{:?}", line.reply);
    let alerts = daemon.mailer.vendor_only();
    let revoked = alerts.iter().find(|a| a.contains("revoked: shop/A-1 (refund)")).expect("a revocation alert");
    let body =
        mail_parser::MessageParser::default().parse(revoked.as_bytes()).unwrap().body_text(0).unwrap().into_owned();
    assert!(body.contains("the buyer never received this serial"), "{body}");
    assert!(!body.contains("keeps working"), "{body}");
    assert!(daemon.mailer.to("asa@example.com").is_empty());
}

#[tokio::test]
async fn non_orders_are_ignored_and_unreadable_or_broken_mail_is_set_aside_with_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("newsletter", &mail("n@x.example", "hello there"));
    daemon.source.deliver("payout", &mail("p@x.example", "kind: payout"));
    daemon.source.deliver("broken", &mail("b@x.example", "this is broken"));
    daemon.source.deliver("panics", &mail("c@x.example", "PANIC"));
    daemon.source.deliver("z-sale", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [1, 0, 0, 0, 2, 2], "{outcome}");
    assert_eq!(daemon.source.disposition("payout"), Some(Disposition::Ignored));
    assert_eq!(daemon.source.disposition("panics"), Some(Disposition::SetAside));
    assert_eq!(daemon.mailer.vendor_only().len(), 2, "one alert per set-aside message");
}

#[tokio::test]
async fn a_set_aside_message_the_vendor_puts_back_is_read_again_and_a_done_one_is_only_moved() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("k", &mail("b@shop.example", "this is broken"));
    daemon.source.deliver("done", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let first = daemon.poll_once().await.unwrap();
    assert_eq!((first.set_aside, first.fulfilled), (1, 1), "{first}");
    // The vendor fixed the template and moved both messages back: the same keys come round again.
    daemon.source.deliver("k", &mail("b@shop.example", &sale("A-2", "bo@example.com")));
    daemon.source.deliver("done", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let second = daemon.poll_once().await.unwrap();
    assert_eq!((second.fulfilled, second.resettled, second.set_aside), (1, 1, 0), "{second}");
    assert_eq!(daemon.mailer.to("bo@example.com").len(), 1, "the put-back order is answered once");
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1, "the done one is not answered again");
    assert_eq!(daemon.source.disposition("k"), Some(Disposition::Done));
}

#[tokio::test]
async fn an_untrusted_order_is_set_aside_and_never_fulfilled() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    let forged = sale("A-1", "asa@example.com").replace("kind: sale", "kind: sale\nprovider: elsewhere");
    daemon.source.deliver("forged", &mail("f@x.example", &forged));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [0, 0, 0, 0, 0, 1], "{outcome}");
    assert!(daemon.mailer.to("asa@example.com").is_empty());
    assert!(daemon.mailer.vendor_only()[0].contains("not trusted"));
}

#[tokio::test]
async fn an_unknown_product_goes_to_review_with_an_alert_and_nothing_to_the_buyer() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com").replace("ACME-PRO", "OTHER")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [0, 0, 1, 0, 0, 0], "{outcome}");
    assert!(daemon.mailer.to("asa@example.com").is_empty());
    assert!(daemon.mailer.vendor_only()[0].contains("unknown product"));
}

#[tokio::test]
async fn a_test_order_is_answered_to_the_vendor_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &format!("{}\ntest: yes", sale("T-1", "asa@example.com"))));
    assert_eq!(daemon.poll_once().await.unwrap().fulfilled, 1);
    assert!(daemon.mailer.to("asa@example.com").is_empty());
    assert_eq!(daemon.mailer.to(VENDOR).len(), 1);
}

#[tokio::test]
async fn a_reply_that_failed_is_retried_after_a_restart_with_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = daemon(dir.path(), "");
    *first.mailer.failure.borrow_mut() = Some(SendError::Transient("421 try later".into()));
    first.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let outcome = first.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.sent, outcome.send_failures), (1, 0, 1));
    assert_eq!(first.source.disposition("1"), Some(Disposition::Done), "the reply is durable, so the mail is settled");
    let queued = first.core.store.due_outbox(i64::MAX).unwrap();
    drop(first);

    let mut restarted = daemon(dir.path(), "");
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
    restarted.core.set_clock(move || later);
    let outcome = restarted.poll_once().await.unwrap();
    assert_eq!(outcome.sent, 1);
    let sent = restarted.mailer.to("asa@example.com");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], queued[0].outgoing, "same bytes, same Message-ID");
}

#[tokio::test]
async fn a_transient_failure_waits_for_its_retry_time_without_sleeping() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    let start = time::OffsetDateTime::now_utc();
    daemon.core.set_clock(move || start);
    *daemon.mailer.failure.borrow_mut() = Some(SendError::Transient("timeout".into()));
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.poll_once().await.unwrap();
    *daemon.mailer.failure.borrow_mut() = None;
    assert_eq!(daemon.poll_once().await.unwrap().sent, 0, "not due before 2 s");
    daemon.core.set_clock(move || start + time::Duration::seconds(3));
    assert_eq!(daemon.poll_once().await.unwrap().sent, 1);
}

#[tokio::test]
async fn a_permanent_failure_marks_the_reply_failed_and_alerts_the_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    let refused = SendError::Permanent("550 no such user".into());
    *daemon.mailer.failure_for.borrow_mut() = Some(("asa@example.com".into(), refused));
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.send_failures, outcome.sent), (1, 1, 1), "{outcome:?}");
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert!(matches!(line.reply, ReplyState::Failed { attempts: 1, .. }), "{:?}", line.reply);
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].contains("send failed: shop/A-1"), "{}", alerts[0]);
    assert_eq!(daemon.core.store.outbox_len(), 0, "a permanent failure is not retried");
}

#[tokio::test]
async fn a_message_redelivered_after_its_outcome_was_recorded_is_only_settled_again() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = mail("m1@shop.example", &sale("A-1", "asa@example.com"));
    let mut first = daemon(dir.path(), "");
    first.source.deliver("1", &bytes);
    first.poll_once().await.unwrap();
    drop(first);
    // As if the process died before the move: the source hands the same message out again.
    let mut restarted = daemon(dir.path(), "");
    restarted.source.deliver("1", &bytes);
    let outcome = restarted.poll_once().await.unwrap();
    assert_eq!((outcome.resettled, outcome.sent, outcome.fulfilled), (1, 0, 0), "{outcome:?}");
    assert_eq!(restarted.source.disposition("1"), Some(Disposition::Done));
}

#[tokio::test]
async fn the_audit_trail_records_every_decision_and_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.source.deliver("2", &mail("n@x.example", "hello"));
    daemon.poll_once().await.unwrap();
    let events: Vec<String> = daemon.core.store.audit().unwrap().into_iter().map(|a| a.event).collect();
    assert_eq!(events, ["decided", "ignored", "sent"], "the batch is recorded, then its replies sent");
}

#[tokio::test]
async fn a_resend_sends_the_same_serial_under_a_new_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.poll_once().await.unwrap();
    let queued = daemon.core.resend("shop", "A-1").await.unwrap();
    let outcome = daemon.core.send_queued(&daemon.mailer, &queued).await.unwrap();
    assert_eq!(outcome.sent, 1);
    let replies = daemon.mailer.to("asa@example.com");
    assert_eq!(replies.len(), 2);
    assert_ne!(replies[0].message_id, replies[1].message_id);
    let serial = format!("SERIAL-pro-2-{}", "Åsa Öberg".len());
    assert!(replies.iter().all(|r| String::from_utf8_lossy(&r.bytes).contains(&serial)));
}

#[tokio::test]
async fn a_manual_issue_replies_like_a_real_order_and_a_revoke_marks_it() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(dir.path(), "");
    let (order_id, queued) = daemon.core.issue_manual("pro", "Bo Ek", "bo@example.com", 3).await.unwrap();
    daemon.core.send_queued(&daemon.mailer, &queued).await.unwrap();
    assert_eq!(daemon.mailer.to("bo@example.com").len(), 1);
    assert_eq!(daemon.core.store.lookup("bo ek").unwrap().len(), 1);
    assert_eq!(daemon.core.revoke("manual", &order_id, "test").await.unwrap(), 1);
    assert_eq!(daemon.core.revoke("manual", &order_id, "test").await.unwrap(), 0, "already revoked");
    assert!(daemon.core.issue_manual("nope", "Bo", "bo@example.com", 1).await.is_err());
}

#[tokio::test]
async fn run_keeps_polling_until_shutdown_and_answers_each_order_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    let (trigger, shutdown) = keypost::service::ShutdownSignal::new();
    let mut passes = 0;
    let on_pass = |_: Option<&keypost::daemon::Outcome>| {
        passes += 1;
        if passes >= 3 {
            trigger.request(keypost::service::Stop::Terminate);
        }
    };
    daemon.run(shutdown, on_pass).await.unwrap();
    assert!(passes >= 3);
    assert_eq!(daemon.mailer.to("asa@example.com").len(), 1);
}

#[tokio::test]
async fn with_the_real_templates_a_paypal_sale_arriving_three_ways_gets_one_reply_and_its_refund_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::real_daemon(dir.path());
    let sale = fakes::fixture("paypal/sale_plain_text.eml");
    let text = String::from_utf8(sale.clone()).unwrap();
    let reworded = text.replace("pp-sale-1@paypal.com", "pp-sale-1-again@paypal.com").replace("Hello", "Hi");
    daemon.source.deliver("1-sale", &sale);
    daemon.source.deliver("2-same-again", &sale);
    daemon.source.deliver("3-forwarded", &fakes::fixture("paypal/forwarded_gmail.eml"));
    daemon.source.deliver("4-same-order-id", reworded.as_bytes());
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(counts(&outcome), [1, 3, 0, 0, 0, 0], "{outcome}");
    let replies = daemon.mailer.to("jane.buyer@example.com");
    assert_eq!(replies.len(), 1, "exactly one reply");
    assert!(String::from_utf8_lossy(&replies[0].bytes).contains("Example Labs Ltd"), "the licensee to type");

    daemon.source.deliver("5-refund", &fakes::fixture("paypal/refund.eml"));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.revoked, 1, "{outcome}");
    let line = daemon.core.store.order_line("paypal", "5TY12345AB678901C", 0).unwrap().unwrap();
    assert!(line.revoked.is_some());
    assert!(daemon.mailer.vendor_only().iter().any(|alert| alert.contains("revoked: paypal/5TY12345AB678901C")));
    assert_eq!(daemon.mailer.to("jane.buyer@example.com").len(), 1, "still only the one reply");
}

#[tokio::test]
async fn a_refund_that_arrives_while_the_reply_waits_for_a_retry_cancels_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    let start = time::OffsetDateTime::now_utc();
    daemon.core.set_clock(move || start);
    *daemon.mailer.failure_for.borrow_mut() = Some(("asa@example.com".into(), SendError::Transient("421".into())));
    daemon.source.deliver("1", &mail("m1@shop.example", &sale("A-1", "asa@example.com")));
    daemon.source.deliver("2", &mail("r1@shop.example", "kind: refund\norder: A-1"));
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.revoked), (1, 1), "{outcome}");
    *daemon.mailer.failure_for.borrow_mut() = None;
    daemon.core.set_clock(move || start + time::Duration::hours(1));
    daemon.poll_once().await.unwrap();
    assert!(daemon.mailer.to("asa@example.com").is_empty(), "no license for a refunded order");
    let line = daemon.core.store.order_line("shop", "A-1", 0).unwrap().unwrap();
    assert!(matches!(line.reply, ReplyState::Cancelled { .. }), "{:?}", line.reply);
}

/// A message in the shape real provider mail has (headers, a blank line, a text body).
fn provider_mail(from: &str, dkim_domain: Option<&str>, subject: &str) -> Vec<u8> {
    let signature =
        dkim_domain.map_or(String::new(), |d| format!("DKIM-Signature: v=1; a=rsa-sha256; d={d}; s=s1; b=AAAA\r\n"));
    format!(
        "{signature}From: {from}\r\nTo: vendor@acme.example\r\nSubject: {subject}\r\nMessage-ID: <{}@x>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nA layout no template knows.\r\n",
        subject.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn provider_mail_no_rule_classifies_is_set_aside_with_an_alert_and_unknown_senders_are_ignored_but_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::real_daemon(dir.path());
    let subject = "Zq unfamiliar layout 1";
    daemon.source.deliver("1-paypal-unknown-layout", &provider_mail("service@paypal.com", None, subject));
    let signed_elsewhere =
        provider_mail("service@paypal.example-country", Some("paypal.com"), "Zq unfamiliar layout 22");
    daemon.source.deliver("2-signed-by-paypal", &signed_elsewhere);
    daemon.source.deliver("3-unknown-sender", &provider_mail("news@unknown.example", None, "Our newsletter"));
    let outcome = daemon.poll_once().await.unwrap();

    assert_eq!((outcome.set_aside, outcome.ignored, outcome.unknown_senders), (2, 1, 1), "{outcome}");
    assert!(outcome.to_string().contains("ignored 1 (1 from unknown senders)"), "{outcome}");
    assert_eq!(daemon.source.disposition("1-paypal-unknown-layout"), Some(Disposition::SetAside));
    assert_eq!(daemon.source.disposition("2-signed-by-paypal"), Some(Disposition::SetAside));
    assert_eq!(daemon.source.disposition("3-unknown-sender"), Some(Disposition::Ignored));
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 2, "one alert per set-aside message: {alerts:#?}");
    let first = alerts.iter().find(|a| a.contains("Zq unfamiliar layout 1\"")).expect("an alert for the first");
    assert!(first.contains("unrecognised mail from PayPal"), "{first}");
    assert!(first.contains("closest template paypal: rule["), "{first}");
}

/// A sale from a provider keypost has no template for (a store not yet covered, a provider's new address), in
/// the shape such notifications have, and a newsletter from another stranger.
fn unknown_senders_mail() -> [(&'static str, Vec<u8>); 2] {
    let sale = "From: Example Store <orders@store-without-template.example>\r\nTo: vendor@acme.example\r\n\
                Subject: New order #5512\r\nMessage-ID: <o5512@store-without-template.example>\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\r\nOrder number: 5512\r\nProduct: Acme Pro\r\n\
                Customer: Jane Doe <jane@example.com>\r\nOrder total: $49.00\r\n";
    let news = "From: news@unknown.example\r\nTo: vendor@acme.example\r\nSubject: Our newsletter\r\n\
                Message-ID: <n1@unknown.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                Ten tips for your small business.\r\n";
    [("1-unknown-sale", sale.as_bytes().to_vec()), ("2-newsletter", news.as_bytes().to_vec())]
}

#[tokio::test]
async fn a_sale_from_a_sender_no_template_knows_is_set_aside_with_an_alert_while_other_unknown_mail_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::real_daemon(dir.path());
    for (key, bytes) in unknown_senders_mail() {
        daemon.source.deliver(key, &bytes);
    }
    let outcome = daemon.poll_once().await.unwrap();

    assert_eq!((outcome.set_aside, outcome.ignored, outcome.unknown_senders), (1, 1, 1), "{outcome}");
    assert_eq!(daemon.source.disposition("1-unknown-sale"), Some(Disposition::SetAside));
    assert_eq!(daemon.source.disposition("2-newsletter"), Some(Disposition::Ignored));
    let alerts = daemon.mailer.vendor_only();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].contains("looks like an order notification"), "{}", alerts[0]);
    assert!(alerts[0].contains("orders@store-without-template.example"), "{}", alerts[0]);
    assert!(daemon.mailer.to("jane@example.com").is_empty(), "nothing is issued from a guess");
}

#[tokio::test]
async fn a_vendor_can_have_sale_like_mail_from_unknown_senders_ignored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::real_daemon_with(dir.path(), "[templates]\nunknown_order_like = \"ignore\"\n");
    for (key, bytes) in unknown_senders_mail() {
        daemon.source.deliver(key, &bytes);
    }
    let outcome = daemon.poll_once().await.unwrap();

    assert_eq!((outcome.set_aside, outcome.ignored, outcome.unknown_senders), (0, 2, 2), "{outcome}");
    assert!(daemon.mailer.vendor_only().is_empty());
}

#[tokio::test]
async fn numbers_skipped_in_a_providers_sequence_alert_the_vendor_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon(dir.path(), "");
    for (n, seq) in [(1, 41), (2, 42), (3, 45), (4, 44), (5, 46)] {
        let text = format!("{}\nseq: {seq}", sale(&format!("A-{n}"), &format!("b{n}@example.com")));
        daemon.source.deliver(&n.to_string(), &mail(&format!("m{n}@shop.example"), &text));
    }
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.fulfilled, 5, "a gap alerts, it does not hold orders back: {outcome}");
    let missed: Vec<_> = daemon.mailer.vendor_only().into_iter().filter(|m| m.contains("missed order")).collect();
    assert_eq!(missed.len(), 1, "one alert, none for the late 44: {missed:#?}");
    assert!(missed[0].contains("numbers 43 to 44 never arrived"), "{}", missed[0]);
    assert_eq!(daemon.core.store.sequence_last("shop").unwrap(), Some(46));
}
