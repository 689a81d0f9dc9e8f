//! A mail server's address and how the connection to it is protected: the checks `[mailbox.imap]` and
//! `[outbox.smtp]` share. A leaf, no I/O. Plaintext is only ever allowed to a loopback host, and only when asked.
use serde::Deserialize;

use crate::problems::Problems;

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain connection upgraded with STARTTLS before authenticating (IMAP 143, SMTP 587).
    Starttls,
    /// No encryption: only to a loopback host, and only with `allow_plaintext = true`.
    Plain,
}

/// Problems with a server address and its security, shared by `[mailbox.imap]` and `[outbox.smtp]`.
pub fn validate_server(key: &str, host: &str, security: Security, allow_plaintext: bool, problems: &mut Problems) {
    if host.trim().is_empty() {
        problems.error(format!("{key}.host"), "must not be empty");
    }
    if security == Security::Plain {
        if !allow_plaintext {
            problems.error(format!("{key}.security"), "\"plain\" needs allow_plaintext = true (loopback only)");
        }
        if !is_loopback_host(host) {
            problems.error(
                format!("{key}.security"),
                format!("\"plain\" is only allowed to a loopback host, not {host:?}"),
            );
        }
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
