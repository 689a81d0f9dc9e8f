//! SMTP as a [`super::Mailer`]: TLS, STARTTLS or loopback plaintext, a bounded pool of kept-open connections,
//! every send under a timeout. It sends the outbox's bytes as they are with the outbox's envelope, and sorts
//! failures into what the outbox retries (4xx, network, timeout) and what it gives up on (5xx).
//!
//! keypost opens the TCP connections itself, with `TCP_NODELAY`, and hands them to lettre: lettre writes the
//! end-of-data `.` line as its own small write, which Nagle's algorithm would hold back until the server's
//! delayed ACK (~40 ms per reply). That hold-back also widened the crash window of the outbox protocol: bytes
//! still queued in the kernel at a kill are delivered by it, so the server accepts a reply keypost never saw
//! accepted. The stream is also corked around each message (`stream::Corked`), so the message and its end go
//! out in one write.
//!
//! A kept connection is reused without a NOOP. The server may have closed it meanwhile; then the transaction
//! fails at `MAIL FROM`, before the server holds any part of the message, and is started again once on a new
//! connection. A failure later in the transaction is never retried here: the outbox decides.
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::{self};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Mailer, Outgoing, SendError, SmtpConfig};
use crate::endpoint::{Security, is_loopback_host};

mod stream;

/// A kept connection idle for longer is closed instead of reused: servers drop idle clients after a few minutes
/// (RFC 5321 asks for at least 5), and a fresh connection is cheaper than a failed first command.
const KEEP_IDLE: Duration = Duration::from_secs(60);

/// Sends replies through one SMTP server, over at most `pool_size` connections at once.
pub struct SmtpMailer {
    endpoint: Endpoint,
    /// Connections not in use, most recently used last.
    idle: Mutex<Vec<Kept>>,
    /// One permit per connection in use; waiting for a permit is not part of a send's timeout.
    slots: Semaphore,
}

struct Kept {
    conn: Conn,
    since: Instant,
}

/// A connection lettre holds, with the cork of the stream under it (`stream::Corked`).
struct Conn {
    smtp: AsyncSmtpConnection,
    cork: stream::Cork,
}

/// Where and how to connect; built once, so a missing secret or CA file stops start-up.
struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    /// STARTTLS: lettre upgrades the connection it already holds.
    starttls: Option<TlsParameters>,
    /// Implicit TLS: keypost wraps its own TCP connection before lettre reads the greeting.
    tls: tokio_rustls::TlsConnector,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    server: String,
}

impl SmtpMailer {
    /// Reads the password and CA file now (so a missing secret stops start-up); connects on the first send.
    pub fn new(config: &SmtpConfig, base_dir: &Path) -> anyhow::Result<Self> {
        let port = config.port.unwrap_or(match config.security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::Plain => 25,
        });
        if config.security == Security::Plain && !(config.allow_plaintext && is_loopback_host(&config.host)) {
            bail!("refusing plaintext SMTP to {}: only to a loopback host with allow_plaintext = true", config.host);
        }
        let ca_file = config.ca_file.as_ref().map(|path| base_dir.join(path));
        let starttls = match config.security {
            Security::Starttls => Some(starttls_parameters(&config.host, ca_file.as_deref())?),
            _ => None,
        };
        let credentials = match (&config.user, &config.password) {
            (Some(user), Some(password)) => {
                let password = password.load(base_dir).context("Failed to load the SMTP password")?;
                Some(Credentials::new(user.clone(), password.expose_secret().to_owned()))
            }
            _ => None,
        };
        let endpoint = Endpoint {
            host: config.host.clone(),
            port,
            security: config.security,
            starttls,
            tls: crate::mailbox::imap::tls_connector(ca_file.as_deref()).context("Failed to set up TLS for SMTP")?,
            credentials,
            hello: ClientId::default(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            server: format!("{}:{port}", config.host),
        };
        let pool_size = usize::try_from(config.pool_size.max(1)).unwrap_or(1);
        Ok(Self { endpoint, idle: Mutex::new(Vec::new()), slots: Semaphore::new(pool_size) })
    }

    /// A kept connection young enough to reuse; older ones are dropped (closing them).
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        idle.retain(|kept| kept.since.elapsed() < KEEP_IDLE);
        idle.pop().map(|kept| kept.conn)
    }

    fn keep(&self, conn: Conn) {
        if conn.smtp.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Kept { conn, since: Instant::now() });
        }
    }

    /// One transaction on a kept connection, or on a new one when there is none or the kept one turned out closed.
    async fn deliver(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SendError> {
        let server = &self.endpoint.server;
        if let Some(mut conn) = self.take_idle() {
            let mail = mail_command(&conn.smtp, envelope, bytes)?;
            match transaction(&mut conn, mail, envelope, bytes).await {
                Ok(()) => return self.accepted(conn),
                Err((Stage::MailFrom, err)) if closed_meanwhile(&err) => {
                    tracing::debug!(server = %server, "Kept SMTP connection was closed; connecting again: {err}");
                }
                Err((_, err)) => return Err(classify(&err, server)),
            }
        }
        let mut conn = self.endpoint.connect().await?;
        let mail = mail_command(&conn.smtp, envelope, bytes)?;
        match transaction(&mut conn, mail, envelope, bytes).await {
            Ok(()) => self.accepted(conn),
            Err((_, err)) => Err(classify(&err, server)),
        }
    }

    /// A transaction lettre saw answered: accepted only if the whole message went out before that answer was
    /// read (see [`stream::Cork::held`]); otherwise the connection is dropped and the outbox tries again.
    fn accepted(&self, conn: Conn) -> Result<(), SendError> {
        if conn.cork.held() > 0 {
            return Err(SendError::Transient(format!(
                "{}: an answer came before the message was sent; not counted as accepted",
                self.endpoint.server
            )));
        }
        self.keep(conn);
        Ok(())
    }
}

/// lettre's TLS parameters for STARTTLS: web PKI roots plus the configured CA.
fn starttls_parameters(host: &str, ca_file: Option<&Path>) -> anyhow::Result<TlsParameters> {
    let mut params = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("Failed to read CA file {}", path.display()))?;
        let cert =
            Certificate::from_pem(&pem).with_context(|| format!("Failed to parse CA file {}", path.display()))?;
        params = params.add_root_certificate(cert);
    }
    params.build_rustls().context("Failed to set up TLS for SMTP")
}

impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        let envelope = envelope(mail)?;
        let _slot = self.slots.acquire().await.map_err(|_| SendError::Transient("SMTP mailer closed".into()))?;
        let server = &self.endpoint.server;
        match tokio::time::timeout(self.endpoint.timeout, self.deliver(&envelope, &mail.bytes)).await {
            Ok(Ok(())) => {
                tracing::debug!(message_id = %mail.message_id, server = %server, "Reply sent over SMTP.");
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(SendError::Transient(format!(
                "sending to {server} timed out after {} s",
                self.endpoint.timeout.as_secs()
            ))),
        }
    }
}

impl Endpoint {
    /// TCP with `TCP_NODELAY`, then TLS or STARTTLS as configured, EHLO, and AUTH when credentials are set.
    async fn connect(&self) -> Result<Conn, SendError> {
        let transient = |err: anyhow::Error| SendError::Transient(format!("{}: {err:#}", self.server));
        let tcp =
            crate::net::connect(&self.host, self.port, self.security == Security::Plain).await.map_err(transient)?;
        let stream: Box<dyn smtp::client::AsyncTokioStream> = match self.security {
            Security::Tls => Box::new(stream::tls(&self.tls, &self.host, tcp).await.map_err(transient)?),
            Security::Starttls | Security::Plain => Box::new(tcp),
        };
        let cork = stream::Cork::default();
        let stream = Box::new(stream::Corked::new(stream, cork.clone()));
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|err| classify(&err, &self.server))?;
        if let Some(params) = &self.starttls {
            if !conn.can_starttls() {
                return Err(transient(anyhow::anyhow!("the server does not offer STARTTLS")));
            }
            conn.starttls(params.clone(), &self.hello).await.map_err(|err| classify(&err, &self.server))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await.map_err(|err| classify(&err, &self.server))?;
        }
        Ok(Conn { smtp: conn, cork })
    }
}

/// How far a transaction got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing of this message reached the server.
    MailFrom,
    Later,
}

/// MAIL FROM, RCPT TO per recipient, DATA and the message, as lettre's own `send` does, but telling whether
/// the failure came before the server held anything of the message. A failed connection is aborted (QUIT,
/// closed) and never kept.
async fn transaction(
    conn: &mut Conn,
    mail: Mail,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<(), (Stage, smtp::Error)> {
    let at = |stage| move |err| (stage, err);
    let Conn { smtp: conn, cork } = conn;
    let result = async {
        conn.command(mail).await.map_err(at(Stage::MailFrom))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), Vec::new())).await.map_err(at(Stage::Later))?;
        }
        conn.command(Data).await.map_err(at(Stage::Later))?;
        // The message and its end-of-data line in one write (lettre writes and flushes them apart).
        cork.set(true);
        let sent = conn.message(bytes).await;
        cork.set(false);
        sent.map_err(at(Stage::Later))
    }
    .await;
    match result {
        Ok(_response) => Ok(()),
        Err((stage, err)) => {
            // A server that answered is told QUIT; one that broke the connection is not waited for.
            if err.is_transient() || err.is_permanent() {
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
            }
            Err((stage, err))
        }
    }
}

/// MAIL FROM with SMTPUTF8 / 8BITMIME when the envelope or the message needs them. A server that does not offer
/// what the message needs will not take it on a later try either: permanent.
fn mail_command(conn: &AsyncSmtpConnection, envelope: &Envelope, bytes: &[u8]) -> Result<Mail, SendError> {
    let mut parameters = Vec::new();
    let addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.map(AsRef::<str>::as_ref).any(|address| !address.is_ascii()) {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent("non-ASCII addresses, and the server has no SMTPUTF8".into()));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent("an 8-bit message, and the server has no 8BITMIME".into()));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(Mail::new(envelope.from().cloned(), parameters))
}

/// A kept connection's first command failed because the server had closed it (no reply at all, or 421
/// "closing channel"): the message never started, so a new connection may try it.
fn closed_meanwhile(err: &smtp::Error) -> bool {
    let closing = err.status().is_some_and(|code| code.to_string() == "421");
    closing || !(err.is_transient() || err.is_permanent())
}

/// MAIL FROM and RCPT TO from the outbox entry. An address that does not parse never will: permanent.
fn envelope(mail: &Outgoing) -> Result<Envelope, SendError> {
    let parse = |text: &str| {
        text.parse::<Address>().map_err(|err| SendError::Permanent(format!("invalid envelope address: {err}")))
    };
    let from = parse(&mail.from)?;
    let to = mail.to.iter().map(|to| parse(to)).collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to).map_err(|err| SendError::Permanent(format!("invalid envelope: {err}")))
}

/// 5xx is permanent; 4xx, network and TLS failures and timeouts are worth retrying.
fn classify(err: &smtp::Error, server: &str) -> SendError {
    let text = format!("{server}: {}", error_chain(err));
    if err.is_permanent() { SendError::Permanent(text) } else { SendError::Transient(text) }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(from: &str, to: &[&str]) -> Outgoing {
        Outgoing {
            message_id: "<1@x>".into(),
            from: from.into(),
            to: to.iter().map(|t| t.to_string()).collect(),
            bytes: b"Subject: x\r\n\r\nx\r\n".to_vec(),
        }
    }

    #[test]
    fn an_envelope_without_recipients_or_with_a_broken_address_is_permanent() {
        assert!(matches!(envelope(&outgoing("a@example.com", &[])), Err(SendError::Permanent(_))));
        assert!(matches!(envelope(&outgoing("a@example.com", &["not an address"])), Err(SendError::Permanent(_))));
        assert!(envelope(&outgoing("a@example.com", &["b@example.org"])).is_ok());
    }

    #[test]
    fn plaintext_to_a_remote_host_is_refused_even_when_allowed() {
        let config: SmtpConfig =
            toml::from_str("host = \"smtp.example.com\"\nsecurity = \"plain\"\nallow_plaintext = true\n").unwrap();
        let err = SmtpMailer::new(&config, Path::new(".")).err().unwrap();
        assert!(err.to_string().contains("refusing plaintext SMTP"), "{err:#}");
    }
}
