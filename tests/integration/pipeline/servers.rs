//! The pipeline against real servers on loopback: Dovecot for the order mailbox, Postfix's smtp-sink for
//! replies, with the real templates, serials and trust checks in between.
use std::time::Duration;

use keypost::daemon::Daemon;
use keypost::mailbox::imap::ImapSource;
use keypost::reply::smtp::SmtpMailer;

use super::fakes::{fixture, real_parts};
use crate::support::{Dovecot, SmtpSink, done_folder, ignored_folder};

#[tokio::test]
async fn over_real_imap_and_smtp_one_order_mailed_twice_and_forwarded_gets_one_reply_and_all_three_are_filed() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut client = dovecot.client().await;
    let sale = fixture("paypal/sale_plain_text.eml");
    client.append("INBOX", &sale).await;
    client.append("INBOX", &sale).await;
    client.append("INBOX", &fixture("paypal/forwarded_gmail.eml")).await;
    client.append("INBOX", &fixture("paypal/payout_not_an_order.eml")).await;

    let dir = tempfile::tempdir().unwrap();
    let (core, reader, verifier) = real_parts(dir.path());
    let source = ImapSource::new(&dovecot.imap_config(), dir.path(), 1 << 20).unwrap();
    let mailer = SmtpMailer::new(&sink.smtp_config(), dir.path()).unwrap();
    let mut daemon = Daemon::new(source, mailer, core, reader, verifier);
    let outcome = daemon.drain().await.unwrap();
    assert_eq!((outcome.fulfilled, outcome.skipped, outcome.ignored, outcome.sent), (1, 2, 1, 1), "{outcome}");

    // Wait longer than a straggler would need, so "exactly one" is not a race.
    let received = sink.received(2, Duration::from_secs(2));
    assert_eq!(received.len(), 1, "one SMTP transaction: {received:#?}");
    assert!(received[0].contains("jane.buyer@example.com") && received[0].contains("vendor@acme.example"));
    assert!(received[0].contains("Example Labs Ltd"), "the licensee to type");

    let counts = client.folder_counts().await;
    assert_eq!(counts.get("INBOX"), Some(&0), "{counts:?}");
    assert_eq!(counts.get(&done_folder()), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&ignored_folder()), Some(&1), "{counts:?}");
    client.logout().await;
}
