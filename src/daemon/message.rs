//! One message through the pipeline, up to the change that records its outcome:
//! size -> read (parse + classify) -> trust -> seen before? -> decide -> apply.
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::Context as _;

use super::core::{Assessed, Core, Effect, Origin};
use super::seams::{Reader, Reading};
use crate::email::Email;
use crate::fulfil::{self, History, KnownLine};
use crate::mailbox::{MailContent, RawMail};
use crate::order::{Order, OrderKind};
use crate::reply::Alert;
use crate::store::{Change, UNKNOWN_SENDER_NOTE};
use crate::template::UnknownOrderLike;
use crate::trust::{Verdict, Verifier};

/// Seconds in the rate-limit window.
const HOUR: i64 = 60 * 60;

pub(super) async fn assess(
    core: &Core,
    reader: &dyn Reader,
    verifier: &Verifier,
    source: &str,
    raw: &RawMail,
) -> anyhow::Result<Assessed> {
    let label = format!("{source}/{}", raw.key);
    let bytes = match &raw.content {
        MailContent::TooLarge { size } => {
            return set_aside(core, &label, "too large", format!("larger than the limit ({size} bytes)"));
        }
        MailContent::Bytes(bytes) => bytes,
    };
    // A parser bug must cost one message, not the daemon.
    let reading = catch_unwind(AssertUnwindSafe(|| reader.read(bytes)))
        .unwrap_or_else(|_| Reading::Unparseable { reason: "the parser panicked on it".to_owned() });
    match reading {
        Reading::Unparseable { reason } => {
            set_aside(core, &label, "unparseable", format!("cannot be parsed: {reason}"))
        }
        Reading::Broken { template, problems } => {
            let note = format!("template {template} matched but failed: {}", problems.join("; "));
            set_aside(core, &label, "template match failed", note)
        }
        Reading::Unrecognised { near_misses, order_like } => {
            // A buyer writing that they lost their serial: answered from the state, never counted as unknown.
            if let Some(assessed) = super::selfservice::request(core, &label, bytes)? {
                return Ok(assessed);
            }
            // A sale from a provider no template covers must reach a person, not the ignored count.
            if let Some(why) = order_like
                && core.config.templates.unknown_order_like == UnknownOrderLike::SetAside
            {
                let note = format!(
                    "mail no template knows looks like an order notification ({why}): add a template for this \
                     provider (README, \"Add a provider\") and release it, or drop it with `keypost aside drop`"
                );
                return set_aside(core, &label, "looks like an order", note);
            }
            let note = match near_misses.is_empty() {
                true => format!("{UNKNOWN_SENDER_NOTE} as an order"),
                false => format!("{UNKNOWN_SENDER_NOTE} (near misses: {})", near_misses.join(", ")),
            };
            Ok(Assessed { effect: Effect::UnknownSender, ..ignored(core, &label, note) })
        }
        Reading::Unclassified { provider, subject, closest } => {
            // A buyer whose address shares a provider's domain: their request is answered when licenses are on
            // file for them; otherwise the mail stays provider mail, set aside for the vendor as before.
            if let Some(assessed) = super::selfservice::request(core, &label, bytes)?
                && assessed.effect == Effect::SelfService
            {
                return Ok(assessed);
            }
            let note = format!("unrecognised mail from {provider}: subject {subject:?}, closest template {closest}");
            set_aside(core, &label, "unrecognised provider mail", note)
        }
        Reading::NotAnOrder { template, reason } => {
            Ok(ignored(core, &label, format!("{template}: not an order: {reason}")))
        }
        Reading::Order { email, order, .. } => order_mail(core, reader, verifier, &label, bytes, &email, &order).await,
    }
}

async fn order_mail(
    core: &Core,
    reader: &dyn Reader,
    verifier: &Verifier,
    label: &str,
    bytes: &[u8],
    email: &Email,
    order: &Order,
) -> anyhow::Result<Assessed> {
    let verdict = match reader.provider_trust(&order.provider) {
        Some(trust) => verifier.check(bytes, email, &trust).await,
        None => Verdict::Refused { reason: format!("no trust information for provider {}", order.provider) },
    };
    let signatures = match verdict {
        Verdict::Refused { reason } => {
            let note = format!("{} order {} not trusted: {reason}", order.provider, order.id);
            return set_aside(core, label, "not trusted", note);
        }
        Verdict::Retry { reason } => return retry_later(core, label, order, reason),
        Verdict::Trusted { method, signatures } => {
            tracing::debug!(method, "Sender trusted.");
            signatures
        }
    };
    let origin = Origin {
        label: label.to_owned(),
        message_id: email.message_id.clone(),
        content_hash: email.content_hash.clone(),
    };
    let copy_of = match seen_before(core, email, order, &signatures)? {
        Seen::New => None,
        Seen::SameSignature(seen) => {
            let note = format!(
                "{} order {}: the provider's signature on this mail already proved order {seen}: that mail again, \
                 with headers the signature does not cover changed (Message-ID, Content-Type), read as another order",
                order.provider, order.id
            );
            return set_aside(core, label, "signed mail re-sent as another order", note);
        }
        Seen::SameEmail(seen) => {
            tracing::info!(order = %seen, "Same email seen before; nothing to do.");
            let mut change = Change::new();
            change.audit(core.now().unix_timestamp(), "duplicate", label, format!("same email as order {seen}"));
            return Ok(Assessed { effect: Effect::Duplicate, change, note: format!("duplicate of {seen}") });
        }
        Seen::SameText(seen) => Some(seen),
    };
    let history = history(core, order)?;
    let order = &with_chain_buyer(order, &history);
    let decision = match copy_of {
        // A copy of a mail under another id (a forward) and a buyer buying the same again read alike when the
        // provider's mail carries no order id of its own (Gumroad): a person tells them apart, nothing is lost.
        Some(seen) if history.lines.is_empty() => fulfil::Decision::Review {
            reason: format!(
                "same text as order {seen}, under another id: a copy of that mail, or the buyer bought the same \
                 again (then answer it with `keypost issue`)"
            ),
        },
        _ => fulfil::decide(order, &history, &core.config.products, &core.config.limits),
    };
    // An issue is logged once, by its reply's "Reply sent." line; every other outcome here.
    if matches!(decision, fulfil::Decision::Issue { .. }) {
        tracing::debug!(provider = %order.provider, order_id = %order.id, kind = order.kind.as_str(), action = decision.action(), "Decided.");
    } else {
        tracing::info!(provider = %order.provider, order_id = %order.id, kind = order.kind.as_str(), action = decision.action(), "Decided.");
    }
    tracing::debug!(buyer = ?order.buyer_email, licensee = ?order.license_name(), "Order parties.");
    let mut assessed = core.apply(&origin, order, decision)?;
    assessed.change.index_signatures(&signatures, &order.provider, order.id.as_str());
    core.watch_sequence(order, label, &mut assessed.change)?;
    Ok(assessed)
}

/// Whether this email was handled before.
enum Seen {
    New,
    /// Its Message-ID (an order of the same provider), its text under the same order id, or the provider
    /// signature of this same order: the same email again.
    SameEmail(String),
    /// The provider signature that proves it proved another order: that order's mail with unsigned headers
    /// changed. Never a new order.
    SameSignature(String),
    /// Its text (From, Subject, body) is an earlier order's, but it reads as another order id.
    SameText(String),
}

/// `signatures`: the digests of the provider signatures that proved the message (`Verdict::Trusted`).
fn seen_before(core: &Core, email: &Email, order: &Order, signatures: &[String]) -> anyhow::Result<Seen> {
    let this = format!("{}\0{}", order.provider, order.id);
    if let Some(seen) = core.store.seen_signature(signatures)? {
        let seen_label = seen.replace('\0', "/");
        return Ok(if seen == this { Seen::SameEmail(seen_label) } else { Seen::SameSignature(seen_label) });
    }
    // Per provider: another provider's mail under the same Message-ID (a careless generator, or an unsigned
    // Message-ID copied onto a genuine order) is not this one, whose own order id decides.
    if let Some(id) = email.message_id.as_deref()
        && let Some(seen) = core.store.seen_message_id(&order.provider, id)?
    {
        return Ok(Seen::SameEmail(seen.replace('\0', "/")));
    }
    let Some(seen) = core.store.seen_email(None, &email.content_hash)? else { return Ok(Seen::New) };
    let seen_label = seen.replace('\0', "/");
    Ok(if seen == this { Seen::SameEmail(seen_label) } else { Seen::SameText(seen_label) })
}

/// The trust check could not finish (a provider key lookup failed temporarily): nothing final is recorded and
/// the message stays where it is, to be checked again on a later pass. After `trust.retry_hours` of this it is
/// set aside with an alert.
fn retry_later(core: &Core, label: &str, order: &Order, reason: String) -> anyhow::Result<Assessed> {
    let now = core.now().unix_timestamp();
    let hours = core.config.trust.retry_hours;
    let since = core.store.retrying_since(label).context("Failed to read a message's retry state")?;
    let mut change = Change::new();
    match since {
        Some(since) if now.saturating_sub(since) >= i64::from(hours) * HOUR => {
            let note =
                format!("{} order {} could not be verified for {hours} hour(s): {reason}", order.provider, order.id);
            return set_aside(core, label, "not verifiable", note);
        }
        Some(_) => {}
        None => {
            change.retrying_since(label, now);
            change.audit(now, "retry", label, format!("trust check could not finish: {reason}"));
        }
    }
    tracing::warn!(provider = %order.provider, order_id = %order.id, "Trust check could not finish; trying again later.");
    tracing::debug!(reason, "Why the trust check could not finish.");
    Ok(Assessed { effect: Effect::Retrying, change, note: reason })
}

pub(super) fn history(core: &Core, order: &Order) -> anyhow::Result<History> {
    let lines =
        core.store.order_lines(&order.provider, order.id.as_str()).context("Failed to read the order's history")?;
    let since = core.now().unix_timestamp() - HOUR;
    let (provider, buyer) = core.store.recent_counts(&order.provider, order.buyer_email.as_ref(), since)?;
    let (chain, chain_problem) = match order.kind {
        OrderKind::Renewal | OrderKind::Cancellation => match core.find_chain(order)? {
            Ok(chain) => (Some(chain), None),
            Err(problem) => (None, Some(problem)),
        },
        OrderKind::Sale | OrderKind::Refund | OrderKind::Chargeback => (None, None),
    };
    // Only an upgrade SKU looks at the buyer's licences: no scan of them for every sale otherwise.
    let upgrades = (core.config.products.iter())
        .any(|p| p.serial.as_ref().is_some_and(|s| s.terms.values().any(|t| t.upgrade_from.is_some())));
    let held = if order.kind == OrderKind::Sale && upgrades { core.held(order)? } else { Vec::new() };
    Ok(History {
        lines: lines.iter().map(known_line).collect(),
        buyer_orders_last_hour: buyer,
        provider_orders_last_hour: provider,
        revoked_ahead: lines.iter().map(|r| r.kind).find(|kind| kind.revokes()),
        chain,
        chain_problem,
        held,
        answered_by: super::linked::answered_by(&core.store, order, &lines)?,
    })
}

/// A renewal whose mail names no buyer address is mailed to its first order's buyer.
fn with_chain_buyer(order: &Order, history: &History) -> Order {
    let mut order = order.clone();
    if order.kind == OrderKind::Renewal && order.buyer_email.is_none() {
        order.buyer_email = history.chain.as_ref().and_then(|chain| chain.buyer_email.clone());
    }
    order
}

pub(super) fn known_line(record: &crate::store::OrderRecord) -> KnownLine {
    KnownLine { line: record.line, licensed: record.license.is_some(), revoked: record.revoked.is_some() }
}

fn ignored(core: &Core, label: &str, note: String) -> Assessed {
    tracing::info!("Ignored: not an order.");
    tracing::debug!(note, "Why ignored.");
    let mut change = Change::new();
    change.audit(core.now().unix_timestamp(), "ignored", label, note.clone());
    Assessed { effect: Effect::Ignored, change, note }
}

/// Sets a message aside and alerts the vendor. The log gets the `kind` only: the note may quote the mail
/// (names, addresses), which the vendor's alert may show but a log line at warn level may not.
fn set_aside(core: &Core, label: &str, kind: &str, note: String) -> anyhow::Result<Assessed> {
    tracing::warn!(kind, "Message set aside; vendor alerted.");
    tracing::debug!(note, "Why set aside.");
    let mut change = Change::new();
    change.audit(core.now().unix_timestamp(), "set-aside", label, note.clone());
    core.queue_alert(&Alert::SetAside { message: label.to_owned(), note: note.clone() }, &mut change)?;
    Ok(Assessed { effect: Effect::SetAside, change, note })
}
