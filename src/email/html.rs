//! HTML -> readable text and link targets, for order emails whose best part is HTML.
//!
//! The HTML is parsed by html5ever, the HTML5 parser of the Servo browser engine (through `scraper`, a
//! maintained DOM over it whose arena tree walks and drops without recursion), so unclosed tags, a `<head>`
//! that is never closed, Word and Outlook markup (`<o:p>`, `<v:shape>`) and conditional comments end up in
//! the same tree a browser builds. The text then follows the HTML standard's `innerText` (what a browser
//! copies): block elements end a line, paragraphs and headings stand apart by a blank line, each table row is
//! one line with its cells separated by a tab (`\t`); cells without text are left out, so a layout's spacer
//! cells do not shift the columns. What a browser does not show is not text: `<head>`, `<style>`, `<script>`,
//! `<template>`, comments, and elements hidden with `hidden`, `display:none`, `visibility:hidden`,
//! `mso-hide:all` or a zero `max-height` with `overflow:hidden` (the usual hidden preheader).
//!
//! Invariants: never panics on any input; the walk is iterative, so nesting depth cannot overflow the stack;
//! more than [`MAX_ELEMENTS`] start tags are refused rather than parsed (quadratic time in the nesting).
use scraper::node::Node;
use scraper::{ElementRef, Html};

/// HTML with more start tags than this is refused (the message is set aside): the HTML5 tree builder's work
/// grows with the square of the nesting depth, and real order mail has a few thousand at most.
pub const MAX_ELEMENTS: usize = 10_000;

/// The HTML has more than [`MAX_ELEMENTS`] start tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the HTML part has more than {MAX_ELEMENTS} elements")]
pub struct TooManyElements;

/// At most this many link targets are kept from one message.
pub const MAX_LINKS: usize = 1000;

/// An HTML part as a browser shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// The text, lines ending with `\n`, table cells separated by `\t`.
    pub text: String,
    /// The `href` of every visible link, in document order, each once.
    pub links: Vec<String>,
}

/// Elements whose content a browser never shows as text.
const NOT_SHOWN: &[&str] =
    &["head", "title", "style", "script", "template", "noscript", "object", "iframe", "svg", "math", "select"];
/// Elements with a margin above and below: a blank line around them.
const PARAGRAPHS: &[&str] =
    &["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "dl", "figure", "hr"];
/// Block elements: their content starts and ends a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "body",
    "center",
    "dd",
    "details",
    "dialog",
    "div",
    "dt",
    "fieldset",
    "figcaption",
    "footer",
    "form",
    "header",
    "hgroup",
    "html",
    "legend",
    "li",
    "main",
    "menu",
    "nav",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "caption",
    "tr",
];

/// What the walk puts out before rendering.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// At least this many line ends here (1: a new line, 2: a blank line).
    Break(u8),
    /// Between two table cells that have text.
    Cell,
}

/// Parses an HTML document and renders it as text with its links.
pub fn to_document(html: &str) -> Result<Document, TooManyElements> {
    let start_tags = html
        .as_bytes()
        .windows(2)
        .filter(|w| w.first() == Some(&b'<') && w.get(1).is_some_and(u8::is_ascii_alphabetic));
    if start_tags.count() > MAX_ELEMENTS {
        return Err(TooManyElements);
    }
    let dom = Html::parse_document(html);
    let mut walk = Walk::default();
    walk.run(&dom);
    Ok(Document { text: render(&walk.pieces), links: walk.links })
}

/// The text of an HTML document (see [`to_document`]).
pub fn to_text(html: &str) -> Result<String, TooManyElements> {
    to_document(html).map(|d| d.text)
}

#[derive(Default)]
struct Walk {
    pieces: Vec<Piece>,
    links: Vec<String>,
    /// Depth of `<pre>` elements around the current node: their white space is kept.
    pre: usize,
}

impl Walk {
    /// Walks the tree in document order (ego-tree's traversal is a loop, not recursion), leaving out the
    /// subtrees a browser does not show.
    fn run(&mut self, dom: &Html) {
        use ego_tree::iter::Edge;
        let mut skipping: Option<ego_tree::NodeId> = None;
        for edge in dom.tree.root().traverse() {
            match edge {
                Edge::Open(node) => {
                    if skipping.is_some() {
                        continue;
                    }
                    match node.value() {
                        Node::Text(text) => self.text(text),
                        Node::Element(element) => {
                            let name = element.name();
                            let style = element.attr("style");
                            let shown = !NOT_SHOWN.contains(&name) && !hidden(element.attr("hidden").is_some(), style);
                            if shown {
                                self.enter(name, element.attr("href"));
                            } else {
                                skipping = Some(node.id());
                            }
                        }
                        _ => {}
                    }
                }
                Edge::Close(node) => {
                    if skipping == Some(node.id()) {
                        skipping = None;
                    } else if skipping.is_none()
                        && let Some(element) = ElementRef::wrap(node)
                    {
                        self.leave(element.value().name());
                    }
                }
            }
        }
    }

    fn enter(&mut self, name: &str, href: Option<&str>) {
        match name {
            "br" => self.pieces.push(Piece::Text("\n".to_owned())),
            "pre" => self.pre += 1,
            "a" => {
                let href = href.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty());
                if let Some(href) = href.filter(|h| !self.links.contains(h) && self.links.len() < MAX_LINKS) {
                    self.links.push(href);
                }
            }
            "td" | "th" => self.pieces.push(Piece::Cell),
            _ => {}
        }
        self.block_edge(name);
    }

    fn leave(&mut self, name: &str) {
        if name == "pre" {
            self.pre = self.pre.saturating_sub(1);
        }
        if matches!(name, "td" | "th") {
            self.pieces.push(Piece::Cell);
        }
        self.block_edge(name);
    }

    fn block_edge(&mut self, name: &str) {
        if PARAGRAPHS.contains(&name) {
            self.pieces.push(Piece::Break(2));
        } else if BLOCKS.contains(&name) {
            self.pieces.push(Piece::Break(1));
        }
    }

    fn text(&mut self, text: &str) {
        if self.pre > 0 {
            self.pieces.push(Piece::Text(text.replace("\r\n", "\n")));
            return;
        }
        // CSS white-space: normal. A non-breaking space is not collapsible.
        let mut collapsed = String::with_capacity(text.len());
        let mut space = false;
        for c in text.chars() {
            if c.is_whitespace() && c != '\u{a0}' {
                space = true;
            } else {
                if space {
                    collapsed.push(' ');
                    space = false;
                }
                collapsed.push(c);
            }
        }
        if space {
            collapsed.push(' ');
        }
        self.pieces.push(Piece::Text(collapsed));
    }
}

/// A `hidden` attribute or an inline style that hides the element.
fn hidden(has_hidden_attr: bool, style: Option<&str>) -> bool {
    if has_hidden_attr {
        return true;
    }
    let Some(style) = style else { return false };
    let style: String = style.to_ascii_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    let has = |decl: &str| style.split(';').any(|d| d == decl || d.strip_suffix("!important") == Some(decl));
    has("display:none")
        || has("visibility:hidden")
        || has("mso-hide:all")
        || ((has("max-height:0") || has("max-height:0px")) && has("overflow:hidden"))
}

/// Lays the pieces out: block breaks merge (the largest wins), line breaks from `<br>` and `<pre>` add up, none
/// at the start; a tab goes between two cells of a row that have text.
fn render(pieces: &[Piece]) -> String {
    let mut r = Renderer { lines: vec![String::new()], ..Renderer::default() };
    for piece in pieces {
        match piece {
            Piece::Break(n) => {
                r.block_break = r.block_break.max(*n);
                r.cell_pending = false;
            }
            Piece::Cell => r.cell_pending = true,
            Piece::Text(text) => {
                for (i, segment) in text.split('\n').enumerate() {
                    if i > 0 {
                        r.line_breaks = r.line_breaks.saturating_add(1);
                    }
                    r.push(segment);
                }
            }
        }
    }
    tidy(&r.lines)
}

#[derive(Default)]
struct Renderer {
    lines: Vec<String>,
    block_break: u8,
    line_breaks: u8,
    cell_pending: bool,
}

impl Renderer {
    fn push(&mut self, segment: &str) {
        let visible = !segment.trim_matches(' ').is_empty();
        let breaks = self.block_break.max(self.line_breaks);
        if !visible {
            let current = self.lines.last().map(String::as_str).unwrap_or("");
            if segment.is_empty() || current.is_empty() || current.ends_with(' ') || breaks > 0 {
                return;
            }
        }
        if breaks > 0 {
            if self.lines.iter().any(|l| !l.trim().is_empty()) {
                for _ in 0..breaks {
                    self.lines.push(String::new());
                }
            }
            self.block_break = 0;
            self.line_breaks = 0;
        }
        let Some(line) = self.lines.last_mut() else { return };
        // A row starts on a line of its own (`tr` is a block), so text already on the line is an earlier cell's:
        // its last line when a `<br>` broke it, as in a browser's innerText ("a<br>b" then "c" is "a", "b\tc").
        if self.cell_pending && visible {
            if !line.trim().is_empty() {
                while line.ends_with(' ') {
                    line.pop();
                }
                line.push('\t');
            }
            self.cell_pending = false;
        }
        let segment =
            if line.is_empty() || line.ends_with(['\t', ' ']) { segment.trim_start_matches(' ') } else { segment };
        line.push_str(segment);
    }
}

/// Trims each line, turns non-breaking spaces into spaces and keeps at most one blank line in a row.
fn tidy(lines: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let line = line.replace('\u{a0}', " ");
        let line = line.trim_matches(|c| c == ' ' || c == '\t').to_owned();
        let blank_after_blank = line.is_empty() && out.last().is_none_or(String::is_empty);
        if !blank_after_blank {
            out.push(line);
        }
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n")
}

/// The `http://` and `https://` URLs written in plain text, in order.
pub fn urls_in(text: &str) -> Vec<String> {
    let mut urls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        let tail = rest.get(start..).unwrap_or("");
        let end = tail.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'')).unwrap_or(tail.len());
        let url = tail.get(..end).unwrap_or("").trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?']);
        if url.len() > "https://".len() && urls.len() < MAX_LINKS {
            urls.push(url.to_owned());
        }
        rest = tail.get(end.max(1)..).unwrap_or("");
    }
    urls
}

/// Decodes HTML character references (`&amp;`, `&#233;`, `&#xE9;`, every named one) in a value taken from
/// text, as the HTML parser does for text content; anything else is kept as written.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    // Parsed as a fragment's text: escaping '<' first means no tag can form, and it decodes back to '<'.
    let fragment = Html::parse_fragment(&text.replace('<', "&lt;"));
    let mut out = String::with_capacity(text.len());
    for node in fragment.tree.root().descendants() {
        if let Node::Text(part) = node.value() {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests;
