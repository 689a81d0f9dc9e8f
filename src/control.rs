//! The control socket: how the vendor's tools (`lookup`, `resend`, `revoke`, `issue`, `export`, `aside`, `pool`) reach a running
//! `keypost run`, which holds the state database (its file lock allows one process).
//!
//! The daemon listens on `<state.dir>/control.sock` (mode 0600, in the state folder; only its user and root can
//! connect). One connection carries one request line and one response line, both JSON ([`protocol`]); an
//! `export` streams its rows in frames before its last line ([`protocol::Response::Stream`]). Reads
//! (`lookup`, `export`, `aside list`) are answered by the server task from the daemon's open store; anything that changes the
//! state or sends is handed to the daemon's loop as a [`Job`] and carried out between passes by its own
//! core and mailer (`daemon/manual.rs`), so the loop stays the only writer and every action follows the same
//! commit-flush-send protocol as a message. [`answer`] writes what the tool prints, the same code whether the
//! tool opened the state itself or asked the daemon.
//! This module never decides about orders and never writes the state: it transports and formats. It depends on
//! the store only (for reads); the daemon depends on it, never the other way.
pub mod answer;
mod client;
pub mod protocol;
mod server;
pub mod status;

pub use client::{ask, ask_into};
pub use protocol::{Answer, ExportFormat, Request, Response};
pub use server::{ControlServer, Job, SOCKET_NAME, socket_path};
