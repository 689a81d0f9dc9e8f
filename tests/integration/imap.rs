//! Integration tests: imap.
