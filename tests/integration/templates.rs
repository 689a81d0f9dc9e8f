//! Integration tests: templates.
