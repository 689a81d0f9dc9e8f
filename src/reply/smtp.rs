//! SMTP as a [`super::Mailer`]: TLS, STARTTLS or loopback plaintext, pooled, every send under a timeout.
//! It sends the outbox's bytes as they are (`send_raw`) with the outbox's envelope, and sorts failures into
//! what the outbox retries (4xx, network, timeout) and what it gives up on (5xx).
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{Mailer, Outgoing, SendError, SmtpConfig};
use crate::endpoint::{Security, is_loopback_host};

/// Sends replies through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
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
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(port)
            .tls(tls(config, base_dir)?)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(config.pool_size.max(1)));
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            let password = password.load(base_dir).context("Failed to load the SMTP password")?;
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(Self { transport: builder.build(), timeout, server: format!("{}:{port}", config.host) })
    }
}

fn tls(config: &SmtpConfig, base_dir: &Path) -> anyhow::Result<Tls> {
    if config.security == Security::Plain {
        if !(config.allow_plaintext && is_loopback_host(&config.host)) {
            bail!("refusing plaintext SMTP to {}: only to a loopback host with allow_plaintext = true", config.host);
        }
        return Ok(Tls::None);
    }
    let mut params = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        let path = base_dir.join(path);
        let pem = std::fs::read(&path).with_context(|| format!("Failed to read CA file {}", path.display()))?;
        let cert =
            Certificate::from_pem(&pem).with_context(|| format!("Failed to parse CA file {}", path.display()))?;
        params = params.add_root_certificate(cert);
    }
    let params = params.build_rustls().context("Failed to set up TLS for SMTP")?;
    Ok(match config.security {
        Security::Tls => Tls::Wrapper(params),
        _ => Tls::Required(params),
    })
}

impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        let envelope = envelope(mail)?;
        match tokio::time::timeout(self.timeout, self.transport.send_raw(&envelope, &mail.bytes)).await {
            Ok(Ok(_response)) => {
                tracing::debug!(message_id = %mail.message_id, server = %self.server, "Reply sent over SMTP.");
                Ok(())
            }
            Ok(Err(err)) => Err(classify(&err, &self.server)),
            Err(_) => Err(SendError::Transient(format!(
                "sending to {} timed out after {} s",
                self.server,
                self.timeout.as_secs()
            ))),
        }
    }
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
