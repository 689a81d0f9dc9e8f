//! Shared test helpers: temp dirs, spawning Dovecot and SMTP servers on loopback, running the built binary.
