//! Integration tests, built as one binary. Each module owns one area; `support` spawns real servers.
