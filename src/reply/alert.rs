//! Every alert keypost sends the vendor, and its wording: one variant per kind, so what a person reads can be
//! read and changed in one place. Pure: [`Renderer::alert`](super::Renderer::alert) turns one into a message.
//!
//! Each alert has a `cause` that identifies what it is about; the same cause gives the same Message-ID, so an
//! alert queued again after a crash is the same message, not a second one.
use std::fmt::Write as _;

/// A message to the vendor about something keypost did not (or could not) do on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// An order was not fulfilled: a person must look. Nothing went to the buyer.
    Review {
        /// `sale`, `refund`, ... (`OrderKind::as_str`).
        kind: String,
        provider: String,
        order_id: String,
        /// The source message it came from.
        origin: String,
        reason: String,
    },
    /// A message was set aside (unparseable, not trusted, a template that failed): nothing else was done.
    SetAside {
        /// The source message, `source/key`.
        message: String,
        /// Why; may quote the mail (the vendor may see it, a log line may not).
        note: String,
    },
    /// Licenses of an order were marked revoked.
    Revoked { order: String, reason: String, lines: Vec<RevokedLine> },
    /// A refund or chargeback came for an order keypost has not recorded: remembered, so the sale, should its
    /// mail come later, is recorded revoked and gets no serial.
    RevokedAhead { kind: String, order: String, origin: String },
    /// A sale came after its refund or chargeback: recorded revoked, no serial made, nothing sent.
    SaleAfterRevocation { order: String, origin: String, reason: String },
    /// A subscription was cancelled: its licence ends after its paid period; no new serial, nothing to the buyer
    /// (the provider confirms a cancellation to its customer itself).
    Cancelled { order: String, ends: String, origin: String },
    /// A license reply could not be sent; keypost gave up on it.
    SendFailed { provider: String, order_id: String, line: u32, attempts: u32, error: String, message_id: String },
    /// A sale left a product's code pool below its low-water mark (or empty).
    PoolLow {
        product: String,
        available: usize,
        low_water: u32,
        /// The order line whose code crossed the mark (`provider/order#line`).
        order: String,
    },
    /// Numbers skipped in a provider's sequence (template `fields.sequence`): notifications that never arrived.
    MissedOrders {
        /// The sequence: `provider` or `provider/PRODUCT`.
        scope: String,
        first_missing: u64,
        last_missing: u64,
        /// The number that showed the gap, and the message it came in.
        seen: u64,
        origin: String,
    },
    /// A provider silent for much longer than its usual gap between orders (`[watch]`): mail may have stopped
    /// reaching keypost. Once per silence.
    Silence {
        /// The provider (template id).
        provider: String,
        /// When its last order was recorded (Unix seconds): names the silence.
        since: i64,
        /// How long it has been silent, and its usual gap between orders, in seconds.
        quiet: i64,
        usual_gap: i64,
    },
    /// Alerts held past `limits.alerts_per_hour`, merged into one message (`daemon/alerts.rs`).
    Digest {
        /// How many were held.
        total: usize,
        /// The limit that was reached.
        limit: u32,
        /// The held alerts' titles, the first few hundred.
        titles: Vec<String>,
        /// When the digest was made (Unix seconds): one digest per hour, each its own message.
        at: i64,
    },
}

/// One revoked line of an order, as the vendor is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedLine {
    pub line: u32,
    pub product: String,
    pub seats: u32,
    pub licensee: String,
    pub serial: String,
    /// Whether the buyer got the serial.
    pub delivery: Delivery,
}

/// Whether a revoked license's serial reached the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The reply was sent.
    Sent,
    /// The first reply still waited for a retry and is now cancelled: the buyer never received the serial.
    Cancelled,
    /// The reply had failed (or was never due): the buyer never received the serial.
    NeverSent,
    /// The vendor had it sent again: an earlier copy may have reached the buyer (a waiting one is cancelled).
    Earlier,
}

impl Delivery {
    /// Whether the buyer may hold the serial.
    fn reached_buyer(self) -> bool {
        matches!(self, Delivery::Sent | Delivery::Earlier)
    }
}

impl Alert {
    /// What the alert is about, for its deterministic Message-ID.
    pub fn cause(&self) -> String {
        match self {
            Alert::Review { provider, order_id, .. } => format!("review\0{provider}/{order_id}"),
            Alert::SetAside { message, .. } => format!("set-aside\0{message}"),
            Alert::Revoked { order, reason, .. } => format!("revoke\0{order}\0{reason}"),
            Alert::RevokedAhead { order, .. } => format!("revoke-ahead\0{order}"),
            Alert::SaleAfterRevocation { order, .. } => format!("sale-after-revocation\0{order}"),
            Alert::Cancelled { order, .. } => format!("cancelled\0{order}"),
            Alert::SendFailed { message_id, .. } => format!("failed\0{message_id}"),
            Alert::PoolLow { product, order, .. } => format!("pool-low\0{product}\0{order}"),
            Alert::MissedOrders { scope, first_missing, .. } => format!("missed\0{scope}\0{first_missing}"),
            Alert::Silence { provider, since, .. } => format!("silence\0{provider}\0{since}"),
            Alert::Digest { at, .. } => format!("digest\0{at}"),
        }
    }

    /// The subject, after `[keypost] `.
    pub fn title(&self) -> String {
        match self {
            Alert::Review { provider, order_id, reason, .. } => format!("review: {provider}/{order_id}: {reason}"),
            Alert::SetAside { note, .. } => format!("set aside: {note}"),
            Alert::Revoked { order, reason, .. } => format!("revoked: {order} ({reason})"),
            Alert::RevokedAhead { kind, order, .. } => format!("{kind} before its sale: {order}"),
            Alert::SaleAfterRevocation { order, reason, .. } => format!("revoked: {order} ({reason})"),
            Alert::Cancelled { order, ends, .. } => format!("subscription cancelled: {order} (ends after {ends})"),
            Alert::SendFailed { provider, order_id, .. } => format!("send failed: {provider}/{order_id}"),
            Alert::PoolLow { product, available: 0, .. } => format!("pool empty: {product}"),
            Alert::PoolLow { product, available, .. } => format!("pool low: {product} ({available} left)"),
            Alert::MissedOrders { scope, first_missing, last_missing, .. } if first_missing == last_missing => {
                format!("missed order: {scope} number {first_missing} never arrived")
            }
            Alert::MissedOrders { scope, first_missing, last_missing, .. } => {
                format!("missed orders: {scope} numbers {first_missing} to {last_missing} never arrived")
            }
            Alert::Silence { provider, quiet, .. } => {
                format!("no order mail from {provider} for {}", crate::watch::span(*quiet))
            }
            Alert::Digest { total, .. } => format!("{total} more alerts (digest)"),
        }
    }

    /// The text body.
    pub fn body(&self) -> String {
        match self {
            Alert::Review { kind, provider, order_id, origin, reason } => format!(
                "keypost did not fulfil this {kind} and sent nothing to the buyer.\n\nProvider: {provider}\n\
                 Order:    {order_id}\nFrom:     {origin}\nReason:   {reason}\n\n\
                 To fulfil it anyway: keypost issue --product ... --name ... --email ...\n"
            ),
            Alert::SetAside { message, note } => format!(
                "keypost set a message aside and did nothing else with it.\n\nMessage: {message}\nReason:  {note}\n\n\
                 It is in the set-aside folder; nothing was deleted.\n"
            ),
            Alert::Revoked { order, reason, lines } => revoked_body(order, reason, lines),
            Alert::RevokedAhead { kind, order, origin } => format!(
                "keypost received a {kind} for order {order} before the order itself (from {origin}).\n\n\
                 It is remembered: if the sale's mail comes later, it is recorded revoked and no serial is made or \
                 sent.\n"
            ),
            Alert::SaleAfterRevocation { order, origin, reason } => format!(
                "The sale {order} arrived (from {origin}) after its {reason}.\n\n\
                 keypost recorded it revoked and made no serial; nothing was sent to the buyer.\n"
            ),
            Alert::Cancelled { order, ends, origin } => format!(
                "The subscription of order {order} was cancelled (from {origin}).\n\n\
                 Its licence stays valid through {ends}, the end of the paid period, and ends then: its serial \
                 carries that expiry. No new serial is made and nothing is sent to the buyer.\n\n\
                 A refund or chargeback would still revoke it at once; `keypost extend` can still extend it.\n"
            ),
            Alert::SendFailed { provider, order_id, line, attempts, error, .. } => format!(
                "keypost could not send the license for {provider}/{order_id} line {line} after {attempts} \
                 attempt(s): {error}\n\nAfter fixing the cause: keypost resend {provider} {order_id}\n"
            ),
            Alert::PoolLow { product, available, low_water, order } => format!(
                "The code pool of {product} has {available} code(s) left (low-water mark {low_water}), after \
                 order {order}.\n\nAn order that finds the pool empty waits for review and is answered as soon \
                 as codes are imported:\n  keypost pool import {product} FILE   (one code per line)\n  \
                 keypost pool status\n"
            ),
            Alert::MissedOrders { scope, first_missing, last_missing, seen, origin } => format!(
                "{scope} numbers its notifications, and number {seen} ({origin}) came after a number below \
                 {first_missing}: the notifications {first_missing} to {last_missing} never reached keypost.\n\n\
                 Look for them in the provider's dashboard: a sale there was never answered. A broken forward, a \
                 full mailbox or a spam filter can lose order mail; `keypost replay` reads an archive of it.\n"
            ),
            Alert::Silence { provider, since, quiet, usual_gap } => format!(
                "keypost has had no order mail from {provider} for {} (the last order was recorded {}); it \
                 usually gets one every {}.\n\n\
                 Mail may have stopped reaching keypost: check the forward from the address {provider} mails, the \
                 mailbox (full? a spam filter?) and the notification address in {provider}'s settings. Orders \
                 that went missing: look in {provider}'s dashboard; `keypost replay` reads an archive of the \
                 mail.\n\n\
                 This is the only alert for this silence; the next order from {provider} ends it. A provider \
                 with no sales on purpose: `[watch.provider.{provider}] silence_min_hours = 0` turns it off.\n",
                crate::watch::span(*quiet),
                utc(*since),
                crate::watch::span(*usual_gap),
            ),
            Alert::Digest { total, limit, titles, .. } => digest_body(*total, *limit, titles),
        }
    }
}

/// `2026-11-30 07:00 UTC`.
fn utc(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_else(|| at.to_string())
}

fn digest_body(total: usize, limit: u32, titles: &[String]) -> String {
    let mut body = format!(
        "keypost sent {limit} alerts within an hour, its limit (limits.alerts_per_hour), and merged the next \
         {total} here.\nEvery message is recorded: the audit trail, `keypost lookup` and the set-aside folder \
         have them.\n\n"
    );
    for title in titles {
        let _ = writeln!(body, "  {title}");
    }
    if total > titles.len() {
        let _ = writeln!(body, "  ... and {} more", total - titles.len());
    }
    body
}

fn revoked_body(order: &str, reason: &str, lines: &[RevokedLine]) -> String {
    let mut body = format!("keypost marked these licenses of order {order} revoked ({reason}):\n\n");
    for l in lines {
        let _ =
            writeln!(body, "  line {}: {} x{} for {:?}, serial {}", l.line, l.product, l.seats, l.licensee, l.serial);
        let note = match l.delivery {
            Delivery::Sent => continue,
            Delivery::Cancelled => {
                "Its reply was still waiting for a retry and is cancelled:\n    the buyer never received this serial."
            }
            Delivery::NeverSent => "Its reply was never sent: the buyer never received this serial.",
            Delivery::Earlier => "It was sent again by hand; an earlier copy may have reached the buyer.",
        };
        let _ = writeln!(body, "    {note}");
    }

    if lines.iter().any(|l| l.delivery.reached_buyer()) {
        body.push_str(
            "\nThe app keeps working until it checks a revocation list; the state and `keypost export` show it.\n",
        );
    } else {
        body.push_str("\nNo serial of this order reached the buyer; the state and `keypost export` show it.\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(delivery: Delivery) -> RevokedLine {
        RevokedLine {
            line: 0,
            product: "pro".into(),
            seats: 1,
            licensee: "Jane".into(),
            serial: "S-1".into(),
            delivery,
        }
    }

    #[test]
    fn a_revoked_alert_says_whether_the_buyer_ever_received_the_serial() {
        let revoked =
            |delivery| Alert::Revoked { order: "p/1".into(), reason: "refund".into(), lines: vec![line(delivery)] };
        let sent = revoked(Delivery::Sent).body();
        assert!(sent.contains("keeps working until it checks a revocation list"), "{sent}");
        assert!(!sent.contains("never received"), "{sent}");
        let cancelled = revoked(Delivery::Cancelled).body();
        assert!(cancelled.contains("the buyer never received this serial"), "{cancelled}");
        assert!(cancelled.contains("No serial of this order reached the buyer"), "{cancelled}");
        assert!(!cancelled.contains("keeps working"), "{cancelled}");
    }

    #[test]
    fn a_silence_alert_says_how_long_against_the_usual_gap_and_what_to_check() {
        let hour = 60 * 60;
        let alert = Alert::Silence {
            provider: "paddle".into(),
            since: 1_764_486_000,
            quiet: 3 * 24 * hour,
            usual_gap: 4 * hour,
        };
        assert_eq!(alert.title(), "no order mail from paddle for 3 days");
        let body = alert.body();
        assert!(body.contains("recorded 2025-11-30 07:00 UTC); it usually gets one every 4 hours."), "{body}");
        assert!(body.contains("check the forward") && body.contains("silence_min_hours = 0"), "{body}");
        let later = Alert::Silence { provider: "paddle".into(), since: 1_764_486_001, quiet: 1, usual_gap: 1 };
        assert_ne!(alert.cause(), later.cause(), "another silence is another alert");
    }

    #[test]
    fn alerts_about_different_things_have_different_causes() {
        let review = Alert::Review {
            kind: "sale".into(),
            provider: "p".into(),
            order_id: "1".into(),
            origin: "m/1".into(),
            reason: "r".into(),
        };
        let ahead = Alert::RevokedAhead { kind: "refund".into(), order: "p/1".into(), origin: "m/2".into() };
        assert_ne!(review.cause(), ahead.cause());
        assert_eq!(review.title(), "review: p/1: r");
    }
}
