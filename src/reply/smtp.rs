//! SMTP as a [`super::Mailer`]: TLS, STARTTLS or loopback plaintext, pooled, every send under a timeout.
