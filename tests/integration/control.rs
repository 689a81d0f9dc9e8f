//! Integration tests: the vendor's tools talking to a running daemon over its control socket.
