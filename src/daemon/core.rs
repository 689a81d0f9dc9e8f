//! [`Core`]: what the daemon and the vendor's order tools share: turning a decision into one state change
//! (order lines, licenses, rendered replies in the outbox, alerts, audit), and manual orders.
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use super::seams::Licenser;
use crate::config::Config;
use crate::fulfil::{Decision, Grant, Recipient};
use crate::mailbox::Disposition;
use crate::order::{Order, OrderId, OrderKind};
use crate::reply::{Alert, Delivery, LicenseReply, Renderer, RevokedLine};
use crate::store::{ChainState, Change, License, OrderRecord, OutboxEntry, Purpose, ReplyState, Revocation, Store};

/// The state, the configuration and the pure makers, with a clock tests can set.
pub struct Core {
    pub store: Store,
    pub config: Config,
    pub renderer: Renderer,
    pub licenser: Box<dyn Licenser>,
    /// The mailbox's set-aside folder, for `keypost aside` (none where no mailbox is configured).
    pub aside: Option<crate::mailbox::aside::AsideFolder>,
    clock: Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>,
    /// Alerts past `limits.alerts_per_hour` wait here for the digest.
    alerts: Mutex<super::alerts::Throttle>,
    /// What the daemon knows about itself in memory (last contacts, passes, latency): `status` and metrics.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The running daemon's stop request: once it comes, sends are cut off after a while (`outbox.rs`).
    stop: Option<crate::service::ShutdownSignal>,
    /// Told when a send is done, at most once a second: the service watchdog's ping between passes.
    progress: Option<Progress>,
}

/// A hook called at most once a second.
struct Progress {
    hook: Box<dyn Fn() + Send + Sync>,
    last: Mutex<Option<tokio::time::Instant>>,
}

/// Where an order came from: a source message, or `manual`.
#[derive(Debug, Clone)]
pub struct Origin {
    pub label: String,
    pub message_id: Option<String>,
    pub content_hash: String,
}

/// When a message is settled in its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Final: its change is committed durably with this disposition, what it queued is sent, then it is moved.
    Now(Disposition),
    /// Not final (its trust check could not finish): nothing final is recorded, it stays in the source and is
    /// handed out again on a later pass.
    Later,
}

/// What one message came to. Whether and where it is settled, and the pass's summary, follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Licenses issued, replies queued.
    Fulfilled,
    /// A person must look (vendor alerted); also a refund remembered before its sale.
    Review,
    /// Licenses revoked, or a sale recorded revoked because its refund came first.
    Revoked,
    /// The same email or order handled before.
    Duplicate,
    /// Not an order.
    Ignored,
    /// Not from any provider a template knows: ignored, and counted apart so a provider the templates miss
    /// shows in the summary.
    UnknownSender,
    /// Cannot be handled: set aside, vendor alerted.
    SetAside,
    /// The trust check could not finish: checked again on a later pass.
    Retrying,
    /// A buyer's lost-license request, answered (licenses resent to the address on file).
    SelfService,
}

impl Effect {
    pub fn settle(self) -> Settle {
        match self {
            Effect::Retrying => Settle::Later,
            Effect::Ignored | Effect::UnknownSender => Settle::Now(Disposition::Ignored),
            Effect::SetAside => Settle::Now(Disposition::SetAside),
            Effect::Fulfilled | Effect::Review | Effect::Revoked | Effect::Duplicate | Effect::SelfService => {
                Settle::Now(Disposition::Done)
            }
        }
    }
}

/// One message's effect, not yet committed.
#[derive(Debug)]
pub struct Assessed {
    pub effect: Effect,
    pub change: Change,
    pub note: String,
}

impl Core {
    pub fn new(store: Store, config: Config, renderer: Renderer, licenser: Box<dyn Licenser>) -> Self {
        let alerts = Mutex::new(super::alerts::Throttle::new(config.limits.alerts_per_hour));
        let started = time::OffsetDateTime::now_utc().unix_timestamp();
        let telemetry = Arc::new(crate::telemetry::Telemetry::new(started, String::new()));
        let clock = Arc::new(time::OffsetDateTime::now_utc);
        Self { store, config, renderer, licenser, aside: None, clock, alerts, telemetry, stop: None, progress: None }
    }

    /// Calls `hook` as sends are done (each tried, sent or not), at most once a second. A pass of a full batch
    /// through a slow relay can take minutes; the service watchdog is pinged from here as well as after each
    /// pass, so it restarts a loop that stopped, not one sending.
    pub fn on_progress(&mut self, hook: impl Fn() + Send + Sync + 'static) {
        self.progress = Some(Progress { hook: Box::new(hook), last: Mutex::new(None) });
    }

    /// A send was done (see [`Core::on_progress`]).
    pub(super) fn progressed(&self) {
        let Some(progress) = &self.progress else { return };
        let now = tokio::time::Instant::now();
        let mut last = progress.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| now.duration_since(at) >= std::time::Duration::from_secs(1)) {
            *last = Some(now);
            drop(last);
            (progress.hook)();
        }
    }

    /// Lets a stop request cut the sends short ([`Core::stop_requested_at`]); the running daemon's loop sets it.
    pub(super) fn watch_stop(&mut self, stop: crate::service::ShutdownSignal) {
        self.stop = Some(stop);
    }

    /// Resolves when a stop is requested, at once if one was; never without [`Core::watch_stop`]. Returns when
    /// it was requested.
    pub(super) async fn stop_requested_at(&self) -> tokio::time::Instant {
        let Some(stop) = &self.stop else { return std::future::pending().await };
        let mut stop = stop.clone();
        stop.wait().await;
        // No time when the trigger was dropped without a request: counts as now.
        stop.requested_at().unwrap_or_else(tokio::time::Instant::now)
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
        change.index_email(origin.message_id.as_deref(), &origin.content_hash, &order.provider, order.id.as_str());
        let mut note = decision.reason();
        // A refund for a sale still waiting for pool codes (recorded for review, no licence yet), named by its own
        // id or by another provider's notice of the same payment.
        if order.kind.revokes()
            && let Some((waiting, reason)) = self.waiting_to_revoke(order)?
            && let Some(effect) =
                self.stop_waiting(&waiting.provider, waiting.order_id.as_str(), &reason, &mut change)?
        {
            return Ok(Assessed { effect, change, note: format!("{reason}: it no longer waits for codes") });
        }
        let effect = match decision {
            Decision::Issue { grants, recipient } => {
                match self.issue_or_wait(origin, order, grants, recipient, &mut change)? {
                    super::pool::Issued::Fulfilled => Effect::Fulfilled,
                    super::pool::Issued::Waiting(reason) => {
                        note = reason;
                        Effect::Review
                    }
                    super::pool::Issued::Refused(reason) => {
                        return self.apply(origin, order, Decision::Review { reason });
                    }
                }
            }
            Decision::Review { reason } => {
                self.review(origin, order, &reason, &mut change)?;
                Effect::Review
            }
            Decision::Revoke { lines, reason, linked } => {
                let (provider, id) = linked
                    .as_ref()
                    .map_or((order.provider.as_str(), &order.id), |to| (to.provider.as_str(), &to.order_id));
                self.revoke_lines(provider, id, &lines, &reason, &mut change)?;
                Effect::Revoked
            }
            Decision::Link { to, reason } => {
                self.link(origin, order, to, &reason, &mut change);
                Effect::Duplicate
            }
            Decision::RevokeAhead { reason } => {
                self.revoke_ahead(origin, order, &reason, &mut change)?;
                Effect::Review
            }
            Decision::SaleRevoked { reason } => {
                self.sale_revoked(origin, order, &reason, &mut change)?;
                Effect::Revoked
            }
            Decision::Cancel { of, ends } => {
                self.cancel(origin, &of, &ends, &mut change)?;
                Effect::Revoked
            }
            Decision::Skip { reason } => {
                let now = self.now().unix_timestamp();
                change.audit(now, "skipped", &format!("{}/{}", order.provider, order.id), reason);
                Effect::Duplicate
            }
        };
        Ok(Assessed { effect, change, note })
    }

    /// Records another provider's notice of a payment `to` answers, linked to it: no license, no reply, no
    /// alert (it is how such a sale always arrives). `keypost lookup` shows the two as one purchase.
    fn link(&self, origin: &Origin, order: &Order, to: crate::fulfil::OrderRef, reason: &str, change: &mut Change) {
        let now = self.now().unix_timestamp();
        tracing::info!(order = %format!("{}/{}", order.provider, order.id), linked_to = %to, "Same payment as an order answered before; linked.");
        let mut record = self.record(origin, order, 0, "link", reason);
        record.linked_to = Some(to);
        change.audit(now, "linked", &record.label(), reason);
        change.put_order(&record);
    }

    /// Makes a license per grant (a pool grant's is its code from `codes`, taken in the same change) and
    /// queues its reply. An error is a review reason.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue(
        &self,
        origin: &Origin,
        order: &Order,
        grants: &[Grant],
        recipient: Recipient,
        codes: &super::pool::Codes,
        received_at: i64,
        change: &mut Change,
    ) -> Result<(), String> {
        let now = self.now();
        let buyer = order.buyer_email.as_ref().ok_or("no buyer email")?;
        for grant in grants {
            let code = codes.get(&grant.line);
            let serial = match code {
                Some(taken) => taken.code.clone(),
                None => self.serial(grant, now.date())?,
            };
            let expires = self.licenser.expiry(grant, now.date()).map(|date| date.to_string());
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
                expires: expires.as_deref(),
                renewal: grant.continues_earlier(),
                resend: 0,
            };
            let (main, notice) =
                self.renderer.license(&reply).map_err(|err| format!("cannot render the reply: {err}"))?;
            let (decision, reason) = super::subscription::describe_grant(grant);
            let mut record = self.record(origin, order, grant.line, decision, &reason);
            record.received_at = received_at;
            if let Some(taken) = code {
                change.pool_take(&grant.product, taken, &record.label(), now.unix_timestamp());
            }
            record.license = Some(License { grant: grant.clone(), serial, issued: now.date().to_string(), expires });
            self.supersede(grant, &record, change)?;
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

    pub(super) fn review(
        &self,
        origin: &Origin,
        order: &Order,
        reason: &str,
        change: &mut Change,
    ) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let subject = format!("{}/{}", order.provider, order.id);
        tracing::warn!(order = %subject, reason, "Order needs review.");
        change.put_order(&self.record(origin, order, 0, "review", reason));
        let alert = Alert::Review {
            kind: order.kind.as_str().to_owned(),
            provider: order.provider.clone(),
            order_id: order.id.to_string(),
            origin: origin.label.clone(),
            reason: reason.to_owned(),
        };
        self.queue_alert(&alert, change)?;
        change.audit(now, "decided", &subject, format!("review: {reason}"));
        Ok(())
    }

    /// Remembers a refund or chargeback that came before its sale, as a revoked line without a license, so the
    /// sale is recorded revoked when it comes ([`crate::fulfil::History::revoked_ahead`]).
    fn revoke_ahead(&self, origin: &Origin, order: &Order, reason: &str, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let subject = format!("{}/{}", order.provider, order.id);
        tracing::warn!(order = %subject, kind = order.kind.as_str(), "Revocation before its sale; remembered.");
        let mut record = self.record(origin, order, 0, "revoke-ahead", reason);
        record.revoked = Some(Revocation { at: now, reason: order.kind.as_str().to_owned() });
        change.put_order(&record);
        let alert = Alert::RevokedAhead {
            kind: order.kind.as_str().to_owned(),
            order: subject.clone(),
            origin: origin.label.clone(),
        };
        self.queue_alert(&alert, change)?;
        change.audit(now, "decided", &subject, format!("revoke-ahead: {reason}"));
        Ok(())
    }

    /// Records every line of a sale whose refund or chargeback came first as revoked: no serial, no reply.
    fn sale_revoked(&self, origin: &Origin, order: &Order, reason: &str, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let subject = format!("{}/{}", order.provider, order.id);
        tracing::warn!(order = %subject, reason, "Sale after its revocation; recorded revoked, nothing sent.");
        let lines = u32::try_from(order.items.len()).unwrap_or(u32::MAX).max(1);
        for line in 0..lines {
            let mut record = self.record(origin, order, line, "sale-revoked", reason);
            record.revoked = Some(Revocation { at: now, reason: reason.to_owned() });
            change.put_order(&record);
            change.audit(now, "revoked", &record.label(), reason);
        }
        let alert =
            Alert::SaleAfterRevocation { order: subject, origin: origin.label.clone(), reason: reason.to_owned() };
        self.queue_alert(&alert, change)
    }

    /// Marks these lines revoked and tells the vendor, saying for each whether the buyer ever got its serial.
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
        let mut revoked = Vec::new();
        for line in lines {
            let Some(mut record) = self.store.order_line(provider, order_id.as_str(), *line)? else { continue };
            record.revoked = Some(Revocation { at: now, reason: reason.to_owned() });
            let delivery = match &record.reply {
                ReplyState::Sent { .. } => Delivery::Sent,
                // After a resend an earlier copy may have gone out, whatever became of the latest.
                _ if record.resends > 0 => Delivery::Earlier,
                ReplyState::Queued { .. } => Delivery::Cancelled,
                ReplyState::None | ReplyState::Failed { .. } | ReplyState::Cancelled { .. } => Delivery::NeverSent,
            };
            if let ReplyState::Queued { message_id } = &record.reply {
                // Still waiting for a retry: a revoked license must not go out after all.
                change.unqueue(message_id);
                change.audit(now, "cancelled", message_id, format!("license revoked first ({reason})"));
                record.reply = ReplyState::Cancelled { reason: format!("revoked before it was sent ({reason})") };
            }
            if let Some(license) = &record.license {
                self.revoke_pool_code(license, &record.label(), reason, change)?;
                revoked.push(RevokedLine {
                    line: *line,
                    product: license.grant.product.clone(),
                    seats: license.grant.seats,
                    licensee: license.grant.licensee.as_str().to_owned(),
                    serial: license.serial.clone(),
                    delivery,
                });
            }
            change.put_order(&record);
            change.audit(now, "revoked", &record.label(), reason);
        }
        tracing::info!(order = %subject, reason, "License revoked.");
        self.queue_alert(&Alert::Revoked { order: subject, reason: reason.to_owned(), lines: revoked }, change)
    }

    /// Queues an alert, or holds it for the digest past `limits.alerts_per_hour` (`alerts.rs`).
    pub fn queue_alert(&self, alert: &Alert, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let admit = self.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).admit(alert, now);
        if admit == super::alerts::Admit::Held {
            change.audit(now, "alert-held", "vendor", alert.title());
            return Ok(());
        }
        let outgoing = self.renderer.alert(alert).context("Failed to render a vendor alert")?;
        change.queue(&OutboxEntry::new(outgoing, Purpose::Vendor, now));
        Ok(())
    }

    /// Queues the digest of held alerts once their hour is over, durably, for the next send.
    pub async fn queue_alert_digest(&self) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let digest = self.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).digest_due(now);
        let Some(digest) = digest else { return Ok(()) };
        let outgoing = self.renderer.alert(&digest).context("Failed to render the alert digest")?;
        let mut change = Change::new();
        change.queue(&OutboxEntry::new(outgoing, Purpose::Vendor, now));
        change.audit(now, "alert-digest", "vendor", digest.title());
        // Sent by the pass's `send_due`, which follows.
        self.store.commit_durable(change).await.context("Failed to record the alert digest")?;
        Ok(())
    }

    pub(super) fn record(
        &self,
        origin: &Origin,
        order: &Order,
        line: u32,
        decision: &str,
        reason: &str,
    ) -> OrderRecord {
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
            chain: ChainState {
                // Only a first order stands for its subscription: renewals find it by this reference.
                subscription: order.subscription.clone().filter(|_| order.kind == OrderKind::Sale),
                ..ChainState::default()
            },
            amount: line_amount(order, line),
            payment_id: order.payment_id.clone(),
            linked_to: None,
        }
    }
}

/// What one line sold for: its quantity times its unit price, else the order's total when it has one line.
fn line_amount(order: &Order, line: u32) -> Option<crate::order::Money> {
    let item = order.items.get(usize::try_from(line).ok()?);
    match item.and_then(|item| Some((item, item.unit_price.as_ref()?))) {
        Some((item, price)) => Some(crate::order::Money {
            hundredths: price.hundredths.checked_mul(i64::from(item.quantity))?,
            currency: price.currency.clone().or_else(|| order.total.as_ref()?.currency.clone()),
        }),
        None if order.items.len() <= 1 => order.total.clone(),
        None => None,
    }
}
