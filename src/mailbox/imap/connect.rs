//! Opening an authenticated IMAP session: TCP, then implicit TLS or STARTTLS (rustls with ring) or loopback
//! plaintext, then LOGIN or AUTHENTICATE PLAIN. Every step runs under the command timeout.
//!
//! The socket has `TCP_NODELAY` and a write buffer: async-imap writes a command in four pieces (tag, space,
//! command, CRLF) and flushes after each command, so the buffer makes one segment of them and NODELAY sends it
//! at once instead of holding the tail for the server's ACK.
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, RootCertStore, pki_types::ServerName};

use crate::endpoint::{Security, is_loopback_host};
use crate::mailbox::{ImapAuth, ImapConfig};

/// Any byte stream an IMAP session can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub type ImapSession = async_imap::Session<Box<dyn Io>>;

/// Where and how to log in; built once at start-up so a missing password or CA file stops start-up.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    security: Security,
    allow_plaintext: bool,
    user: String,
    password: SecretString,
    auth: ImapAuth,
    tls: TlsConnector,
    pub timeout: Duration,
}

impl Endpoint {
    pub fn new(config: &ImapConfig, base_dir: &Path) -> anyhow::Result<Self> {
        let password = config.password.load(base_dir).context("Failed to load the IMAP password")?;
        let ca_file = config.ca_file.as_ref().map(|path| base_dir.join(path));
        let default_port = if config.security == Security::Tls { 993 } else { 143 };
        Ok(Self {
            host: config.host.clone(),
            port: config.port.unwrap_or(default_port),
            security: config.security,
            allow_plaintext: config.allow_plaintext,
            user: config.user.clone(),
            password,
            auth: config.auth,
            tls: tls_connector(ca_file.as_deref())?,
            timeout: Duration::from_secs(config.command_timeout_secs.max(1)),
        })
    }

    /// Connects, protects and authenticates; the session is not in any folder yet.
    pub async fn open(&self) -> anyhow::Result<ImapSession> {
        let tcp = within(self.timeout, "connect", self.tcp()).await?;
        let stream: Box<dyn Io> = match self.security {
            Security::Tls => Box::new(BufWriter::new(self.handshake(tcp).await?)),
            Security::Starttls => self.starttls(tcp).await?,
            Security::Plain => Box::new(BufWriter::new(tcp)),
        };
        let mut client = async_imap::Client::new(stream);
        if self.security != Security::Starttls {
            within(self.timeout, "read the IMAP greeting", read_greeting(&mut client)).await?;
        }
        self.authenticate(client).await
    }

    async fn tcp(&self) -> anyhow::Result<TcpStream> {
        let plain = self.security == Security::Plain;
        if plain && !(self.allow_plaintext && is_loopback_host(&self.host)) {
            bail!("refusing plaintext IMAP to {}: only to a loopback host with allow_plaintext = true", self.host);
        }
        crate::net::connect(&self.host, self.port, plain).await
    }

    async fn handshake(&self, tcp: TcpStream) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(self.host.clone()).context("IMAP host is not a valid TLS server name")?;
        within(self.timeout, "complete the TLS handshake", self.tls.connect(name, tcp)).await
    }

    async fn starttls(&self, tcp: TcpStream) -> anyhow::Result<Box<dyn Io>> {
        let mut client = async_imap::Client::new(tcp);
        within(self.timeout, "read the IMAP greeting", read_greeting(&mut client)).await?;
        within(self.timeout, "STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?;
        Ok(Box::new(BufWriter::new(self.handshake(client.into_inner()).await?)))
    }

    async fn authenticate(&self, client: async_imap::Client<Box<dyn Io>>) -> anyhow::Result<ImapSession> {
        let password = self.password.expose_secret();
        let result = match self.auth {
            ImapAuth::Login => {
                within(self.timeout, "LOGIN", async {
                    client.login(&self.user, password).await.map_err(|(err, _client)| err)
                })
                .await
            }
            ImapAuth::Plain => {
                within(self.timeout, "AUTHENTICATE PLAIN", async {
                    let plain = PlainAuth { user: &self.user, password };
                    client.authenticate("PLAIN", plain).await.map_err(|(err, _client)| err)
                })
                .await
            }
        };
        result.with_context(|| format!("Failed to log in as {}", self.user))
    }
}

/// SASL PLAIN: `\0user\0password`, sent once the server asks.
struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

async fn read_greeting<T: Io>(client: &mut async_imap::Client<T>) -> anyhow::Result<()> {
    let greeting = client.read_response().await?.context("connection closed before the greeting")?;
    match greeting.parsed() {
        async_imap::imap_proto::Response::Data {
            status: async_imap::imap_proto::Status::Ok | async_imap::imap_proto::Status::PreAuth,
            ..
        } => Ok(()),
        other => bail!("unexpected IMAP greeting: {other:?}"),
    }
}

/// Web PKI roots plus an optional extra CA (PEM), with the ring provider.
pub fn tls_connector(ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("Failed to read CA file {}", path.display()))?;
        for cert in certs {
            let cert = cert.with_context(|| format!("Failed to parse CA file {}", path.display()))?;
            roots.add(cert).with_context(|| format!("Failed to use the CA in {}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("Failed to set up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Runs one step under `limit`. A step that timed out leaves the stream in an unknown state: the caller
/// must throw the session away.
pub async fn within<T, E>(limit: Duration, what: &str, step: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result.map_err(Into::into).with_context(|| format!("Failed to {what}")),
        Err(_) => bail!("Timed out after {} s waiting to {what}", limit.as_secs()),
    }
}
