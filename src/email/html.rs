//! HTML -> readable text for order emails that have no text/plain part: block elements and table rows become
//! lines, the cells of a row are joined by a space, entities are decoded. Not a renderer: it only has to keep
//! "Label: value" pairs on one line so templates can match them.

/// Tags that start and end a paragraph: a blank line around them, as a mail client shows them.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "div",
    "dl",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "ul",
];
/// Tags that end a line.
const LINE_TAGS: &[&str] = &["br", "dd", "dt", "li", "tr"];
/// Tags whose content is never text.
const SKIPPED_TAGS: &[&str] = &["head", "script", "style", "template", "title"];

/// Turns an HTML document into text: one line per block element or table row, cells joined by a space.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skipping: Option<String> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skipping.is_none() {
                push_text(&mut out, rest);
            }
            break;
        };
        let (text, tail) = rest.split_at(lt);
        if skipping.is_none() {
            push_text(&mut out, text);
        }
        if let Some(after) = tail.strip_prefix("<!--") {
            rest = after.find("-->").and_then(|end| after.get(end + 3..)).unwrap_or("");
            continue;
        }
        let end = tail.find('>').unwrap_or(tail.len());
        let tag = tail.get(1..end).unwrap_or("");
        rest = tail.get(end + 1..).unwrap_or("");
        let (closing, name) = tag_name(tag);
        if let Some(skipped) = &skipping {
            if closing && &name == skipped {
                skipping = None;
            }
            continue;
        }
        if !closing && SKIPPED_TAGS.contains(&name.as_str()) && !tag.ends_with('/') {
            skipping = Some(name);
        } else if BLOCK_TAGS.contains(&name.as_str()) {
            new_line(&mut out);
            out.push('\n');
        } else if LINE_TAGS.contains(&name.as_str()) {
            new_line(&mut out);
        } else if matches!(name.as_str(), "td" | "th") {
            push_space(&mut out);
        }
    }
    tidy(&out)
}

/// `("/td", ...)` -> `(true, "td")`; names lower-cased.
fn tag_name(tag: &str) -> (bool, String) {
    let tag = tag.trim_start();
    let (closing, tag) = match tag.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    (closing, name)
}

/// Appends text with its whitespace collapsed to single spaces (HTML's own rule).
fn push_text(out: &mut String, text: &str) {
    let decoded = decode_entities(text);
    for (i, word) in decoded.split(|c: char| c.is_whitespace() && c != '\u{a0}').enumerate() {
        if i > 0 {
            push_space(out);
        }
        out.push_str(word);
    }
}

fn push_space(out: &mut String) {
    if !out.is_empty() && !out.ends_with([' ', '\n']) {
        out.push(' ');
    }
}

fn new_line(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Trims every line, turns non-breaking spaces into spaces and keeps at most one blank line in a row.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.replace('\u{a0}', " ").split_whitespace().collect::<Vec<_>>().join(" ");
        let blank_after_blank = line.is_empty() && lines.last().is_none_or(String::is_empty);
        if !blank_after_blank {
            lines.push(line);
        }
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

/// Decodes `&amp;`, `&#233;`, `&#xE9;` and the named entities order emails use; leaves unknown ones as written.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let (before, tail) = rest.split_at(amp);
        out.push_str(before);
        // Entities are short: only look a few characters ahead, so text full of '&' stays linear.
        let semi = tail.char_indices().take(12).find(|(_, c)| *c == ';').map(|(i, _)| i);
        let decoded = semi.and_then(|semi| tail.get(1..semi)).and_then(entity);
        match (decoded, semi) {
            (Some(c), Some(semi)) => {
                out.push(c);
                rest = tail.get(semi + 1..).unwrap_or("");
            }
            _ => {
                out.push('&');
                rest = tail.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "times" => '×',
        "middot" => '·',
        "bull" => '•',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "Eacute" => 'É',
        "aacute" => 'á',
        "agrave" => 'à',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "ccedil" => 'ç',
        "ntilde" => 'ñ',
        "aring" => 'å',
        "Aring" => 'Å',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "aelig" => 'æ',
        "zwnj" => '\u{200c}',
        "shy" => '\u{ad}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_and_paragraphs_become_lines() {
        let html = "<html><head><style>p{}</style></head><body><p>Hello&nbsp;there</p>\
                    <table><tr><td>Order ID:</td><td>AB-1</td></tr><tr><td>Total:</td><td>&euro;4,00</td></tr>\
                    </table>Bye<br>now</body></html>";
        assert_eq!(to_text(html), "Hello there\n\nOrder ID: AB-1\nTotal: €4,00\n\nBye\nnow");
    }

    #[test]
    fn entities_decode_numeric_and_named_and_keep_unknown() {
        assert_eq!(decode_entities("Ren&eacute;e &#77;&#x75;ller &bogus; & co"), "Renée Muller &bogus; & co");
    }

    #[test]
    fn comments_scripts_and_unclosed_tags_do_not_leak_or_panic() {
        assert_eq!(to_text("<!-- secret --><script>var x = '<p>';</script>Shown<p"), "Shown");
        assert_eq!(to_text("<"), "");
        assert_eq!(to_text("&#xFFFFFFFF;"), "&#xFFFFFFFF;");
    }
}
