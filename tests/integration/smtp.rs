//! Integration tests: the SMTP mailer against Postfix's smtp-sink on loopback.
use std::path::Path;
use std::time::{Duration, Instant};

use keypost::reply::smtp::SmtpMailer;
use keypost::reply::{Mailer, Outgoing, SendError};

use keypost::endpoint::Security;

use crate::support::{AiosmtpdSink, SinkTls, SmtpSink, TestCa, free_port, inline_secret, smtp_config};

fn reply(n: usize) -> Outgoing {
    Outgoing {
        message_id: format!("<reply-{n}@vendor.example>"),
        from: "licenses@vendor.example".into(),
        to: vec!["buyer@example.org".into(), "archive@vendor.example".into()],
        bytes: format!(
            "From: Vendor <licenses@vendor.example>\r\nTo: buyer@example.org\r\nSubject: Your serial {n}\r\n\
             Message-ID: <reply-{n}@vendor.example>\r\n\r\nSerial: ABCD-{n}\r\n"
        )
        .into_bytes(),
    }
}

#[tokio::test]
async fn a_reply_arrives_at_the_sink_once_with_the_outbox_envelope() {
    let sink = SmtpSink::start(&[]);
    let mailer = SmtpMailer::new(&sink.smtp_config(), Path::new(".")).unwrap();

    mailer.send(&reply(1)).await.unwrap();

    let received = sink.received(1, Duration::from_secs(5));
    assert_eq!(received.len(), 1, "{received:?}");
    let dump = &received[0];
    assert!(dump.contains("X-Mail-Args: <licenses@vendor.example>"), "{dump}");
    assert!(dump.contains("X-Rcpt-Args: <buyer@example.org>"), "{dump}");
    assert!(dump.contains("X-Rcpt-Args: <archive@vendor.example>"), "the Bcc-like recipient is in the envelope");
    assert!(dump.contains("Serial: ABCD-1"), "{dump}");
    assert!(dump.contains("Message-ID: <reply-1@vendor.example>"), "the bytes are sent as they are: {dump}");
}

#[tokio::test]
async fn many_replies_at_once_share_the_pool_and_each_arrives_once() {
    let sink = SmtpSink::start(&[]);
    let mailer = SmtpMailer::new(&sink.smtp_config(), Path::new(".")).unwrap();

    let replies: Vec<Outgoing> = (1..=20).map(reply).collect();
    let results = futures::future::join_all(replies.iter().map(|r| mailer.send(r))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let received = sink.received(20, Duration::from_secs(10));
    let mut serials: Vec<usize> =
        received.iter().map(|dump| dump.split("Serial: ABCD-").nth(1).unwrap().trim().parse().unwrap()).collect();
    serials.sort_unstable();
    assert_eq!(serials, (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn sending_with_credentials_works_against_a_server_that_offers_auth() {
    let sink = SmtpSink::start(&[]); // smtp-sink offers AUTH PLAIN LOGIN and accepts any credentials
    let mut config = sink.smtp_config();
    config.user = Some("vendor".into());
    config.password = Some(inline_secret("smtp-password"));
    let mailer = SmtpMailer::new(&config, Path::new(".")).unwrap();

    mailer.send(&reply(1)).await.unwrap();
    assert_eq!(sink.received(1, Duration::from_secs(5)).len(), 1);
}

#[tokio::test]
async fn a_sink_answering_4xx_gives_a_transient_error_and_nothing_is_delivered() {
    let sink = SmtpSink::start(&["-r", "RCPT"]);
    let mailer = SmtpMailer::new(&sink.smtp_config(), Path::new(".")).unwrap();

    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert_no_message(&sink);
}

#[tokio::test]
async fn a_sink_answering_5xx_gives_a_permanent_error_and_nothing_is_delivered() {
    let sink = SmtpSink::start(&["-f", "DATA"]);
    let mailer = SmtpMailer::new(&sink.smtp_config(), Path::new(".")).unwrap();

    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert_no_message(&sink);
}

#[tokio::test]
async fn a_server_that_is_down_gives_a_transient_error() {
    let mailer = SmtpMailer::new(&smtp_config(free_port()), Path::new(".")).unwrap();

    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_transient_error() {
    // The kernel completes the handshake on the listen backlog; nobody ever sends a greeting.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = smtp_config(silent.local_addr().unwrap().port());
    config.timeout_secs = 1;
    let mailer = SmtpMailer::new(&config, Path::new(".")).unwrap();

    let started = Instant::now();
    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_answer_read_before_the_message_went_out_is_not_taken_as_acceptance() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    // A server that answers DATA with its 354 and, in the same write, a 250 for a message it never saw: lettre
    // reads that 250 from its buffer, so the message (held until a read needs the server) never went out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        writer.write_all(b"220 out-of-turn.example ESMTP\r\n").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                return Vec::new();
            }
            let answer: &[u8] = match line.get(..4).unwrap_or_default().to_ascii_uppercase().as_str() {
                "DATA" => b"354 go ahead\r\n250 2.0.0 queued\r\n",
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            writer.write_all(answer).unwrap();
            if line.to_ascii_uppercase().starts_with("DATA") {
                break;
            }
        }
        // Everything the client sends after DATA, until it closes the connection.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        rest
    });
    let mailer = SmtpMailer::new(&smtp_config(port), Path::new(".")).unwrap();
    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    drop(mailer);
    let after_data = String::from_utf8_lossy(&server.join().unwrap()).into_owned();
    assert!(!after_data.contains("\r\n.\r\n"), "the end of data never reached the server: {after_data:?}");
}

/// smtp-sink dumps even a refused transaction's envelope; the message itself must be absent.
fn assert_no_message(sink: &SmtpSink) {
    let received = sink.received(1, Duration::from_millis(300));
    assert!(received.iter().all(|dump| !dump.contains("Serial: ABCD")), "{received:?}");
}

fn tls_config(sink: &AiosmtpdSink, ca: &TestCa, security: Security) -> keypost::reply::SmtpConfig {
    let mut config = smtp_config(sink.port);
    config.security = security;
    config.allow_plaintext = false;
    config.ca_file = Some(ca.ca_cert.clone());
    config
}

#[tokio::test]
async fn starttls_with_a_private_ca_delivers_the_reply() {
    let ca = TestCa::new();
    let sink = AiosmtpdSink::start(SinkTls::Starttls, &ca);
    let mailer = SmtpMailer::new(&tls_config(&sink, &ca, Security::Starttls), Path::new(".")).unwrap();

    mailer.send(&reply(1)).await.unwrap();
    let received = sink.received(1, Duration::from_secs(5));
    assert_eq!(received.len(), 1);
    assert!(received[0].contains("Serial: ABCD-1"), "{received:?}");
}

#[tokio::test]
async fn implicit_tls_with_a_private_ca_delivers_the_reply() {
    let ca = TestCa::new();
    let sink = AiosmtpdSink::start(SinkTls::Implicit, &ca);
    let mailer = SmtpMailer::new(&tls_config(&sink, &ca, Security::Tls), Path::new(".")).unwrap();

    mailer.send(&reply(1)).await.unwrap();
    assert_eq!(sink.received(1, Duration::from_secs(5)).len(), 1);
}

#[tokio::test]
async fn an_smtp_certificate_from_an_unknown_ca_is_refused_as_transient() {
    let ca = TestCa::new();
    let sink = AiosmtpdSink::start(SinkTls::Implicit, &ca);
    let mut config = tls_config(&sink, &ca, Security::Tls);
    config.ca_file = None;
    let mailer = SmtpMailer::new(&config, Path::new(".")).unwrap();

    let err = mailer.send(&reply(1)).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(text) if text.contains("UnknownIssuer")), "{err:?}");
    assert!(sink.received(1, Duration::from_millis(300)).is_empty());
}
