//! `[self_service]`: a buyer who writes to the orders address that they lost their serial gets their licenses
//! sent again, to the address on file. Pure: the configuration and [`SelfServiceConfig::is_request`], which
//! recognises such mail.
//!
//! Invariants (the action is `daemon/selfservice.rs`): a resend goes only to the address on file for the
//! writer's own From address, never to Reply-To or any other address, so a forged From makes the real buyer
//! receive their own key and nothing else; requests are rate-limited per address and recorded (audit, lookup);
//! a request is never set aside as provider mail nor counted as an order.
use serde::Deserialize;

use crate::email::Email;
use crate::problems::Problems;

/// Phrases that make a mail a lost-licence request when its subject or its own text (not quoted lines)
/// contains one, case-insensitively. `keywords` in the configuration replaces them.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    // English
    "lost serial",
    "lost my serial",
    "lost license key",
    "lost licence key",
    "lost my license",
    "lost my licence",
    "lost license",
    "lost licence",
    "resend my license",
    "resend my licence",
    "resend my serial",
    "forgot my serial",
    "forgotten my serial",
    // German
    "lizenzschlüssel verloren",
    "seriennummer verloren",
    "lizenz verloren",
    "lizenzschlüssel vergessen",
    "lizenzschlüssel erneut",
    // French
    "clé de licence perdue",
    "cle de licence perdue",
    "numéro de série perdu",
    "perdu ma licence",
    "perdu ma clé",
    "perdu mon numéro de série",
    // Spanish
    "clave de licencia perdida",
    "perdí mi licencia",
    "perdi mi licencia",
    "número de serie perdido",
    // Italian
    "chiave di licenza persa",
    "numero di serie perso",
    "perso la licenza",
    // Dutch
    "licentiesleutel kwijt",
    "serienummer kwijt",
    "licentie kwijt",
    // Portuguese
    "chave de licença perdida",
    "perdi minha licença",
];

/// How much of a mail's own text is searched for keywords: requests are short; a long mail that only mentions
/// a keyword far down is more likely something else.
const TEXT_CHARS: usize = 4000;

/// `[self_service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SelfServiceConfig {
    /// Answer lost-licence requests (default true).
    pub enabled: bool,
    /// Phrases that make a mail a request (subject or text, case-insensitive); replaces the built-in list of
    /// English, German, French, Spanish, Italian, Dutch and Portuguese phrases.
    pub keywords: Option<Vec<String>>,
    /// Requests per address in 24 hours that are answered (default 3); further ones are recorded, not answered.
    pub per_day: u32,
    /// The answer to a writer with no license on file, sent to the From address; without it (the default)
    /// such a writer gets no answer.
    pub unknown_answer: Option<UnknownAnswer>,
}

/// The answer to a writer with no license on file. No placeholders: nothing from the state goes into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnknownAnswer {
    pub subject: String,
    pub text: String,
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        Self { enabled: true, keywords: None, per_day: 3, unknown_answer: None }
    }
}

impl SelfServiceConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.per_day == 0 {
            problems.error("self_service.per_day", "must be at least 1 (to turn requests off: enabled = false)");
        }
        if let Some(keywords) = &self.keywords {
            if keywords.is_empty() {
                problems.error("self_service.keywords", "must name at least one phrase (or enabled = false)");
            }
            for (index, keyword) in keywords.iter().enumerate() {
                if keyword.trim().chars().count() < 4 {
                    problems.error(format!("self_service.keywords[{index}]"), "too short: would match ordinary mail");
                }
            }
        }
        if let Some(answer) = &self.unknown_answer
            && (answer.subject.trim().is_empty() || answer.text.trim().is_empty())
        {
            problems.error("self_service.unknown_answer", "needs a subject and a text");
        }
    }

    /// Whether this mail asks for a lost serial: a configured phrase in its subject or in its own text.
    pub fn is_request(&self, email: &Email) -> bool {
        if !self.enabled {
            return false;
        }
        let subject = normalise(&email.subject);
        let own: String =
            email.text.lines().filter(|line| !line.trim_start().starts_with('>')).collect::<Vec<_>>().join(" ");
        let text = normalise(&own.chars().take(TEXT_CHARS).collect::<String>());
        let matches = |keyword: &str| {
            let keyword = normalise(keyword);
            !keyword.is_empty() && (subject.contains(&keyword) || text.contains(&keyword))
        };
        match &self.keywords {
            Some(keywords) => keywords.iter().any(|k| matches(k)),
            None => DEFAULT_KEYWORDS.iter().any(|k| matches(k)),
        }
    }
}

/// Lower case, whitespace runs as one space, typographic apostrophes as `'`.
fn normalise(text: &str) -> String {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Mail no person wrote for this (auto-replies, bounces, lists): never answered, so two robots cannot loop.
pub fn is_automated(email: &Email) -> Option<String> {
    for (name, value) in &email.headers {
        let value = value.trim().to_ascii_lowercase();
        let name = name.trim().to_ascii_lowercase();
        let automated = match name.as_str() {
            "auto-submitted" => value != "no",
            "precedence" => matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply"),
            "list-id" | "list-unsubscribe" | "x-autoreply" | "x-autorespond" => true,
            "return-path" => value == "<>",
            _ => false,
        };
        if automated {
            return Some(format!("{name}: {value}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str, text: &str) -> Email {
        Email { subject: subject.into(), text: text.into(), ..Email::default() }
    }

    #[test]
    fn requests_are_recognised_in_several_languages_in_the_subject_or_the_text() {
        let config = SelfServiceConfig::default();
        assert!(config.is_request(&mail("Lost   SERIAL", "")));
        assert!(config.is_request(&mail("Hilfe", "Ich habe meinen Lizenzschlüssel verloren.")));
        assert!(config.is_request(&mail("Re: Acme", "Bonjour, clé de licence perdue, merci")));
        assert!(config.is_request(&mail("", "Hi, I lost my license for Acme Pro, can you resend it?")));
        assert!(!config.is_request(&mail("Invoice question", "Can I get an invoice with VAT?")));
    }

    #[test]
    fn quoted_lines_and_disabled_self_service_do_not_make_a_request() {
        let config = SelfServiceConfig::default();
        assert!(!config.is_request(&mail("Re: your order", "Thanks!\n> If you lost your licence key, write to us")));
        assert!(!config.is_request(&mail("Re: x", "> lost serial")));
        let off = SelfServiceConfig { enabled: false, ..SelfServiceConfig::default() };
        assert!(!off.is_request(&mail("lost serial", "")));
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        let config = SelfServiceConfig { keywords: Some(vec!["Seriennummer bitte".into()]), ..Default::default() };
        assert!(config.is_request(&mail("Seriennummer   bitte", "")));
        assert!(!config.is_request(&mail("lost serial", "")));
    }

    #[test]
    fn auto_replies_bounces_and_list_mail_are_automated() {
        let with = |name: &str, value: &str| Email { headers: vec![(name.into(), value.into())], ..Email::default() };
        assert!(is_automated(&with("Auto-Submitted", "auto-replied")).is_some());
        assert!(is_automated(&with("Auto-Submitted", "no")).is_none());
        assert!(is_automated(&with("Precedence", "bulk")).is_some());
        assert!(is_automated(&with("Return-Path", "<>")).is_some());
        assert!(is_automated(&with("List-Id", "<x.example>")).is_some());
        assert!(is_automated(&with("Subject", "lost serial")).is_none());
    }
}
