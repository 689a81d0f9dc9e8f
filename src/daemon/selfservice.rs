//! A buyer's lost-licence request (`[self_service]`, [`crate::selfservice`]): their active licenses sent again
//! to the address on file, as one change with the request's record, like any reply. Called for mail from no
//! provider only: it never touches orders, and a request that is not answered is filed as ignored.
use anyhow::Context as _;

use super::core::{Assessed, Core, Effect};
use crate::email::Email;
use crate::order::BuyerEmail;
use crate::reply::Outgoing;
use crate::selfservice::is_automated;
use crate::store::{Change, OrderRecord, OutboxEntry, Purpose, SelfServiceRecord};

const DAY: i64 = 24 * 60 * 60;

/// The request's effect, or `None` when the mail is no lost-licence request (it is then read as before).
pub(super) fn request(core: &Core, label: &str, bytes: &[u8]) -> anyhow::Result<Option<Assessed>> {
    let config = &core.config.self_service;
    if !config.enabled {
        return Ok(None);
    }
    let Ok(email) = crate::email::parse(bytes, core.config.templates.max_message_bytes) else { return Ok(None) };
    if !config.is_request(&email) {
        return Ok(None);
    }
    let mut change = Change::new();
    let from = email.from.as_ref().and_then(|from| BuyerEmail::parse(&from.address).ok());
    let Some(from) = from else {
        return Ok(Some(filed(core, label, "-", "no usable From address; not answered", 0, change)));
    };
    let (outcome, resent) = answer(core, label, &email, &from, &mut change)?;
    Ok(Some(filed(core, label, from.as_str(), &outcome, resent, change)))
}

/// Decides and queues the answer; returns what was done and how many licenses were resent.
fn answer(
    core: &Core,
    label: &str,
    email: &Email,
    from: &BuyerEmail,
    change: &mut Change,
) -> anyhow::Result<(String, u32)> {
    let config = &core.config.self_service;
    if let Some(why) = is_automated(email) {
        return Ok((format!("automated mail ({why}); not answered"), 0));
    }
    if let Err(reason) = crate::trust::buyer::check(email, core.config.trust.authserv_id.as_deref()) {
        return Ok((format!("not answered: {reason}"), 0));
    }
    let now = core.now().unix_timestamp();
    let answered = core.store.self_service(from.as_str(), now - DAY)?.iter().filter(|r| r.answered()).count();
    let lines = licenses_on_file(core, from)?;
    if answered >= config.per_day as usize {
        return Ok((format!("rate limited: {answered} answered in the last 24 hours; not answered"), 0));
    }
    if lines.is_empty() {
        let Some(unknown) = &config.unknown_answer else { return Ok(("no license on file; no answer".into(), 0)) };
        let outgoing = core
            .renderer
            .plain(
                &core.renderer.message_id("unknown-writer", &[label]),
                from.as_str(),
                &unknown.subject,
                &unknown.text,
            )
            .context("Failed to render the answer to a writer with no license")?;
        queue(change, outgoing, now);
        return Ok(("no license on file; answered".into(), 0));
    }
    let resent = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    for record in lines {
        core.queue_resend(record, "asked for by the buyer (lost license)", change)?;
    }
    Ok((format!("resent {resent} license(s) to the address on file"), resent))
}

/// Active licenses whose order names this address (any case) as the buyer; test orders left out.
fn licenses_on_file(core: &Core, from: &BuyerEmail) -> anyhow::Result<Vec<OrderRecord>> {
    let found = core.store.lookup(from.as_str())?;
    Ok(found
        .into_iter()
        .filter(|r| r.buyer_email.as_ref().is_some_and(|b| b.as_str().eq_ignore_ascii_case(from.as_str())))
        .filter(|r| r.license.is_some() && r.revoked.is_none() && !r.test)
        .collect())
}

fn queue(change: &mut Change, outgoing: Outgoing, now: i64) {
    change.queue(&OutboxEntry::new(outgoing, Purpose::Vendor, now));
}

/// Records the request and files the mail: done when something was sent, ignored otherwise.
fn filed(core: &Core, label: &str, address: &str, outcome: &str, resent: u32, mut change: Change) -> Assessed {
    let now = core.now().unix_timestamp();
    let answered = change.queues_mail();
    tracing::info!(answered, resent, "Lost-license request.");
    tracing::debug!(address, outcome, "Lost-license request outcome.");
    let record = SelfServiceRecord {
        at: now,
        address: address.to_owned(),
        origin: label.to_owned(),
        outcome: outcome.to_owned(),
        resent,
    };
    change.self_service(&record);
    change.audit(now, "self-service", label, format!("{address}: {outcome}"));
    let effect = if answered { Effect::SelfService } else { Effect::Ignored };
    Assessed { effect, change, note: format!("lost-license request: {outcome}") }
}
