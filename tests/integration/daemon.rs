//! Integration tests: the keypost daemon binary against real Dovecot and SMTP servers on loopback.
