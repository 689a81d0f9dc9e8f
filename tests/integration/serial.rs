//! Integration tests: serial.
