//! [`Core`]: what the daemon and the vendor's order tools share: turning a decision into one state change
//! (order lines, licenses, rendered replies in the outbox, alerts, audit), and manual orders.
use std::sync::Arc;

use anyhow::Context as _;

use super::seams::Licenser;
use crate::config::Config;
use crate::fulfil::{Decision, Grant, Recipient};
use crate::mailbox::Disposition;
use crate::order::{Order, OrderId};
use crate::reply::{Alert, LicenseReply, Renderer};
use crate::store::{Change, License, OrderRecord, OutboxEntry, Purpose, ReplyState, Revocation, Store};

/// The state, the configuration and the pure makers, with a clock tests can set.
pub struct Core {
    pub store: Store,
    pub config: Config,
    pub renderer: Renderer,
    pub licenser: Box<dyn Licenser>,
    clock: Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>,
}

/// Where an order came from: a source message, or `manual`.
#[derive(Debug, Clone)]
pub struct Origin {
    pub label: String,
    pub message_id: Option<String>,
    pub content_hash: String,
}

/// One message's effect, not yet committed.
#[derive(Debug)]
pub struct Assessed {
    pub disposition: Disposition,
    pub change: Change,
    pub note: String,
    pub outcome: super::Outcome,
}

impl Core {
    pub fn new(store: Store, config: Config, renderer: Renderer, licenser: Box<dyn Licenser>) -> Self {
        Self { store, config, renderer, licenser, clock: Arc::new(time::OffsetDateTime::now_utc) }
    }

    /// Replaces the clock (tests: backoff and rate limits without sleeping).
    pub fn set_clock(&mut self, clock: impl Fn() -> time::OffsetDateTime + Send + Sync + 'static) {
        self.clock = Arc::new(clock);
    }

    pub fn now(&self) -> time::OffsetDateTime {
        (self.clock)()
    }

    /// Records a decision about an order with everything that follows from it, as one change.
    pub fn apply(&self, origin: &Origin, order: &Order, decision: Decision) -> anyhow::Result<Assessed> {
        let mut change = Change::new();
        // A refund for an order not (yet) recorded leaves no record; its email must not be remembered either,
        // or the same refund arriving again after the sale would be taken for a duplicate and not revoke.
        let leaves_no_record = order.kind.revokes() && matches!(decision, Decision::Review { .. });
        if !leaves_no_record {
            change.index_email(origin.message_id.as_deref(), &origin.content_hash, &order.provider, order.id.as_str());
        }
        let mut outcome = super::Outcome::default();
        let note = decision.reason();
        let disposition = Disposition::Done;
        match decision {
            Decision::Issue { grants, recipient } => match self.issue(origin, order, &grants, recipient, &mut change) {
                Ok(()) => outcome.fulfilled = 1,
                Err(reason) => return self.apply(origin, order, Decision::Review { reason }),
            },
            Decision::Review { reason } => {
                self.review(origin, order, &reason, &mut change)?;
                outcome.review = 1;
            }
            Decision::Revoke { lines, reason } => {
                self.revoke_lines(order.provider.as_str(), &order.id, &lines, &reason, &mut change)?;
                outcome.revoked = 1;
            }
            Decision::Skip { reason } | Decision::Resend { reason } => {
                let now = self.now().unix_timestamp();
                change.audit(now, "skipped", &format!("{}/{}", order.provider, order.id), reason);
                outcome.skipped = 1;
            }
        }
        Ok(Assessed { disposition, change, note, outcome })
    }

    /// Makes a license per grant and queues its reply. An error is a review reason.
    fn issue(
        &self,
        origin: &Origin,
        order: &Order,
        grants: &[Grant],
        recipient: Recipient,
        change: &mut Change,
    ) -> Result<(), String> {
        let now = self.now();
        let buyer = order.buyer_email.as_ref().ok_or("no buyer email")?;
        for grant in grants {
            let serial = self.serial(grant, now.date())?;
            let reply = LicenseReply {
                provider: &order.provider,
                order_id: order.id.as_str(),
                line: grant.line,
                product: &grant.product,
                licensee: grant.licensee.as_str(),
                serial: &serial,
                seats: grant.seats,
                buyer_name: order.buyer_name.as_deref(),
                buyer_email: buyer,
                recipient,
                resend: 0,
            };
            let (main, notice) =
                self.renderer.license(&reply).map_err(|err| format!("cannot render the reply: {err}"))?;
            let mut record = self.record(origin, order, grant.line, "issue", &format!("license for {}", grant.product));
            record.license = Some(License { grant: grant.clone(), serial, issued: now.date().to_string() });
            record.reply = ReplyState::Queued { message_id: main.message_id.clone() };
            let purpose =
                Purpose::Reply { provider: order.provider.clone(), order_id: order.id.clone(), line: grant.line };
            change.queue(&OutboxEntry::new(main, purpose, now.unix_timestamp()));
            if let Some(notice) = notice {
                change.queue(&OutboxEntry::new(notice, Purpose::Vendor, now.unix_timestamp()));
            }
            change.put_order(&record);
            change.audit(now.unix_timestamp(), "decided", &record.label(), format!("issue: {}", record.reason));
        }
        Ok(())
    }

    /// The serial for a grant; a failure (or a panic in the maker) is a review reason, not a crash.
    fn serial(&self, grant: &Grant, issued: time::Date) -> Result<String, String> {
        let make = || self.licenser.make(grant, issued);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(make))
            .unwrap_or_else(|_| Err("the serial maker panicked".to_owned()))
            .map_err(|err| format!("cannot make a serial for {}: {err}", grant.product))
    }

    fn review(&self, origin: &Origin, order: &Order, reason: &str, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let subject = format!("{}/{}", order.provider, order.id);
        tracing::warn!(order = %subject, reason, "Order needs review.");
        if !order.kind.revokes() {
            change.put_order(&self.record(origin, order, 0, "review", reason));
        }
        let body = format!(
            "keypost did not fulfil this {} and sent nothing to the buyer.\n\nProvider: {}\nOrder:    {}\nFrom:     {}\nReason:   {reason}\n\nTo fulfil it anyway: keypost issue --product ... --name ... --email ...\n",
            order.kind.as_str(),
            order.provider,
            order.id,
            origin.label
        );
        let alert = Alert { cause: format!("review\0{subject}"), title: format!("review: {subject}: {reason}"), body };
        self.queue_alert(&alert, change)?;
        change.audit(now, "decided", &subject, format!("review: {reason}"));
        Ok(())
    }

    /// Marks these lines revoked and tells the vendor.
    pub fn revoke_lines(
        &self,
        provider: &str,
        order_id: &OrderId,
        lines: &[u32],
        reason: &str,
        change: &mut Change,
    ) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let subject = format!("{provider}/{order_id}");
        let mut body = format!("keypost marked these licenses of order {subject} revoked ({reason}):\n\n");
        for line in lines {
            let Some(mut record) = self.store.order_line(provider, order_id.as_str(), *line)? else { continue };
            record.revoked = Some(Revocation { at: now, reason: reason.to_owned() });
            if let ReplyState::Queued { message_id } = &record.reply {
                // Still waiting for a retry: a revoked license must not go out after all.
                change.unqueue(message_id);
                change.audit(now, "cancelled", message_id, format!("license revoked first ({reason})"));
                record.reply = ReplyState::Cancelled { reason: format!("revoked before it was sent ({reason})") };
            }
            if let Some(license) = &record.license {
                let grant = &license.grant;
                body.push_str(&format!(
                    "  line {line}: {} x{} for {:?}, serial {}\n",
                    grant.product,
                    grant.seats,
                    grant.licensee.as_str(),
                    license.serial
                ));
            }
            change.put_order(&record);
            change.audit(now, "revoked", &record.label(), reason);
        }
        tracing::info!(order = %subject, reason, "License revoked.");
        body.push_str(
            "\nThe app keeps working until it checks a revocation list; the state and `keypost export` show it.\n",
        );
        let alert = Alert {
            cause: format!("revoke\0{subject}\0{reason}"),
            title: format!("revoked: {subject} ({reason})"),
            body,
        };
        self.queue_alert(&alert, change)
    }

    pub fn queue_alert(&self, alert: &Alert, change: &mut Change) -> anyhow::Result<()> {
        let outgoing = self.renderer.alert(alert).context("Failed to render a vendor alert")?;
        change.queue(&OutboxEntry::new(outgoing, Purpose::Vendor, self.now().unix_timestamp()));
        Ok(())
    }

    fn record(&self, origin: &Origin, order: &Order, line: u32, decision: &str, reason: &str) -> OrderRecord {
        OrderRecord {
            provider: order.provider.clone(),
            order_id: order.id.clone(),
            line,
            kind: order.kind,
            test: order.test,
            received_at: self.now().unix_timestamp(),
            origin: origin.label.clone(),
            message_id: origin.message_id.clone(),
            buyer_email: order.buyer_email.clone(),
            buyer_name: order.buyer_name.clone(),
            decision: decision.to_owned(),
            reason: reason.to_owned(),
            license: None,
            reply: ReplyState::None,
            revoked: None,
            resends: 0,
        }
    }
}
