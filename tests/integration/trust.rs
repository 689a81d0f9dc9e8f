//! Integration tests: trust.
