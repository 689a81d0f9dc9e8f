//! The vendor's own actions on orders: resend a reply, revoke a license, issue a license by hand, and
//! [`Core::execute`], which carries out a vendor tool's request (from the CLI directly, or from the control
//! socket through the daemon's loop). Each action commits one durable change before it sends what it queued.
use anyhow::Context as _;

use super::core::{Core, Effect, Origin};
use crate::control::{Answer, Request, answer};
use crate::fulfil::{Decision, Grant, Recipient};
use crate::order::{BuyerEmail, Licensee, LineItem, Order, OrderId, OrderKind};
use crate::reply::LicenseReply;
use crate::reply::Mailer;
use crate::store::{Change, OrderRecord, OutboxEntry, Purpose, Queued, ReplyState};

/// The provider name of orders issued by hand.
pub const MANUAL_PROVIDER: &str = "manual";

impl Core {
    /// Carries out a vendor tool's request with this mailer, sending what it queued; what the tool prints is
    /// formatted by [`crate::control::answer`].
    pub async fn execute<M: Mailer>(&self, mailer: &M, request: &Request) -> anyhow::Result<Answer> {
        Ok(match request {
            Request::Lookup { query, json } => answer::lookup(&self.store, query, *json)?,
            Request::Status { json } => answer::status(&self.store, Some(&self.telemetry.snapshot()), *json)?,
            Request::Export { format } => answer::export(&self.store, *format)?,
            Request::Resend { provider, order_id } => {
                let queued = self.resend(provider, order_id).await?;
                let outcome = self.send_queued(mailer, &queued).await?;
                answer::resent(queued.len(), outcome.sent, outcome.send_failures)
            }
            Request::Revoke { provider, order_id, reason } => {
                let revoked = self.revoke(provider, order_id, reason).await?;
                self.send_due(mailer).await?;
                answer::revoked(revoked, &format!("{provider}/{order_id}"))
            }
            Request::Issue { product, name, email, seats } => {
                let (order_id, queued) = self.issue_manual(product, name, email, *seats).await?;
                let outcome = self.send_queued(mailer, &queued).await?;
                answer::issued(&format!("{MANUAL_PROVIDER}/{order_id}"), outcome.sent, outcome.send_failures)
            }
            Request::Extend { provider, order_id, days } => {
                let (extension, queued) = self.extend(provider, order_id, *days).await?;
                let outcome = self.send_queued(mailer, &queued).await?;
                answer::extended(&extension, outcome.sent, outcome.send_failures)
            }
            Request::AsideList { json } => answer::aside_list(&self.store, *json)?,
            Request::AsideShow { id } => self.aside_show(id).await?,
            Request::AsideRelease { id } => self.aside_release(id).await?,
            Request::AsideDrop { id, reason } => self.aside_drop(id, reason).await?,
            Request::PoolImport { product, codes, blank, repeated } => {
                let mut imported = self.pool_import(product, codes).await?;
                let answered = self.answer_waiting(mailer).await?;
                imported.answered = answered.fulfilled;
                let file = crate::pool::ImportFile { codes: Vec::new(), blank: *blank, repeated: *repeated };
                let available = self.store.pool_available_count(product);
                Answer::success(crate::pool::render_imported(product, &file, &imported, available))
            }
            Request::PoolStatus { pools, json } => answer::pool_status(&self.store, pools, *json)?,
        })
    }

    /// Queues a fresh copy of each active license of an order (same serial, new Message-ID), durably. Returns
    /// what was queued, for the caller to send.
    pub async fn resend(&self, provider: &str, order_id: &str) -> anyhow::Result<Queued> {
        let (provider, order_id) = &self.answering(provider, order_id)?;
        let lines = self.store.order_lines(provider, order_id)?;
        let mut change = Change::new();
        for record in lines.into_iter().filter(|r| r.revoked.is_none()) {
            self.queue_resend(record, "asked for by the vendor", &mut change)?;
        }
        anyhow::ensure!(change.queues_mail(), "order {provider}/{order_id} has no active license to send");
        Ok(self.store.commit_durable(change).await?)
    }

    /// Queues a fresh copy of one order line's license (same serial, new Message-ID) to the buyer address on
    /// file, into `change`; a line without a license or a buyer address is left alone. `why` goes to the audit.
    pub fn queue_resend(&self, mut record: OrderRecord, why: &str, change: &mut Change) -> anyhow::Result<()> {
        let now = self.now().unix_timestamp();
        let (Some(license), Some(buyer)) = (&record.license, &record.buyer_email) else { return Ok(()) };
        let recipient = self.config.limits.test_orders.recipient(record.test);
        let reply = LicenseReply {
            provider: &record.provider,
            order_id: record.order_id.as_str(),
            line: record.line,
            product: &license.grant.product,
            licensee: license.grant.licensee.as_str(),
            serial: &license.serial,
            seats: license.grant.seats,
            buyer_name: record.buyer_name.as_deref(),
            buyer_email: buyer,
            recipient,
            expires: license.expires.as_deref(),
            renewal: license.grant.continues_earlier(),
            resend: record.resends + 1,
        };
        let (main, _) = self.renderer.license(&reply).context("Failed to render the reply")?;
        record.resends += 1;
        record.reply = ReplyState::Queued { message_id: main.message_id.clone() };
        let purpose =
            Purpose::Reply { provider: record.provider.clone(), order_id: record.order_id.clone(), line: record.line };
        change.queue(&OutboxEntry::new(main, purpose, now));
        change.audit(now, "resend", &record.label(), why);
        change.put_order(&record);
        Ok(())
    }

    /// Marks every active license of an order revoked. Returns how many were.
    pub async fn revoke(&self, provider: &str, order_id: &str, reason: &str) -> anyhow::Result<usize> {
        let (provider, order_id) = &self.answering(provider, order_id)?;
        let lines = self.store.order_lines(provider, order_id)?;
        let active: Vec<u32> =
            lines.iter().filter(|r| r.license.is_some() && r.revoked.is_none()).map(|r| r.line).collect();
        anyhow::ensure!(!lines.is_empty(), "no order {provider}/{order_id}");
        if active.is_empty() {
            // A sale waiting for pool codes has no licence yet: it stops waiting.
            let mut change = Change::new();
            if self.stop_waiting(provider, order_id, reason, &mut change)?.is_some() {
                self.store.commit_durable(change).await?;
            }
            return Ok(0);
        }
        let id = OrderId::parse(order_id)?;
        let mut change = Change::new();
        self.revoke_lines(provider, &id, &active, reason, &mut change)?;
        // Durable before the alert it queued (and any cancelled reply) can be acted on.
        self.store.commit_durable(change).await?;
        Ok(active.len())
    }

    /// Issues a license without an order email, durably; the reply goes out like a real one. Returns the order
    /// id and what was queued, for the caller to send.
    pub async fn issue_manual(
        &self,
        product: &str,
        licensee: &str,
        email: &str,
        seats: u32,
    ) -> anyhow::Result<(String, Queued)> {
        anyhow::ensure!(
            self.config.products.iter().any(|p| p.id == product),
            "no product {product:?} in the configuration"
        );
        let now = self.now();
        let order_id = OrderId::parse(&format!("M-{}-{:04x}", now.unix_timestamp(), fastrand::u16(..)))?;
        let licensee = Licensee::parse(licensee).context("Invalid --name")?;
        let order = Order {
            provider: MANUAL_PROVIDER.to_owned(),
            kind: OrderKind::Sale,
            id: order_id.clone(),
            test: false,
            licensee: Some(licensee.clone()),
            buyer_name: None,
            buyer_email: Some(BuyerEmail::parse(email).context("Invalid --email")?),
            items: vec![LineItem {
                sku: None,
                product_name: Some(product.to_owned()),
                quantity: seats,
                unit_price: None,
            }],
            total: None,
            subscription: None,
            period_end: None,
            payment_id: None,
            sequence: None,
        };
        let grants = vec![Grant {
            line: 0,
            product: product.to_owned(),
            seats,
            licensee,
            sku: None,
            expires: None,
            follows: None,
        }];
        let origin = Origin { label: MANUAL_PROVIDER.to_owned(), message_id: None, content_hash: String::new() };
        let assessed = self.apply(&origin, &order, Decision::Issue { grants, recipient: Recipient::Buyer })?;
        anyhow::ensure!(assessed.effect == Effect::Fulfilled, "not issued: {}", assessed.note);
        let queued = self.store.commit_durable(assessed.change).await?;
        Ok((order_id.to_string(), queued))
    }
}
