//! keypost turns payment-provider order emails into license serials, sent to each buyer exactly once.
//!
//! # Modules
//! Pure (no I/O, most unit tests live here): [`config`] (composes each module's section), [`problems`] and
//! [`endpoint`] (leaves the sections share), [`product`], [`email`], [`template`], [`order`], [`fulfil`],
//! [`serial`], [`trust`], [`pool`] (pre-made codes instead of serials), [`digest`] (when the vendor's digest is
//! due), [`selfservice`] (recognising a buyer's lost-licence request), [`watch`] (missed orders: sequence gaps, a
//! provider gone silent). With I/O: [`reply`] (rendering is pure, sending is behind [`reply::Mailer`]),
//! [`mailbox`] (Maildir and IMAP behind [`mailbox::Source`]; the archives `keypost replay` reads in
//! [`mailbox::archive`]), [`net`] (TCP to a mail server, for both), [`store`] (the only
//! module that touches the storage engine, redb), [`daemon`] (the loops, carrying out the vendor's requests, the digest, lost-licence
//! requests and `keypost replay`), [`control`] (the socket through which the vendor's tools reach a running
//! daemon: transport and formatting), [`cli`] (one function per subcommand).
//!
//! Imports run one way: `cli -> daemon -> control -> store`, and below them the pure modules; a section's
//! config never imports back from [`config`]. `python3 .ci/module-graph` prints the graph and any cycle.
//!
//! The serial schemes live in their own crate, `crates/keypost-serial` (re-exported by [`serial`]), so a vendor's
//! app verifies serials with the code that issues them; [`serial`] adds keypost's config section and key loading.
//!
//! # Data flow
//! ```text
//! mailbox.fetch_new()             -> RawMail { key, bytes }
//! email::parse(bytes)             -> Email      (panic-safe; failure -> set aside)
//! template.classify(&email)       -> Outcome    (no match -> ignored; broken match -> set aside + alert)
//! trust::check(raw, email, ...)   -> Verdict    (untrusted -> set aside + alert, never fulfilled)
//! fulfil::decide(order, history, ..) -> Decision (issue | revoke | revoke ahead | sale revoked | skip | review)
//! serial::Maker::make(licensee, ..) -> serial    (a pool product: its next code, taken in the commit below)
//! store: record decision + outbox entry, flushed (before any external effect)
//! reply: send outbox, record sent, flushed      (at-least-once, deterministic Message-ID)
//! mailbox.settle(key)
//! ```
//!
//! # Invariants
//! - The store, not IMAP flags or Maildir folders, is the truth. The idempotency key is provider + order id
//!   (+ line item), never the buyer.
//! - Every state transition is flushed before the external effect that follows it: one call,
//!   [`store::Store::commit_durable`], commits, flushes and only then hands out what may be sent.
//! - Nothing from a mail is `unwrap`ped or indexed; a message keypost cannot handle is set aside, never dropped.
//! - Secrets never reach a log, an error or `Debug` output.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::indexing_slicing, clippy::string_slice, clippy::unwrap_used))]

pub mod backoff;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod digest;
pub mod email;
pub mod endpoint;
pub mod fulfil;
pub mod keys;
pub mod mailbox;
pub mod metrics;
pub mod net;
pub mod order;
pub mod pool;
pub mod problems;
pub mod product;
pub mod reply;
pub mod secret;
pub mod selfservice;
pub mod serial;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod trust;
pub mod watch;
