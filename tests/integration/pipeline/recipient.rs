//! Who a reply goes to: only the buyer parsed from a trusted order (or the vendor), never an address the mail
//! names for answers (Reply-To) nor whoever forwarded it.
use super::fakes::{self, VENDOR};

/// `raw` with `header` added right after its first line, in the message's own line ending.
fn with_header(raw: &[u8], header: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let eol = if first.ends_with('\r') { "\r\n" } else { "\n" };
    format!("{first}\n{header}{eol}{rest}").into_bytes()
}

#[tokio::test]
async fn a_reply_goes_only_to_the_buyer_never_to_reply_to_or_the_forwarder() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = fakes::real_daemon(dir.path());
    let forwarded = with_header(&fakes::fixture("paypal/forwarded_gmail.eml"), "Reply-To: mallory@evil.example");
    daemon.source.deliver("1-forwarded", &forwarded);
    let outcome = daemon.poll_once().await.unwrap();
    assert_eq!(outcome.fulfilled, 1, "{outcome}");
    let sent = daemon.mailer.sent.borrow();
    assert!(!sent.is_empty());
    for mail in sent.iter() {
        for to in &mail.to {
            assert!(to == "jane.buyer@example.com" || to == VENDOR, "a reply went to {to}");
        }
    }
    assert_eq!(daemon.mailer.to("jane.buyer@example.com").len(), 1);
}
