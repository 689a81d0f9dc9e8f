//! `keypost replay`: what keypost would make of past order mail now, against what the state says, and (with
//! `--apply`) the fulfilment of the orders never answered, through the daemon's own path.
//!
//! Invariants: a look ([`Replayer::look`]) writes nothing and sends nothing. Applying a message runs the very
//! steps of a live message (`message::assess`, one durable commit with the archive message's source record,
//! then the send), so the exactly-once rules hold across replays, restarts and the daemon: an order on file is
//! never answered again. Archive mail is as untrusted as live mail: the same trust checks, the same limits.
//! Only sales no line of which is on file are applied; refunds, reviews and set-aside mail are shown, never
//! acted on (a replay raises no alerts for old mail). The archive itself is never changed.
use std::fmt;

use anyhow::Context as _;

use super::core::{Core, Effect, Settle};
use super::message;
use super::seams::{Reader, Reading};
use crate::fulfil::{self, Decision, History};
use crate::mailbox::{MailContent, RawMail};
use crate::order::Order;
use crate::reply::Mailer;
use crate::store::{OrderRecord, ReplyState, SourceRecord};
use crate::template::UnknownOrderLike;
use crate::trust::{Verdict, Verifier};

/// What one archived message is, now, against the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A sale no line of which is on file, which keypost would fulfil now.
    New { order: String, detail: String },
    /// On file as the mail says (with how it was answered).
    Answered { order: String, detail: String },
    /// On file, but the mail says otherwise: each differing field with the state's and the mail's value.
    Differs { order: String, fields: Vec<String> },
    /// An order keypost would not fulfil by itself now (a rule, a limit, a refund for an order not on file).
    Review { order: String, reason: String },
    /// keypost would set it aside now (unreadable, a template that fails, not trusted).
    SetAside { reason: String },
    /// Not an order.
    Ignored { reason: String },
}

impl Finding {
    /// The category's name, as the listing and the summary show it.
    pub fn category(&self) -> &'static str {
        match self {
            Finding::New { .. } => "new",
            Finding::Answered { .. } => "answered",
            Finding::Differs { .. } => "differs",
            Finding::Review { .. } => "review",
            Finding::SetAside { .. } => "set-aside",
            Finding::Ignored { .. } => "ignored",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let category = self.category();
        match self {
            Finding::New { order, detail } | Finding::Answered { order, detail } => {
                write!(f, "{category:<9} {order}: {detail}")
            }
            Finding::Differs { order, fields } => write!(f, "{category:<9} {order}: {}", fields.join("; ")),
            Finding::Review { order, reason } => write!(f, "{category:<9} {order}: {reason}"),
            Finding::SetAside { reason } | Finding::Ignored { reason } => write!(f, "{category:<9} {reason}"),
        }
    }
}

/// Counts per category, and what `--apply` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub messages: usize,
    pub new: usize,
    pub answered: usize,
    pub differs: usize,
    pub review: usize,
    pub set_aside: usize,
    pub ignored: usize,
    /// With `--apply`: orders fulfilled, replies sent, sends failed (left in the outbox for a retry or alerted).
    pub fulfilled: usize,
    pub sent: usize,
    pub send_failures: usize,
}

impl Summary {
    pub fn count(&mut self, finding: &Finding) {
        self.messages += 1;
        *match finding {
            Finding::New { .. } => &mut self.new,
            Finding::Answered { .. } => &mut self.answered,
            Finding::Differs { .. } => &mut self.differs,
            Finding::Review { .. } => &mut self.review,
            Finding::SetAside { .. } => &mut self.set_aside,
            Finding::Ignored { .. } => &mut self.ignored,
        } += 1;
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} message(s): new {}, answered {}, differs {}, review {}, set aside {}, ignored {}",
            self.messages, self.new, self.answered, self.differs, self.review, self.set_aside, self.ignored
        )
    }
}

/// The daemon's parts that judge a message, without a mailbox.
pub struct Replayer {
    pub core: Core,
    reader: Box<dyn Reader>,
    verifier: Verifier,
}

impl Replayer {
    pub fn new(core: Core, reader: Box<dyn Reader>, verifier: Verifier) -> Self {
        Self { core, reader, verifier }
    }

    /// What keypost would make of this message now. Writes nothing, sends nothing.
    pub async fn look(&self, raw: &RawMail) -> anyhow::Result<Finding> {
        let bytes = match &raw.content {
            MailContent::TooLarge { size } => {
                return Ok(Finding::SetAside { reason: format!("larger than the limit ({size} bytes)") });
            }
            MailContent::Bytes(bytes) => bytes,
        };
        let reading = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.reader.read(bytes)))
            .unwrap_or_else(|_| Reading::Unparseable { reason: "the parser panicked on it".to_owned() });
        Ok(match reading {
            Reading::Unparseable { reason } => Finding::SetAside { reason: format!("cannot be parsed: {reason}") },
            Reading::Broken { template, problems } => {
                Finding::SetAside { reason: format!("template {template} matched but failed: {}", problems.join("; ")) }
            }
            Reading::Unclassified { provider, subject, .. } => {
                Finding::SetAside { reason: format!("unrecognised mail from {provider}: subject {subject:?}") }
            }
            Reading::Unrecognised { order_like: Some(why), .. }
                if self.core.config.templates.unknown_order_like == UnknownOrderLike::SetAside =>
            {
                Finding::SetAside { reason: format!("no template knows it but it looks like an order ({why})") }
            }
            Reading::Unrecognised { .. } => {
                Finding::Ignored { reason: "not from any provider a template knows".into() }
            }
            Reading::NotAnOrder { template, reason } => Finding::Ignored { reason: format!("{template}: {reason}") },
            Reading::Order { email, order, .. } => {
                let verdict = match self.reader.provider_trust(&order.provider) {
                    Some(trust) => self.verifier.check(bytes, &email, &trust).await,
                    None => {
                        Verdict::Refused { reason: format!("no trust information for provider {}", order.provider) }
                    }
                };
                match verdict {
                    Verdict::Trusted { signatures, .. } => self.against_state(&order, &email, &signatures)?,
                    Verdict::Refused { reason } => {
                        Finding::SetAside { reason: format!("{}/{} not trusted: {reason}", order.provider, order.id) }
                    }
                    Verdict::Retry { reason } => Finding::SetAside {
                        reason: format!("{}/{} not verifiable now: {reason}", order.provider, order.id),
                    },
                }
            }
        })
    }

    /// A trusted order (`signatures`: what proved it) against its lines on file.
    fn against_state(
        &self,
        order: &Order,
        email: &crate::email::Email,
        signatures: &[String],
    ) -> anyhow::Result<Finding> {
        let name = format!("{}/{}", order.provider, order.id);
        let lines = self.core.store.order_lines(&order.provider, order.id.as_str())?;
        // The daemon's rules: a provider signature that proved another order makes the mail a re-sent copy,
        // set aside; the same email (by Message-ID of the same provider, or content) never makes a second order.
        let store = &self.core.store;
        if lines.is_empty()
            && let Some(seen) = store.seen_signature(signatures)?
        {
            let reason = format!("{name}: the provider's signature already proved order {}", seen.replace('\0', "/"));
            return Ok(Finding::SetAside { reason });
        }
        let by_id = match email.message_id.as_deref() {
            Some(id) => store.seen_message_id(&order.provider, id)?,
            None => None,
        };
        if lines.is_empty()
            && let Some(seen) = by_id.or(store.seen_email(None, &email.content_hash)?)
        {
            let detail = format!("the same email as order {}", seen.replace('\0', "/"));
            return Ok(Finding::Answered { order: name, detail });
        }
        let products = &self.core.config.products;
        let limits = &self.core.config.limits;
        if order.kind.revokes() {
            return Ok(match lines.is_empty() {
                true => {
                    Finding::Review { order: name, reason: format!("{} for an order not on file", order.kind.as_str()) }
                }
                false if lines.iter().all(|l| l.revoked.is_some() || l.license.is_none()) => {
                    Finding::Answered { order: name, detail: format!("{}: revoked on file", order.kind.as_str()) }
                }
                false => Finding::Differs {
                    order: name,
                    fields: vec![format!(
                        "revoked: the state has an active license, the mail is a {}",
                        order.kind.as_str()
                    )],
                },
            });
        }
        if lines.is_empty() {
            let history = message::history(&self.core, order)?;
            return Ok(match fulfil::decide(order, &history, products, limits) {
                Decision::Issue { grants, .. } => {
                    let what: Vec<String> = grants
                        .iter()
                        .map(|g| format!("{} x{} for {:?}", g.product, g.seats, g.licensee.as_str()))
                        .collect();
                    Finding::New { order: name, detail: what.join(", ") }
                }
                decision => Finding::Review { order: name, reason: decision.reason() },
            });
        }
        // What the mail would be granted today, line by line, to compare with what was granted then.
        let now = fulfil::decide(order, &History::default(), products, limits);
        let fields = differences(order, &lines, &now);
        Ok(match fields.is_empty() {
            true => Finding::Answered { order: name, detail: answered(&lines) },
            false => Finding::Differs { order: name, fields },
        })
    }

    /// Fulfils a message [`Replayer::look`] found [`Finding::New`], as the daemon would: assess, one durable
    /// commit with the archive message's source record, then send what it queued. Returns its effect.
    pub async fn apply<M: Mailer>(
        &self,
        mailer: &M,
        archive: &str,
        raw: &RawMail,
    ) -> anyhow::Result<(Effect, super::Outcome)> {
        let source = format!("replay:{archive}");
        let assessed = message::assess(&self.core, self.reader.as_ref(), &self.verifier, &source, raw).await?;
        let effect = assessed.effect;
        let Settle::Now(disposition) = effect.settle() else {
            // The trust check could not finish after all: nothing recorded, it stays new for the next replay.
            return Ok((effect, super::Outcome::default()));
        };
        let mut change = assessed.change;
        let at = self.core.now().unix_timestamp();
        change.put_source(&source, &raw.key, &SourceRecord { disposition, at, note: assessed.note, sha256: None });
        let queued = self.core.store.commit_durable(change).await.context("Failed to record a replayed order")?;
        let outcome = self.core.send_queued(mailer, &queued).await?;
        Ok((effect, outcome))
    }
}

/// Each field where the mail and the lines on file disagree: `field: state X, mail Y`.
fn differences(order: &Order, lines: &[OrderRecord], now: &Decision) -> Vec<String> {
    let mut fields = Vec::new();
    let first = lines.first();
    differ(
        &mut fields,
        "buyer email",
        first.and_then(|l| l.buyer_email.as_ref()).map(|e| e.as_str()),
        order.buyer_email.as_ref().map(|e| e.as_str()),
    );
    let Decision::Issue { grants, .. } = now else {
        if lines.iter().any(|l| l.license.is_some()) {
            fields.push(format!("decision: state issued, now {} ({})", now.action(), now.reason()));
        }
        return fields;
    };
    for grant in grants {
        let license = lines.iter().find(|l| l.line == grant.line).and_then(|l| l.license.as_ref());
        let Some(license) = license else {
            fields
                .push(format!("line {}: not on file, the mail grants {} x{}", grant.line, grant.product, grant.seats));
            continue;
        };
        differ(&mut fields, "licensee", Some(license.grant.licensee.as_str()), Some(grant.licensee.as_str()));
        differ(&mut fields, "product", Some(&license.grant.product), Some(&grant.product));
        differ(&mut fields, "seats", Some(&license.grant.seats.to_string()), Some(&grant.seats.to_string()));
    }
    fields
}

/// Notes `field: state X, mail Y` when the two differ (case-insensitively: addresses and names compare so).
fn differ(fields: &mut Vec<String>, field: &str, state: Option<&str>, mail: Option<&str>) {
    if state.map(str::to_lowercase) != mail.map(str::to_lowercase) {
        fields.push(format!("{field}: state {:?}, mail {:?}", state.unwrap_or("-"), mail.unwrap_or("-")));
    }
}

/// How the lines on file were answered: `reply sent`, `review: ...`, `reply failed: ...`.
fn answered(lines: &[OrderRecord]) -> String {
    let states: Vec<String> = lines
        .iter()
        .map(|line| {
            let state = match &line.reply {
                ReplyState::Sent { .. } => "reply sent".to_owned(),
                ReplyState::Queued { .. } => "reply waiting in the outbox".to_owned(),
                ReplyState::Failed { reason, .. } => format!("reply failed ({reason})"),
                ReplyState::Cancelled { reason } => format!("reply cancelled ({reason})"),
                ReplyState::None if line.revoked.is_some() => "revoked".to_owned(),
                ReplyState::None => format!("{}: {}", line.decision, line.reason),
            };
            match line.revoked.is_some() && !state.starts_with("revoked") {
                true => format!("line {} {state}, revoked since", line.line),
                false => format!("line {} {state}", line.line),
            }
        })
        .collect();
    states.join(", ")
}
