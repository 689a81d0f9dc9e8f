//! Raw bytes -> [`Email`]: ids, headers, the best text body, and the original of a forwarded order. No I/O.
//!
//! Mail is untrusted: [`parse`] refuses oversized or absurdly nested messages before handing them to
//! mail-parser, and turns a parser panic into an error instead of a crash.
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Encoding, Message, MessageParser, MessagePart, PartType};
use sha2::{Digest, Sha256};

pub mod forward;
pub mod html;

/// A header section larger than this is refused (real ones are a few KiB; DKIM-heavy ones maybe 30).
pub const MAX_HEADER_BYTES: usize = 256 * 1024;
/// More MIME parts than this is refused.
pub const MAX_PARTS: usize = 500;
/// Multipart nesting deeper than this is refused (real mail rarely goes past 4).
pub const MAX_DEPTH: usize = 16;

/// A mailbox address with its display name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub name: Option<String>,
    /// `local@domain` as written.
    pub address: String,
}

/// How the order reached the mailbox when a person forwarded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Forward {
    /// Who forwarded it (the outer From).
    pub by: Option<Address>,
    /// `attachment` (message/rfc822) or the mail client whose inline style was recognised.
    pub style: String,
}

/// One parsed message. When it is a forward, `from`, `subject`, `date`, `text`, `links` and `headers` are the
/// original's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    /// The outer Message-ID, without angle brackets.
    pub message_id: Option<String>,
    pub from: Option<Address>,
    pub subject: String,
    /// RFC 3339.
    pub date: Option<String>,
    /// The best text: text/plain when present, else the HTML as readable text.
    pub text: String,
    /// Link targets: every `href` of the HTML part, then every URL written in the text/plain part, in order,
    /// each once.
    #[serde(default)]
    pub links: Vec<String>,
    /// The original's header fields (name as written, value unfolded), in order. For an inline forward, the
    /// ones its forward block shows (From, Date, Subject).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The `d=` of every DKIM-Signature (outer and attached original), unverified: it tells which provider a
    /// message claims to be from, so its mail is never silently ignored; it proves nothing (see `trust`).
    #[serde(default)]
    pub signing_domains: Vec<String>,
    pub forwarded: Option<Forward>,
    /// The raw bytes of an original attached as message/rfc822, which still carries its DKIM signature.
    #[serde(skip)]
    pub attached_original: Option<Vec<u8>>,
    /// The outer message's Authentication-Results header values, topmost first.
    pub authentication_results: Vec<String>,
    /// SHA-256 (hex) of the original's From, Subject and normalised text: the same email seen twice,
    /// however it was forwarded, has the same hash.
    pub content_hash: String,
}

/// Why a message could not be read. Every variant means "set it aside", never "crash".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("message is {size} bytes, more than the {max} allowed")]
    TooLarge { size: u64, max: u64 },
    #[error("message header section is larger than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    #[error("message is too complex: {0}")]
    TooComplex(&'static str),
    #[error("message could not be parsed as RFC 5322")]
    Unparseable,
    #[error("the mail parser panicked on this message")]
    ParserPanicked,
}

/// Parses one message, unwrapping a forwarded original (attached or inline).
pub fn parse(raw: &[u8], max_bytes: u64) -> Result<Email, EmailError> {
    let size = u64::try_from(raw.len()).unwrap_or(u64::MAX);
    if size > max_bytes {
        return Err(EmailError::TooLarge { size, max: max_bytes });
    }
    if header_section_len(raw) > MAX_HEADER_BYTES {
        return Err(EmailError::HeadersTooLarge);
    }
    // mail-parser is well tested but the input is hostile: a panic is this message's problem only.
    catch_unwind(AssertUnwindSafe(|| parse_checked(raw))).unwrap_or(Err(EmailError::ParserPanicked))
}

fn parse_checked(raw: &[u8]) -> Result<Email, EmailError> {
    let message = MessageParser::default().parse(raw).ok_or(EmailError::Unparseable)?;
    check_shape(&message)?;
    let outer_from = message.from().and_then(|list| list.first()).and_then(address_of);
    let (text, links) = text_and_links(&message)?;
    let mut email = Email {
        message_id: message.message_id().map(str::to_owned),
        from: outer_from.clone(),
        subject: message.subject().unwrap_or_default().trim().to_owned(),
        date: message.date().map(|d| d.to_rfc3339()),
        text,
        links,
        headers: headers(&message),
        signing_domains: signing_domains(&message),
        forwarded: None,
        attached_original: None,
        authentication_results: authentication_results(&message),
        content_hash: String::new(),
    };
    if let Some(original) = attached_original(&message, raw) {
        if let Some(inner) = MessageParser::default().parse(&original) {
            email.from = inner.from().and_then(|list| list.first()).and_then(address_of);
            email.subject = inner.subject().unwrap_or_default().trim().to_owned();
            email.date = inner.date().map(|d| d.to_rfc3339());
            (email.text, email.links) = text_and_links(&inner)?;
            email.headers = headers(&inner);
            email.signing_domains.extend(signing_domains(&inner));
            email.forwarded = Some(Forward { by: outer_from, style: "attachment".to_owned() });
            email.attached_original = Some(original);
        }
    } else if let Some(inline) =
        forward::is_forward_subject(&email.subject).then(|| forward::unwrap(&email.text)).flatten()
    {
        email.from = parse_address(&inline.from);
        email.headers = [("From", Some(inline.from.clone())), ("Date", inline.date.clone())]
            .into_iter()
            .chain([("Subject", inline.subject.clone())])
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect();
        email.subject = inline.subject.unwrap_or_default();
        email.date = inline.date.as_deref().and_then(parse_date);
        email.text = inline.body;
        email.forwarded = Some(Forward { by: outer_from, style: inline.style.to_owned() });
    }
    email.content_hash = content_hash(&email);
    Ok(email)
}

/// Bytes before the first empty line, counting no further than just past the limit.
fn header_section_len(raw: &[u8]) -> usize {
    let head = raw.get(..MAX_HEADER_BYTES + 4).unwrap_or(raw);
    header_end(head).unwrap_or(head.len())
}

/// Where the header section ends: just past the line break of its last line, before the empty line; `None`
/// without an empty line. Lines may end in LF or CRLF (a Maildir file, a message as sent).
pub(crate) fn header_end(raw: &[u8]) -> Option<usize> {
    let lf = raw.windows(2).position(|w| w == b"\n\n");
    let crlf = raw.windows(3).position(|w| w == b"\n\r\n");
    lf.into_iter().chain(crlf).min().map(|line_end| line_end + 1)
}

/// Refuses messages with too many parts or too deep a nesting of multiparts and attached messages.
fn check_shape(message: &Message<'_>) -> Result<(), EmailError> {
    let mut parts = 0;
    let mut stack = vec![(message, 1usize)];
    while let Some((msg, depth)) = stack.pop() {
        parts += msg.parts.len();
        if parts > MAX_PARTS {
            return Err(EmailError::TooComplex("too many MIME parts"));
        }
        if depth + part_depth(msg) > MAX_DEPTH {
            return Err(EmailError::TooComplex("too deeply nested parts"));
        }
        stack.extend(msg.parts.iter().filter_map(MessagePart::message).map(|inner| (inner, depth + 1)));
    }
    Ok(())
}

/// The deepest multipart nesting inside one message (not counting attached messages).
fn part_depth(message: &Message<'_>) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(0u32, 0usize)];
    let mut visited = 0;
    while let Some((id, depth)) = stack.pop() {
        visited += 1;
        if visited > MAX_PARTS * 2 {
            return usize::MAX / 2; // a cycle or worse: refuse
        }
        deepest = deepest.max(depth);
        if let Some(children) = message.part(id).and_then(MessagePart::sub_parts) {
            stack.extend(children.iter().map(|child| (*child, depth + 1)));
        }
    }
    deepest
}

/// The best text (text/plain when it says something, else the first HTML part as text; line ends `\n`) and
/// the link targets: every `href` of the first HTML part, then the URLs written in the text/plain part, each
/// once, in order. The HTML is parsed once.
fn text_and_links(message: &Message<'_>) -> Result<(String, Vec<String>), EmailError> {
    let plain = message.text_bodies().find_map(|part| match &part.body {
        PartType::Text(text) if !text.trim().is_empty() => Some(text.to_string()),
        _ => None,
    });
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html::to_document(html)),
        _ => None,
    });
    let document = match (html, &plain) {
        (Some(Ok(document)), _) => Some(document),
        // Too many elements: refused when the HTML is the text; only its links are lost when text/plain is.
        (Some(Err(_)), None) => return Err(EmailError::TooComplex("the HTML part has too many elements")),
        (Some(Err(_)), Some(_)) | (None, _) => None,
    };
    let mut links = document.as_ref().map(|d| d.links.clone()).unwrap_or_default();
    if let Some(plain) = &plain {
        links.extend(html::urls_in(plain));
    }
    let mut seen = std::collections::HashSet::new();
    links.retain(|link| seen.insert(link.clone()));
    links.truncate(html::MAX_LINKS);
    let text = plain.or_else(|| document.map(|d| d.text)).unwrap_or_default();
    Ok((text.replace("\r\n", "\n"), links))
}

/// Header fields as (name, unfolded value), in order.
fn headers(message: &Message<'_>) -> Vec<(String, String)> {
    message
        .headers_raw()
        .map(|(name, value)| (name.to_owned(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// The `d=` tag of every DKIM-Signature header, lower-cased.
fn signing_domains(message: &Message<'_>) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("DKIM-Signature"))
        .filter_map(|(_, value)| {
            value.split(';').find_map(|tag| {
                let (name, domain) = tag.split_once('=')?;
                (name.trim() == "d").then(|| domain.split_whitespace().collect::<String>().to_ascii_lowercase())
            })
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// The bytes of the first message/rfc822 attachment, as they were sent (transfer encoding removed).
fn attached_original(message: &Message<'_>, raw: &[u8]) -> Option<Vec<u8>> {
    let part = message.attachments().find(|part| part.message().is_some())?;
    let inner = part.message()?;
    if part.encoding == Encoding::None {
        // mail-parser keeps the whole outer message as an in-line nested message's raw bytes; cut it out.
        let start = usize::try_from(part.raw_body_offset()).ok()?;
        let end = usize::try_from(part.raw_end_offset()).ok()?;
        raw.get(start..end).map(<[u8]>::to_vec)
    } else {
        Some(inner.raw_message().to_vec())
    }
}

fn authentication_results(message: &Message<'_>) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn address_of(addr: &mail_parser::Addr<'_>) -> Option<Address> {
    let address = addr.address()?.trim();
    if address.is_empty() {
        return None;
    }
    let name = addr.name().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    Some(Address { name, address: address.to_owned() })
}

/// `PayPal <service@paypal.com>`, `PayPal [mailto:service@paypal.com]`, `"Pay Pal" service@paypal.com` or
/// a bare address, as mail clients write the original's From in an inline forward.
pub fn parse_address(value: &str) -> Option<Address> {
    let value = value.trim();
    let (name, address) = if let Some((name, rest)) = value.split_once('<') {
        (name, rest.split('>').next().unwrap_or(""))
    } else if let Some((name, rest)) = value.split_once("[mailto:") {
        (name, rest.split(']').next().unwrap_or(""))
    } else {
        let address = value.split_whitespace().find(|word| word.contains('@'))?;
        (value.strip_suffix(address).unwrap_or(""), address)
    };
    let address = address.trim().trim_matches(|c| c == '"' || c == '\'');
    if !address.contains('@') {
        return None;
    }
    let name = name.trim().trim_matches(|c: char| c == '"' || c == '\'' || c == '*').trim();
    let name = (!name.is_empty() && name != address).then(|| name.to_owned());
    Some(Address { name, address: address.to_owned() })
}

/// A date as an inline forward wrote it, when it is an RFC 5322 date; RFC 3339 out.
fn parse_date(value: &str) -> Option<String> {
    let header = format!("Date: {value}\r\n\r\n");
    let message = MessageParser::default().parse(header.as_bytes())?;
    message.date().map(|d| d.to_rfc3339())
}

/// The original's sender, subject and text with quoting, spacing and blank lines normalised away.
fn content_hash(email: &Email) -> String {
    let from = email.from.as_ref().map(|a| a.address.to_lowercase()).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(from.as_bytes());
    hasher.update(b"\n");
    hasher.update(email.subject.split_whitespace().collect::<Vec<_>>().join(" ").as_bytes());
    hasher.update(b"\n");
    for line in normalised_lines(&email.text) {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

fn normalised_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|line| line.trim_start_matches(|c: char| c == '>' || c.is_whitespace()))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests;
