//! Integration tests: service.
