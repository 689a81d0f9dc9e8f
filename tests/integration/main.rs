//! Integration tests, built as one binary (ripgrep's `tests/tests.rs` shape). `support` spawns real servers.
mod aside;
mod check;
mod control;
mod daemon;
mod download;
mod fuzz;
mod imap;
mod pipeline;
mod serial;
mod service;
mod smtp;
mod support;
mod templates;
mod trust;
