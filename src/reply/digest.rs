//! The periodic digest's wording: what the vendor reads each morning, in one place. Pure:
//! [`Renderer::digest`](super::Renderer::digest) turns a [`Report`] into a message.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::order::Money;

/// What happened in one period, gathered from the state (`daemon/digest.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The period's id, the local date it ends on (`2026-11-30`).
    pub period: String,
    /// `2026-11-29 07:00 UTC to 2026-11-30 07:00 UTC`.
    pub span: String,
    /// `08:00 Europe/Berlin, daily`.
    pub schedule: String,
    /// Licenses issued per (product, currency): count, seats, revenue in hundredths (lines without an amount
    /// count under currency `?` with no revenue).
    pub sales: BTreeMap<(String, String), Sales>,
    /// Licenses revoked in the period (refunds, chargebacks, cancellations, by hand), amounts per currency.
    pub refunds: usize,
    pub refunded: BTreeMap<String, i64>,
    /// Orders sent for review in the period.
    pub review: usize,
    /// Messages set aside in the period, and all still waiting in the set-aside folder.
    pub set_aside: usize,
    pub set_aside_waiting: usize,
    /// Replies that failed for good and were not sent since (`provider/order#line: reason`).
    pub failed: Vec<String>,
    /// Messages waiting in the outbox for a retry now.
    pub outbox_waiting: usize,
    /// Messages filed as not orders in the period (unknown senders included).
    pub ignored: usize,
    /// Lost-licence requests in the period, and how many resent licenses.
    pub self_service: usize,
    pub self_service_resent: usize,
    /// Code pools and the codes left in each; `None` when no product has a pool.
    pub pools: Option<Vec<(String, u64)>>,
    /// Providers silent now for much longer than usual (`[watch]`): (provider, when its last order came as
    /// `2026-11-27 10:00 UTC`, its usual gap in seconds).
    pub silent: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sales {
    pub licenses: usize,
    pub seats: u64,
    pub revenue: i64,
}

impl Report {
    pub fn subject(&self) -> String {
        let licenses: usize = self.sales.values().map(|s| s.licenses).sum();
        let attention = self.review + self.set_aside_waiting + self.failed.len() + self.silent.len();
        let mut subject = format!("[keypost] digest {}: {licenses} license(s) sold", self.period);
        if attention > 0 {
            let _ = write!(subject, ", {attention} need(s) you");
        }
        subject
    }

    pub fn body(&self) -> String {
        let mut out = format!("keypost digest for {}\n(sent {})\n\n", self.span, self.schedule);
        out.push_str("Sales (licenses issued)\n");
        if self.sales.is_empty() {
            out.push_str("  none\n");
        }
        for ((product, currency), sales) in &self.sales {
            let revenue = match currency.as_str() {
                "?" => "amount not in the mail".to_owned(),
                _ => Money { hundredths: sales.revenue, currency: Some(currency.clone()) }.to_string(),
            };
            let _ =
                writeln!(out, "  {product:<20} {:>5} license(s) {:>6} seat(s)  {revenue}", sales.licenses, sales.seats);
        }
        let _ = writeln!(out, "\nRefunds and revocations: {}", self.refunds);
        for (currency, hundredths) in &self.refunded {
            let _ = writeln!(out, "  {}", Money { hundredths: *hundredths, currency: Some(currency.clone()) });
        }
        let _ = writeln!(out, "\nNeeds you");
        let _ = writeln!(out, "  orders for review:        {}", self.review);
        let _ =
            writeln!(out, "  set aside:                {} (waiting now: {})", self.set_aside, self.set_aside_waiting);
        let _ = writeln!(out, "  failed replies:           {}", self.failed.len());
        for failed in self.failed.iter().take(50) {
            let _ = writeln!(out, "    {failed}");
        }
        let _ = writeln!(out, "  waiting in the outbox:    {}", self.outbox_waiting);
        let _ = writeln!(out, "  silent providers:         {}", self.silent.len());
        for (provider, since, usual_gap) in &self.silent {
            let usual = crate::watch::span(*usual_gap);
            let _ = writeln!(out, "    {provider}: no order mail since {since} (usually one every {usual})");
        }
        let _ = writeln!(out, "\nOther mail");
        let _ = writeln!(out, "  ignored (not orders):     {}", self.ignored);
        let _ = writeln!(
            out,
            "  lost-licence requests:    {} ({} license(s) resent)",
            self.self_service, self.self_service_resent
        );
        match &self.pools {
            None => out.push_str("\nCode pools: none configured\n"),
            Some(pools) => {
                out.push_str("\nCode pools (codes left)\n");
                for (pool, left) in pools {
                    let _ = writeln!(out, "  {pool:<20} {left}");
                }
            }
        }
        out.push_str("\nkeypost aside list, keypost lookup and keypost export show the details.\n");
        out
    }
}
