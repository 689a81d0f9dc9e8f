//! An mbox file, read one message at a time in constant memory: a message starts at a `From ` line at the start
//! of the file or after an empty line (the postmark line, not part of the message); `>From ` lines (any number of
//! `>`) lose one `>` (mboxrd). A message larger than the limit is counted, not kept: its bytes are skipped.
use std::io::BufRead;

use crate::mailbox::MailContent;

/// One message of the file: its number (from 1) and its bytes, or its size when over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    pub number: u64,
    pub content: MailContent,
}

/// Reads messages from an mbox stream.
pub struct MboxReader<R> {
    input: R,
    max_bytes: u64,
    /// Bytes consumed so far (for a progress bar).
    consumed: u64,
    /// The postmark line of the next message was read already.
    pending_start: bool,
    number: u64,
    line: Vec<u8>,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R, max_bytes: u64) -> Self {
        Self { input, max_bytes, consumed: 0, pending_start: false, number: 0, line: Vec::new() }
    }

    /// Bytes of the file read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next message, `None` at the end of the file. Text before the first postmark line is not a message.
    pub fn next_message(&mut self) -> std::io::Result<Option<MboxMessage>> {
        if !self.pending_start && !self.skip_to_first()? {
            return Ok(None);
        }
        self.pending_start = false;
        self.number += 1;
        let mut bytes = Vec::new();
        let mut size: u64 = 0;
        // An empty line is held back: it belongs to the message only when no postmark line follows it.
        let mut held_blank: Option<Vec<u8>> = None;
        loop {
            if !self.read_line()? {
                break;
            }
            if held_blank.is_some() && self.line.starts_with(b"From ") {
                self.pending_start = true;
                break;
            }
            if let Some(blank) = held_blank.take() {
                size += keep(&mut bytes, &blank, size, self.max_bytes);
            }
            if is_blank(&self.line) {
                held_blank = Some(std::mem::take(&mut self.line));
                continue;
            }
            let line = unescape(&self.line);
            size += keep(&mut bytes, line, size, self.max_bytes);
        }
        let content = if size > self.max_bytes { MailContent::TooLarge { size } } else { MailContent::Bytes(bytes) };
        Ok(Some(MboxMessage { number: self.number, content }))
    }

    /// Skips to the first postmark line; false when there is none.
    fn skip_to_first(&mut self) -> std::io::Result<bool> {
        if self.number > 0 {
            return Ok(false);
        }
        while self.read_line()? {
            if self.line.starts_with(b"From ") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        let read = self.input.read_until(b'\n', &mut self.line)?;
        self.consumed += read as u64;
        Ok(read > 0)
    }
}

/// Appends `line` while the message is within the limit; returns its length either way.
fn keep(bytes: &mut Vec<u8>, line: &[u8], size: u64, max: u64) -> u64 {
    let len = line.len() as u64;
    if size + len <= max {
        bytes.extend_from_slice(line);
    } else if !bytes.is_empty() {
        // Over the limit: free what was kept, only the size counts from now on.
        *bytes = Vec::new();
    }
    len
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// `>From ` with any number of `>` loses one (mboxrd quoting).
fn unescape(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|b| **b == b'>').count();
    match line.get(quotes..) {
        Some(rest) if quotes > 0 && rest.starts_with(b"From ") => line.get(1..).unwrap_or(line),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, max: u64) -> Vec<MboxMessage> {
        let mut reader = MboxReader::new(text.as_bytes(), max);
        let mut found = Vec::new();
        while let Some(message) = reader.next_message().unwrap() {
            found.push(message);
        }
        assert_eq!(reader.consumed(), text.len() as u64);
        found
    }

    fn bytes(message: &MboxMessage) -> String {
        match &message.content {
            MailContent::Bytes(bytes) => String::from_utf8(bytes.clone()).unwrap(),
            MailContent::TooLarge { size } => format!("too large: {size}"),
        }
    }

    #[test]
    fn messages_are_split_at_postmark_lines_after_an_empty_line_and_quoted_from_lines_are_unescaped() {
        let text = "From a@x Mon Nov 30 07:00:00 2026\nSubject: one\n\nBody\nFrom here on, a line.\n>From quoted\n\n\
                    From b@x Mon Nov 30 07:01:00 2026\nSubject: two\n\n>>From twice\n";
        let found = all(text, 1 << 20);
        assert_eq!(found.len(), 2);
        assert_eq!(bytes(&found[0]), "Subject: one\n\nBody\nFrom here on, a line.\nFrom quoted\n");
        assert_eq!(bytes(&found[1]), "Subject: two\n\n>From twice\n");
        assert_eq!((found[0].number, found[1].number), (1, 2));
    }

    #[test]
    fn a_message_over_the_limit_is_counted_not_kept_and_the_next_one_is_read_whole() {
        let big = "x".repeat(100);
        let text = format!("From a@x\nSubject: big\n\n{big}\n\nFrom b@x\nSubject: small\n");
        let found = all(&text, 50);
        assert_eq!(found[0].content, MailContent::TooLarge { size: 115 });
        assert_eq!(bytes(&found[1]), "Subject: small\n");
    }

    #[test]
    fn text_before_the_first_postmark_is_no_message_and_an_empty_file_has_none() {
        assert!(all("", 10).is_empty());
        assert!(all("junk\nmore junk\n", 10).is_empty());
        assert_eq!(all("junk\nFrom a@x\nSubject: s\n", 100).len(), 1);
    }

    #[test]
    fn crlf_archives_keep_their_line_endings_and_blank_lines_inside_a_message_stay() {
        let text = "From a@x\r\nSubject: s\r\n\r\nline\r\n\r\n\r\nend\r\n\r\nFrom b@x\r\nSubject: t\r\n";
        let found = all(text, 1 << 20);
        assert_eq!(bytes(&found[0]), "Subject: s\r\n\r\nline\r\n\r\n\r\nend\r\n");
        assert_eq!(found.len(), 2);
    }
}
