//! Inline forwards: the header block mail clients write above a forwarded message's text, with or without
//! "> " quoting. Finds the original's From / Subject / Date and its body; knows nothing about providers.

/// An original message found inside a forward's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inline {
    /// The mail client whose style was recognised: `gmail`, `outlook`, `apple_mail`, `thunderbird`.
    pub style: &'static str,
    /// The `From:` line's value as written, e.g. `PayPal <service@paypal.com>`.
    pub from: String,
    pub subject: Option<String>,
    pub date: Option<String>,
    /// The original's text, quoting removed.
    pub body: String,
}

/// The separator lines, lower-cased, and the client that writes them (English and German variants).
const MARKERS: &[(&str, &str)] = &[
    ("---------- forwarded message ---------", "gmail"),
    ("---------- weitergeleitete nachricht ---------", "gmail"),
    ("-------- forwarded message --------", "thunderbird"),
    ("-------- weitergeleitete nachricht --------", "thunderbird"),
    ("-------- original message --------", "thunderbird"),
    ("begin forwarded message:", "apple_mail"),
    ("anfang der weitergeleiteten nachricht:", "apple_mail"),
    ("-----original message-----", "outlook"),
    ("-----ursprüngliche nachricht-----", "outlook"),
];

/// At most this many header lines are read after a marker.
const MAX_HEADER_LINES: usize = 12;
/// Forwards of forwards are unwrapped this deep.
const MAX_DEPTH: usize = 4;

/// Subject prefixes mail clients add when forwarding (English, German, French, Spanish, Italian, Dutch, Nordic).
const FORWARD_PREFIXES: &[&str] = &["fwd", "fw", "wg", "tr", "rv", "i", "enc", "doorst", "vs", "vb", "vl", "fs"];

/// True when the subject starts with a forward prefix (`Fwd:`, `FW:`, `WG:`, ...), possibly after `Re:`.
/// Inline forwards are only looked for under such a subject: a provider's own message can carry text a buyer
/// wrote (a note to the seller), and a forward block typed into it must not replace the real message.
pub fn is_forward_subject(subject: &str) -> bool {
    let mut rest = subject.trim_start();
    for _ in 0..4 {
        let Some((prefix, after)) = rest.split_once(':') else { return false };
        let prefix = prefix.trim().to_lowercase();
        if FORWARD_PREFIXES.contains(&prefix.as_str()) {
            return true;
        }
        if !matches!(prefix.as_str(), "re" | "aw" | "sv" | "antw") {
            return false;
        }
        rest = after.trim_start();
    }
    false
}

/// The innermost forwarded original in `text`, if a known forward style is found. The style is the outermost's.
pub fn unwrap(text: &str) -> Option<Inline> {
    let mut found = unwrap_once(text)?;
    for _ in 1..MAX_DEPTH {
        match unwrap_once(&found.body) {
            Some(inner) => found = Inline { style: found.style, ..inner },
            None => break,
        }
    }
    Some(found)
}

fn unwrap_once(text: &str) -> Option<Inline> {
    let lines: Vec<(usize, &str)> = text.lines().map(unquote).collect();
    for (index, (depth, line)) in lines.iter().enumerate() {
        let (style, headers_at) = match marker(line) {
            Some(style) => (style, index + 1),
            None if outlook_header_start(&lines, index) => ("outlook", index),
            None => continue,
        };
        let Some((headers, body_at)) = read_headers(&lines, headers_at) else { continue };
        let Some(from) = headers.from else { continue };
        // Apple Mail quotes the header block but not its marker: the headers' level is the original's.
        let depth = lines.get(headers.first_line).map_or(*depth, |(d, _)| *d);
        let body = body_lines(text, depth, body_at);
        return Some(Inline { style, from, subject: headers.subject, date: headers.date, body });
    }
    None
}

/// `"> > text"` -> `(2, "text")`.
fn unquote(line: &str) -> (usize, &str) {
    let mut depth = 0;
    let mut rest = line.trim_end();
    while let Some(after) = rest.trim_start().strip_prefix('>') {
        depth += 1;
        rest = after;
    }
    (depth, rest.trim_start())
}

fn marker(line: &str) -> Option<&'static str> {
    let lower = line.trim().to_lowercase();
    MARKERS.iter().find(|(text, _)| lower == *text).map(|(_, style)| *style)
}

/// Outlook without a marker line: `From: ...` followed within two lines by `Sent: ...`.
fn outlook_header_start(lines: &[(usize, &str)], index: usize) -> bool {
    let is_from = lines.get(index).is_some_and(|(_, line)| header_key(line) == Some(Key::From));
    is_from
        && lines
            .iter()
            .skip(index + 1)
            .take(2)
            .any(|(_, line)| line.to_lowercase().starts_with("sent:") || line.to_lowercase().starts_with("gesendet:"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    From,
    Subject,
    Date,
    Other,
}

fn header_key(line: &str) -> Option<Key> {
    let (name, _) = line.split_once(':')?;
    let name = name.trim().trim_matches('*').to_lowercase();
    Some(match name.as_str() {
        "from" | "von" | "de" => Key::From,
        "subject" | "betreff" | "objet" => Key::Subject,
        "date" | "datum" | "sent" | "gesendet" => Key::Date,
        "to" | "an" | "cc" | "reply-to" | "antwort an" => Key::Other,
        _ => return None,
    })
}

#[derive(Default)]
struct Headers {
    first_line: usize,
    from: Option<String>,
    subject: Option<String>,
    date: Option<String>,
}

/// Reads `Key: value` lines from `start` (skipping blank lines before the first); returns them and where the
/// body starts.
fn read_headers(lines: &[(usize, &str)], start: usize) -> Option<(Headers, usize)> {
    let mut headers = Headers::default();
    let mut index = start;
    while lines.get(index).is_some_and(|(_, line)| line.is_empty()) && index < start + 2 {
        index += 1;
    }
    let first = index;
    headers.first_line = first;
    let mut previous = None;
    while let Some((_, line)) = lines.get(index) {
        if line.is_empty() || index >= first + MAX_HEADER_LINES {
            break;
        }
        let value = line.split_once(':').map(|(_, v)| v.trim().trim_matches('*').trim().to_owned());
        let key = header_key(line);
        match (key, value) {
            (Some(Key::From), Some(v)) if headers.from.is_none() => headers.from = Some(v),
            (Some(Key::Subject), Some(v)) if headers.subject.is_none() => headers.subject = Some(v),
            (Some(Key::Date), Some(v)) if headers.date.is_none() => headers.date = Some(v),
            (Some(_), _) => {}
            (None, _) if index == first => return None,
            // A wrapped To: or Cc: list goes on; any other line is the original's first line.
            (None, _) if previous == Some(Key::Other) && line.contains(['@', ';', ',']) => {}
            (None, _) => break,
        }
        previous = key.or(previous);
        index += 1;
    }
    Some((headers, index))
}

/// The original's lines from `start`, with the marker's quoting level removed.
fn body_lines(text: &str, depth: usize, start: usize) -> String {
    let lines: Vec<&str> = text.lines().skip(start).map(|line| strip_quotes(line, depth)).collect();
    lines.join("\n").trim().to_owned()
}

fn strip_quotes(line: &str, depth: usize) -> &str {
    let mut rest = line;
    for _ in 0..depth {
        match rest.trim_start().strip_prefix('>') {
            Some(after) => rest = after.strip_prefix(' ').unwrap_or(after),
            None => break,
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_forward_yields_the_original_headers_and_body() {
        let text = "FYI\n\n---------- Forwarded message ---------\nFrom: PayPal <service@paypal.com>\n\
                    Date: Mon, 3 Nov 2025 at 10:12\nSubject: You received a payment\nTo: <me@example.com>\n\n\
                    Hello Vendor,\nYou received $10.00 USD";
        let inline = unwrap(text).unwrap();
        assert_eq!(inline.style, "gmail");
        assert_eq!(inline.from, "PayPal <service@paypal.com>");
        assert_eq!(inline.subject.as_deref(), Some("You received a payment"));
        assert_eq!(inline.body, "Hello Vendor,\nYou received $10.00 USD");
    }

    #[test]
    fn quoted_apple_mail_forward_loses_its_quoting() {
        let text = "Begin forwarded message:\n\n> From: Paddle <help@paddle.com>\n> Subject: New order\n\
                    > Date: 3 November 2025\n>\n> Order: 123\n> > nested quote stays";
        let inline = unwrap(text).unwrap();
        assert_eq!(inline.style, "apple_mail");
        assert_eq!(inline.from, "Paddle <help@paddle.com>");
        assert_eq!(inline.body, "Order: 123\n> nested quote stays");
    }

    #[test]
    fn outlook_header_block_without_marker_is_recognised() {
        let text = "see below\n________________________________\nFrom: FastSpring [mailto:noreply@fastspring.com]\n\
                    Sent: Monday, November 3, 2025 10:12 AM\nTo: Sales\nSubject: Order AB-1\n\nBody";
        let inline = unwrap(text).unwrap();
        assert_eq!((inline.style, inline.body.as_str()), ("outlook", "Body"));
        assert_eq!(inline.subject.as_deref(), Some("Order AB-1"));
    }

    #[test]
    fn forward_subjects_are_recognised_in_several_languages() {
        for subject in ["Fwd: x", "FW: x", "WG: Ihre Bestellung", "Re: Fwd: x", "TR : x"] {
            assert!(is_forward_subject(subject), "{subject}");
        }
        for subject in ["You received a payment", "Re: question", "Fwd without colon", "Order: FW: 1"] {
            assert!(!is_forward_subject(subject), "{subject}");
        }
    }

    #[test]
    fn text_without_a_forward_is_left_alone() {
        assert_eq!(unwrap("From: me\nhello\n-----Original Message-----\nno headers here"), None);
    }
}
