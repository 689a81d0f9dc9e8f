//! What the store keeps, as serde records (JSON values in the one redb table), and the keys they live under.
//! Key fields are joined with NUL, which no order field can contain (`order.rs` refuses control characters).
use serde::{Deserialize, Serialize};

use crate::fulfil::{Grant, OrderRef};
use crate::mailbox::Disposition;
use crate::order::{BuyerEmail, Money, OrderId, OrderKind, PaymentId};
use crate::reply::Outgoing;

/// One line of one order: the unit keypost answers once. Keyed by provider + order id + line, never by buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub provider: String,
    pub order_id: OrderId,
    pub line: u32,
    pub kind: OrderKind,
    #[serde(default)]
    pub test: bool,
    /// Unix seconds when keypost recorded it.
    pub received_at: i64,
    /// The source message it came from (`source/key`), or `manual`.
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_email: Option<BuyerEmail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<String>,
    /// `issue`, `review`, ...: what was decided, and why.
    pub decision: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    #[serde(default)]
    pub reply: ReplyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
    /// Replies sent again by hand (`keypost resend`); each gets its own Message-ID.
    #[serde(default)]
    pub resends: u32,
    /// Its place in a subscription or upgrade: subscription reference, cancellation, supersession.
    #[serde(default, skip_serializing_if = "ChainState::is_empty")]
    pub chain: ChainState,
    /// What the line sold for, when the mail says (for the digest's revenue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// The payment's id at its processor, when the template read one (indexed: another provider's notice of
    /// the same payment finds this order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<PaymentId>,
    /// Another provider's notice of a payment that this order answers: recorded without a license or reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_to: Option<OrderRef>,
}

/// What subscriptions and upgrades record on an order line (see `fulfil::subscription`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// The provider's subscription reference the order carried (indexed: renewals find their first order by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<OrderId>,
    /// On a first order: its subscription was cancelled; the licence ends after `ends` (no new serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Cancelled>,
    /// An upgrade replaced this licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Superseded>,
}

impl ChainState {
    pub fn is_empty(&self) -> bool {
        self == &ChainState::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub at: i64,
    /// The last paid day, `YYYY-MM-DD`.
    pub ends: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    pub at: i64,
    /// The upgrade's line, `provider/order#line`.
    pub by: String,
}

impl OrderRecord {
    pub fn key(&self) -> Vec<u8> {
        order_key(&self.provider, self.order_id.as_str(), self.line)
    }

    /// `provider/order_id#line`, for logs and the audit trail.
    pub fn label(&self) -> String {
        format!("{}/{}#{}", self.provider, self.order_id, self.line)
    }
}

/// An issued license. Stored flat, the grant's fields then its own (serde by hand in `wire.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub grant: Grant,
    pub serial: String,
    /// `YYYY-MM-DD`, the date inside the serial.
    pub issued: String,
    /// `YYYY-MM-DD`, the last valid day inside the serial; none: perpetual (or not known, before 0.x).
    pub expires: Option<String>,
}

/// Where an order's reply stands. Stored as `{"state": "sent", ...}`; read by hand (`wire.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ReplyState {
    /// No reply is due (review, skip, revoked).
    #[default]
    None,
    Queued {
        message_id: String,
    },
    Sent {
        message_id: String,
        at: i64,
    },
    Failed {
        reason: String,
        attempts: u32,
    },
    /// Taken out of the outbox before it was sent (the license was revoked first).
    Cancelled {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: i64,
    pub reason: String,
}

/// The final disposition of one source message, so a redelivery after a crash is just settled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub disposition: Disposition,
    pub at: i64,
    pub note: String,
    /// A set-aside message's SHA-256 (hex), so `keypost aside` finds it again in an IMAP set-aside folder,
    /// where the move gave it a new UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A periodic digest, recorded in the commit that queues it: one per period, across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    /// Unix seconds when it was queued.
    pub at: i64,
    pub message_id: String,
}

/// A buyer's lost-licence request, kept per address for its rate limit and for `keypost lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfServiceRecord {
    pub at: i64,
    /// The address on file the request came from (and any resend went to).
    pub address: String,
    /// The source message, `source/key`.
    pub origin: String,
    /// What was done: `resent`, `no order on file`, `rate limited`, ...
    pub outcome: String,
    /// Licenses resent for it.
    #[serde(default)]
    pub resent: u32,
}

impl SelfServiceRecord {
    /// Whether the writer was sent something (licenses, or the answer for writers with none): what the rate
    /// limit counts.
    pub fn answered(&self) -> bool {
        self.resent > 0 || self.outcome.ends_with("; answered")
    }
}

/// How the note of mail from a sender no template knows begins (`daemon/message.rs` writes it; `status` counts it).
pub const UNKNOWN_SENDER_NOTE: &str = "not recognised";

impl SourceRecord {
    /// Ignored because no template knows its sender.
    pub fn is_unknown_sender(&self) -> bool {
        self.disposition == Disposition::Ignored && self.note.starts_with(UNKNOWN_SENDER_NOTE)
    }
}

/// Why a queued message is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose")]
pub enum Purpose {
    /// The license for an order line (to the buyer, or the vendor for a test order).
    Reply { provider: String, order_id: OrderId, line: u32 },
    /// A copy of a reply, or an alert, for the vendor.
    Vendor,
}

/// A rendered message waiting in the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub outgoing: Outgoing,
    #[serde(flatten)]
    pub purpose: Purpose,
    pub attempts: u32,
    /// Unix seconds of the next try.
    pub next_try: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl OutboxEntry {
    pub fn new(outgoing: Outgoing, purpose: Purpose, now: i64) -> Self {
        Self { outgoing, purpose, attempts: 0, next_try: now, last_error: None }
    }
}

/// One line of the audit trail: every decision and every send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    /// `decided`, `sent`, `send-failed`, `retry`, `revoked`, `ignored`, `set-aside`, `duplicate`, ...
    pub event: String,
    /// The order line or source message it is about.
    pub subject: String,
    pub detail: String,
}

pub(super) const META_SCHEMA: &[u8] = b"meta/schema";
/// The next number for an audit line or a pool code (see `engine::Ids`).
pub(super) const META_NEXT_ID: &[u8] = b"meta/next-id";
pub(super) const ORDERS: &str = "o/";
pub(super) const BY_MESSAGE_ID: &str = "m/";
pub(super) const BY_HASH: &str = "h/";
pub(super) const BY_BUYER: &str = "b/";
pub(super) const BY_LICENSEE: &str = "l/";
pub(super) const BY_PROVIDER_TIME: &str = "tp/";
pub(super) const BY_BUYER_TIME: &str = "tb/";
/// Order lines by payment id: the notices of one payment from different providers.
pub(super) const BY_PAYMENT: &str = "p/";
pub(super) const SOURCES: &str = "s/";
pub(super) const OUTBOX: &str = "q/";
pub(super) const AUDIT: &str = "a/";
/// Periodic digests sent, by period id.
pub(super) const DIGESTS: &str = "d/";
/// Lost-licence requests, by buyer address (lower case) and time.
pub(super) const SELF_SERVICE: &str = "ss/";
/// A message left waiting for a later pass (its trust check could not finish): since when, by its label.
pub(super) const RETRYING: &str = "r/";
/// The highest number seen per provider sequence (template `fields.sequence`), for the missed-orders alert.
pub(super) const SEQUENCES: &str = "sq/";
/// A chain's first order line (its key) and each renewal or extension of it: `c/ROOT\0MEMBER` -> member key.
pub(super) const BY_CHAIN: &str = "c/";
/// A provider's subscription reference -> the key of the first order line that carried it.
pub(super) const BY_SUBSCRIPTION: &str = "sub/";

/// `prefix` then `parts` joined by NUL bytes. Built in one allocation of the exact size: keys are made a few
/// dozen times per order.
pub(super) fn key(prefix: &str, parts: &[&str]) -> Vec<u8> {
    key_with_room(prefix, parts, 0)
}

fn key_with_room(prefix: &str, parts: &[&str], room: usize) -> Vec<u8> {
    let joined = parts.iter().map(|part| part.len()).sum::<usize>() + parts.len().saturating_sub(1);
    let mut key = Vec::with_capacity(prefix.len() + joined + room);
    key.extend_from_slice(prefix.as_bytes());
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            key.push(0);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The prefix of every line of one order.
pub(super) fn order_prefix(provider: &str, order_id: &str) -> Vec<u8> {
    // An empty last part: the NUL after the order id.
    key(ORDERS, &[provider, order_id, ""])
}

pub(super) fn order_key(provider: &str, order_id: &str, line: u32) -> Vec<u8> {
    use std::io::Write as _;
    // Five digits, as lines are numbered (more only past 99,999 lines, which then just grows the key).
    let mut key = key_with_room(ORDERS, &[provider, order_id, ""], 5);
    // Writing to a Vec cannot fail.
    let _ = write!(key, "{line:05}");
    key
}

/// Sortable seconds, so a range scan finds "since".
pub(super) fn time_part(at: i64) -> String {
    format!("{:020}", at.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_prefix_then_the_parts_joined_by_nul_bytes() {
        assert_eq!(key(BY_BUYER, &["asa@example.com", "o/x"]), b"b/asa@example.com\x00o/x");
        assert_eq!(key(SOURCES, &["imap"]), b"s/imap");
        assert_eq!(key(RETRYING, &[]), b"r/");
        assert_eq!(key(BY_BUYER, &["", ""]), b"b/\x00");
        assert_eq!(order_prefix("paypal", "5TY"), b"o/paypal\x005TY\x00");
        assert_eq!(order_key("paypal", "5TY", 7), b"o/paypal\x005TY\x0000007");
        assert_eq!(order_key("p", "1", 123_456), b"o/p\x001\x00123456");
        assert!(order_key("paypal", "5TY", 7).starts_with(&order_prefix("paypal", "5TY")));
    }
}
