//! Strict `{placeholder}` templates: a closed set of names, each also as `{name_url}` (percent-encoded);
//! `{{` and `}}` are literal braces. An unknown name is a configuration error, never an empty string.
use std::collections::BTreeMap;

/// Every placeholder a reply template may use.
pub const NAMES: [&str; 10] = [
    "licensee",
    "serial",
    "product",
    "seats",
    "order_id",
    "provider",
    "buyer_name",
    "expires",
    "download_url",
    "activation_url",
];

/// How values are escaped into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Plain text and headers: as is.
    None,
    /// An HTML body: `&<>"'` escaped.
    Html,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error("unknown placeholder {{{name}}}; known: {known}", name = .0, known = known())]
    Unknown(String),
    #[error("unclosed {{ at byte {0} (write {{{{ for a literal brace)")]
    Unclosed(usize),
    #[error("lone }} at byte {0} (write }}}} for a literal brace)")]
    LoneClose(usize),
}

fn known() -> String {
    NAMES.iter().map(|n| format!("{{{n}}}")).collect::<Vec<_>>().join(" ")
}

enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, PlaceholderError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(at) = rest.find(['{', '}']) {
        let (text, tail) = rest.split_at(at);
        out.push(Piece::Text(text));
        let (piece, used) = if let Some(after) = tail.strip_prefix("{{") {
            (Piece::Text("{"), tail.len() - after.len())
        } else if let Some(after) = tail.strip_prefix("}}") {
            (Piece::Text("}"), tail.len() - after.len())
        } else if tail.starts_with('}') {
            return Err(PlaceholderError::LoneClose(offset + at));
        } else {
            let end = tail.find('}').ok_or(PlaceholderError::Unclosed(offset + at))?;
            (Piece::Name(tail.get(1..end).unwrap_or_default()), end + 1)
        };
        out.push(piece);
        rest = tail.get(used..).unwrap_or_default();
        offset += at + used;
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

fn is_known(name: &str) -> bool {
    let base = name.strip_suffix("_url").filter(|base| NAMES.contains(base)).unwrap_or(name);
    NAMES.contains(&base)
}

/// Checks a template: every placeholder known, every brace balanced.
pub fn check(template: &str) -> Result<(), PlaceholderError> {
    for piece in pieces(template)? {
        if let Piece::Name(name) = piece
            && !is_known(name)
        {
            return Err(PlaceholderError::Unknown(name.to_owned()));
        }
    }
    Ok(())
}

/// Fills a template that passed [`check`]. `{download_url}` and `{activation_url}` are values in their own
/// right; `{x_url}` for any other `x` is `x` percent-encoded.
pub fn render(template: &str, values: &BTreeMap<&str, String>, escape: Escape) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Name(name) => {
                let value = lookup(name, values)?;
                match escape {
                    Escape::None => out.push_str(&value),
                    Escape::Html => out.push_str(&html_escape(&value)),
                }
            }
        }
    }
    Ok(out)
}

fn lookup(name: &str, values: &BTreeMap<&str, String>) -> Result<String, PlaceholderError> {
    if let Some(value) = values.get(name) {
        return Ok(value.clone());
    }
    match name.strip_suffix("_url").and_then(|base| values.get(base)) {
        Some(value) => Ok(url_encode(value)),
        None if is_known(name) => Ok(String::new()),
        None => Err(PlaceholderError::Unknown(name.to_owned())),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        BTreeMap::from([("licensee", "Åsa & <Bo>".to_owned()), ("serial", "AB-12".to_owned())])
    }

    #[test]
    fn url_variants_percent_encode_and_html_escapes_values_not_the_template() {
        let link = render("myapp://register?name={licensee_url}&serial={serial_url}", &values(), Escape::None);
        assert_eq!(link.unwrap(), "myapp://register?name=%C3%85sa%20%26%20%3CBo%3E&serial=AB-12");
        let html = render("<b>{licensee}</b> {{x}}", &values(), Escape::Html).unwrap();
        assert_eq!(html, "<b>Åsa &amp; &lt;Bo&gt;</b> {x}");
    }

    #[test]
    fn unknown_and_unbalanced_placeholders_are_errors() {
        assert_eq!(check("Hi {licence}"), Err(PlaceholderError::Unknown("licence".into())));
        assert_eq!(check("Hi {serial"), Err(PlaceholderError::Unclosed(3)));
        assert_eq!(check("Hi } there"), Err(PlaceholderError::LoneClose(3)));
        assert_eq!(check("{{literal}} {seats} {order_id_url} {download_url}"), Ok(()));
    }

    #[test]
    fn a_known_placeholder_without_a_value_renders_empty() {
        assert_eq!(render("[{download_url}]", &values(), Escape::None).unwrap(), "[]");
    }
}
