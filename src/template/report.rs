//! `keypost template test` and the golden fixtures share this: one raw message in, everything learnt out.
use std::fmt::Write as _;

use serde::Serialize;

use super::{Evidence, Outcome, Templates};
use crate::email::{self, Forward};

/// What the email layer made of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailSummary {
    /// The original's sender (after unwrapping a forward).
    pub from: Option<String>,
    pub subject: String,
    pub date: Option<String>,
    pub forwarded: Option<Forward>,
    /// Whether the original's raw bytes (for DKIM) are available.
    pub has_attached_original: bool,
    pub content_hash: String,
    /// The link targets a `from = "links"` field is matched against.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// Everything `keypost template test` shows about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSummary>,
    /// Why the message could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub evidence: Vec<Evidence>,
    /// The text the templates were run against.
    #[serde(skip)]
    pub text: String,
}

/// Parses `raw` and classifies it, with every template or only the one named.
pub fn test_message(templates: &Templates, raw: &[u8], only: Option<&str>) -> TestReport {
    let email = match email::parse(raw, templates.max_message_bytes()) {
        Ok(email) => email,
        Err(err) => {
            return TestReport {
                email: None,
                error: Some(err.to_string()),
                outcome: None,
                evidence: Vec::new(),
                text: String::new(),
            };
        }
    };
    let (outcome, evidence) = templates.classify_with_evidence(&email, only);
    let summary = EmailSummary {
        from: email.from.as_ref().map(|a| a.address.clone()),
        subject: email.subject.clone(),
        date: email.date.clone(),
        forwarded: email.forwarded.clone(),
        has_attached_original: email.attached_original.is_some(),
        content_hash: email.content_hash.clone(),
        links: email.links.clone(),
    };
    TestReport { email: Some(summary), error: None, outcome: Some(outcome), evidence, text: email.text }
}

impl TestReport {
    /// What a golden `<case>.expected.json` holds: the message as read, and the classification.
    pub fn expectation(&self) -> serde_json::Value {
        let email = self.email.as_ref();
        serde_json::json!({
            "from": email.and_then(|e| e.from.clone()),
            "subject": email.map(|e| e.subject.clone()),
            "forwarded": email.and_then(|e| e.forwarded.as_ref().map(|f| f.style.clone())),
            "error": self.error,
            "outcome": self.outcome,
        })
    }

    /// True when the message became an order or was classified as not one.
    pub fn is_classified(&self) -> bool {
        matches!(self.outcome, Some(Outcome::Order { .. } | Outcome::NotAnOrder { .. }))
    }

    /// The human-readable report.
    pub fn render(&self, show_text: bool) -> String {
        let mut out = String::new();
        if let Some(error) = &self.error {
            let _ = writeln!(out, "unreadable message: {error}");
            return out;
        }
        if let Some(email) = &self.email {
            let _ = writeln!(out, "from:      {}", email.from.as_deref().unwrap_or("(none)"));
            let _ = writeln!(out, "subject:   {}", email.subject);
            if !email.links.is_empty() {
                let _ = writeln!(out, "links:     {}", email.links.len());
            }
            if let Some(fwd) = &email.forwarded {
                let by = fwd.by.as_ref().map_or("(unknown)", |a| a.address.as_str());
                let _ = writeln!(out, "forwarded: {} by {by}", fwd.style);
            }
        }
        render_outcome(&mut out, self.outcome.as_ref());
        for ev in &self.evidence {
            let value = ev.value.as_deref().map_or("(not found)".to_owned(), |v| format!("{v:?}"));
            let _ = write!(out, "  {:<12} {value}", ev.field);
            if let Some(matched) = &ev.matched {
                let _ = write!(out, "  <- {matched:?}");
            }
            if let Some(problem) = &ev.problem {
                let _ = write!(out, "  !! {problem}");
            }
            out.push('\n');
        }
        if show_text {
            let _ = writeln!(out, "--- text the templates saw (table cells separated by a tab) ---\n{}", self.text);
            if let Some(email) = self.email.as_ref().filter(|e| !e.links.is_empty()) {
                let _ = writeln!(out, "--- links ---\n{}", email.links.join("\n"));
            }
        }
        out
    }
}

fn render_outcome(out: &mut String, outcome: Option<&Outcome>) {
    match outcome {
        Some(Outcome::Order { template, order }) => {
            let test = if order.test { " (test order)" } else { "" };
            let _ = writeln!(out, "template:  {template}\nresult:    {} {}{test}", order.kind.as_str(), order.id);
        }
        Some(Outcome::NotAnOrder { template, reason }) => {
            let _ = writeln!(out, "template:  {template}\nresult:    not an order ({reason})");
        }
        Some(Outcome::Broken { template, problems }) => {
            let _ = writeln!(out, "template:  {template}\nresult:    BROKEN extraction");
            for problem in problems {
                let _ = writeln!(out, "  problem: {problem}");
            }
        }
        Some(Outcome::Unclassified { template, provider, closest, near_misses }) => {
            let _ = writeln!(
                out,
                "template:  {template}\nresult:    UNRECOGNISED mail from {provider}: no rule classifies it (it is \
                 set aside with an alert)\n  closest:   {closest}"
            );
            for miss in near_misses {
                let _ = writeln!(out, "  near miss: {miss}");
            }
        }
        Some(Outcome::Unrecognised { closest, near_misses, order_like }) => {
            match order_like {
                Some(why) => {
                    let _ = writeln!(
                        out,
                        "result:    no template matched, but it looks like an order notification ({why}): \
                         `keypost run` sets it aside with an alert"
                    );
                }
                None => {
                    let _ = writeln!(out, "result:    no template matched (not from a known provider: ignored)");
                }
            }
            if let Some(closest) = closest {
                let _ = writeln!(out, "  closest:   {closest}");
            }
            for miss in near_misses {
                let _ = writeln!(out, "  near miss: {miss}");
            }
        }
        None => {}
    }
}
