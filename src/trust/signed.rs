//! The message a provider signature vouches for, and keypost's rules on what one signature must cover. Shared by
//! the DKIM path (keypost verified the signature itself) and the Authentication-Results path (the vendor's server
//! did): both apply exactly these rules, so neither is a way around the other. Pure.
//!
//! Invariants: the header section ends where mail-auth (which hashes the body) and mail-parser (whose text the
//! templates read) both say it does; every From, To, Cc and Subject in the message is one the signature covers,
//! and so is every copy of a header the provider's template reads a field from (Reply-To), Message-ID excepted;
//! the message has at most one Message-ID, MIME-Version, Content-Type and Content-Transfer-Encoding unless the
//! signature covers more; no signature with `l=` is accepted.
use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::HashAlgorithm;
use mail_auth::dkim::Signature;
use mail_parser::MessageParser;

use super::ProviderTrust;
use super::binding::addressed_to;
use super::domain::{self, quote};
use crate::email::Email;

/// Headers keypost reads (From, Subject) or binds the order with (To, Cc): every copy must be signed, or a copy
/// the verifier never hashed (DKIM hashes the bottom-most ones) could be the one that is read.
const READ_HEADERS: [&str; 4] = ["from", "to", "cc", "subject"];

/// Headers that name the message (Message-ID: a Gumroad order id, the duplicate index) or say how the signed body
/// bytes are read (MIME). Real providers do not all sign them (SendGrid, which sends Gumroad's mail, signs no
/// Message-ID and often no Content-Transfer-Encoding; PayPal's 2016 signature has no Content-Type), so an
/// unsigned one is accepted, but never a second copy: which one a reader takes could not be told, and the
/// signature would vouch for neither. A re-sent genuine mail whose unsigned Message-ID or MIME headers were
/// changed still carries the provider's signature, by which the daemon knows it (`store/seen.rs`).
pub(crate) const SINGLE_HEADERS: [&str; 4] =
    ["message-id", "mime-version", "content-type", "content-transfer-encoding"];

/// Headers added in transit, so a copy the signer did not see is expected.
const TRANSIT_HEADERS: [&str; 5] =
    ["received", "dkim-signature", "authentication-results", "arc-seal", "arc-message-signature"];

/// Why a message cannot be checked at all, whatever its signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageRefusal {
    #[error("the message has no header section")]
    Unparseable,
    #[error(
        "the DKIM verifier and the mail parser disagree on where the body starts (byte {verifier} against {parser}): \
         a malformed header line"
    )]
    BodyDisagreement { verifier: usize, parser: usize },
    #[error("exactly one From header with one address is required ({headers} header(s), {addresses} address(es))")]
    FromCount { headers: usize, addresses: usize },
    /// mail-parser drops whitespace inside a header name and a colon before it, so `T o:` is a To to the
    /// templates and to nothing else: a copy of To or Subject no signature covers. mail-auth's verifier matches
    /// `h=` names exactly, so `Cc :` is not hashed as the Cc an `h=` entry names, while mail-parser reads it as one.
    #[error("the header name {0} is not a valid field name (RFC 5322): mail readers disagree on which header it is")]
    HeaderName(String),
    /// mail-auth's canonicalisation drops a bare CR (and, in relaxed header canonicalisation, a blank run ending
    /// in a CR or a form feed) that mail-parser reads: the signature would vouch for text other than what
    /// keypost reads.
    #[error("the message has a {0} the DKIM verifier and the mail parser read differently")]
    ControlCharacter(&'static str),
    #[error("the DKIM verifier and the mail parser count the {name} headers differently ({verifier} against {parser})")]
    HeaderCount { name: String, verifier: usize, parser: usize },
}

/// A message opened for checking: mail-auth's view of it and its single From address.
pub(crate) struct Signed<'x> {
    pub message: AuthenticatedMessage<'x>,
    pub from: String,
}

/// Parses `raw` as mail-auth does and refuses what no signature can vouch for: a header section the two parsers
/// read differently (a line without a colon, a header name only one of them recognises), and anything but one
/// From header with one address.
pub(crate) fn open(raw: &[u8]) -> Result<Signed<'_>, MessageRefusal> {
    // Not strict: a signature with l= is parsed so that it can be refused with a clear reason.
    let message = AuthenticatedMessage::parse_with_opts(raw, None, false).ok_or(MessageRefusal::Unparseable)?;
    let parsed = MessageParser::default().parse(raw).ok_or(MessageRefusal::Unparseable)?;
    let verifier = message.body_offset();
    let parser = usize::try_from(parsed.root_part().raw_body_offset()).map_err(|_| MessageRefusal::Unparseable)?;
    if verifier != parser {
        return Err(MessageRefusal::BodyDisagreement { verifier, parser });
    }
    no_ambiguous_bytes(raw, verifier)?;
    same_header_names(&message, parsed.root_part().headers())?;
    let headers = count_headers(&message, "from");
    match (message.from.as_slice(), headers) {
        ([from], 1) => {
            let from = from.clone();
            Ok(Signed { message, from })
        }
        (addresses, _) => Err(MessageRefusal::FromCount { headers, addresses: addresses.len() }),
    }
}

/// A CR only before an LF anywhere (lines may end in LF alone, as in a Maildir file), and no control character
/// but a tab in the header section (`body_offset` on).
fn no_ambiguous_bytes(raw: &[u8], body_offset: usize) -> Result<(), MessageRefusal> {
    let bare_cr = raw.iter().enumerate().any(|(i, b)| *b == b'\r' && raw.get(i + 1) != Some(&b'\n'));
    if bare_cr {
        return Err(MessageRefusal::ControlCharacter("carriage return without a line feed"));
    }
    let header = raw.get(..body_offset).unwrap_or(raw);
    if header.iter().any(|b| b.is_ascii_control() && !matches!(b, b'\t' | b'\r' | b'\n')) {
        return Err(MessageRefusal::ControlCharacter("control character in a header"));
    }
    Ok(())
}

/// The coverage rules count headers by mail-auth's names and the templates read mail-parser's: every name must be
/// a valid field name (RFC 5322's obsolete blanks before the colon included: mail-auth's verifier would not match
/// `Cc ` to an `h=` entry `cc`), and the two parsers must see the same number of headers of each name. A
/// disagreement is refused, whichever parser is wrong.
fn same_header_names(
    message: &AuthenticatedMessage<'_>,
    parsed: &[mail_parser::Header<'_>],
) -> Result<(), MessageRefusal> {
    use std::collections::BTreeMap;
    let mut verifier: BTreeMap<String, usize> = BTreeMap::new();
    for (name, _) in &message.headers {
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic() && *b != b':') {
            return Err(MessageRefusal::HeaderName(quote(&format!("{:?}", String::from_utf8_lossy(name)))));
        }
        *verifier.entry(String::from_utf8_lossy(name).to_ascii_lowercase()).or_default() += 1;
    }
    let mut parser: BTreeMap<String, usize> = BTreeMap::new();
    for header in parsed {
        *parser.entry(header.name.as_str().to_ascii_lowercase()).or_default() += 1;
    }
    let names = verifier.keys().chain(parser.keys());
    match names
        .map(|name| (name, verifier.get(name).copied().unwrap_or(0), parser.get(name).copied().unwrap_or(0)))
        .find(|(_, v, p)| v != p)
    {
        Some((name, verifier, parser)) => Err(MessageRefusal::HeaderCount { name: quote(name), verifier, parser }),
        None => Ok(()),
    }
}

/// What the coverage rules need besides the signature and the message.
pub(crate) struct Context<'a> {
    pub email: &'a Email,
    pub provider: &'a ProviderTrust,
    /// `trust.recipients`.
    pub recipients: &'a [String],
}

/// keypost's rules for one signature that is (or that the vendor's server says is) cryptographically valid.
pub(crate) fn check_coverage(signature: &Signature, signed: &Signed<'_>, context: &Context<'_>) -> Result<(), String> {
    let covers = |name: &str| signature.h.iter().any(|h| h.trim().eq_ignore_ascii_case(name));
    if !covers("from") {
        return Err("the From header is not signed".to_owned());
    }
    // Templates classify by subject (sale, refund, payout): an unsigned one could turn a refund into a sale.
    if !covers("subject") {
        return Err("the Subject header is not signed".to_owned());
    }
    if signature.l != 0 {
        return Err(format!(
            "the signature covers only the first {} body bytes (l=); keypost refuses every l= signature",
            signature.l
        ));
    }
    let from_domain = domain::address_domain(&signed.from).unwrap_or_default();
    if !domain::aligned(&signature.d, &from_domain, &context.provider.dkim_domains) {
        return Err(format!("not aligned with the From domain {}", quote(&from_domain)));
    }
    if let Some(name) = unsigned_copy(signature, &signed.message, &context.provider.read_headers) {
        return Err(format!("the message has a {} header the signature does not cover", quote(&name)));
    }
    if let Some((name, count)) = second_copy(signature, &signed.message) {
        return Err(format!(
            "the message has {count} {} headers and the signature covers fewer: which one is read cannot be told",
            quote(&name)
        ));
    }
    check_sender(signature, signed, context)
}

/// The parsed From is the signed one and one of the provider's senders; the order is addressed to the vendor.
fn check_sender(signature: &Signature, signed: &Signed<'_>, context: &Context<'_>) -> Result<(), String> {
    let from = signed.from.as_str();
    match &context.email.from {
        Some(parsed) if parsed.address.trim().eq_ignore_ascii_case(from) => {}
        Some(parsed) => {
            return Err(format!("the parsed From {} is not the signed From {}", quote(&parsed.address), quote(from)));
        }
        None => return Err(format!("the mail parser reads no From address, the signed From is {}", quote(from))),
    }
    if !domain::sender_permitted(from, &context.provider.senders) {
        return Err(format!("From {} is not among the provider's senders", quote(from)));
    }
    let signed_headers: Vec<&str> = signature.h.iter().map(|h| h.trim()).collect();
    let raw = signed.message.raw_message();
    if !context.recipients.is_empty() && addressed_to(raw, context.recipients, &signed_headers).is_none() {
        return Err("no signed To or Cc names one of trust.recipients (not sent to this vendor)".to_owned());
    }
    Ok(())
}

/// The SHA-256 (hex) of the signature's `b=`: names the signature, so the same signed mail is known again.
pub(crate) fn digest(signature: &Signature) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&signature.b))
}

/// The body hash the signature claims is the hash of this message's body (no `l=`): the body is the one the
/// provider signed, checked without its key.
pub(crate) fn body_hash_matches(signature: &Signature, message: &AuthenticatedMessage<'_>) -> bool {
    let algorithm = HashAlgorithm::from(signature.a);
    message.body_hashes.iter().any(|(canonicalization, hash, length, computed)| {
        *canonicalization == signature.cb && *hash == algorithm && *length == signature.l && *computed == signature.bh
    })
}

/// A header the message has more copies of than the signature covers: any of [`READ_HEADERS`], any header the
/// template reads (`read`; Message-ID is left to [`second_copy`]), and any other signed header except those added
/// in transit (a verifier checks the bottom copy, a mail reader shows the top).
fn unsigned_copy(signature: &Signature, message: &AuthenticatedMessage<'_>, read: &[String]) -> Option<String> {
    let signed_names = signature.h.iter().map(|h| h.trim().to_ascii_lowercase());
    READ_HEADERS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(read.iter().map(|h| h.to_ascii_lowercase()).filter(|h| h != "message-id"))
        .chain(signed_names.filter(|h| !TRANSIT_HEADERS.contains(&h.as_str())))
        .find(|h| count_headers(message, h) > signed_count(signature, h))
}

/// One of [`SINGLE_HEADERS`] the message has more than one copy of, beyond what the signature covers, with
/// how many copies there are.
fn second_copy(signature: &Signature, message: &AuthenticatedMessage<'_>) -> Option<(String, usize)> {
    SINGLE_HEADERS.iter().find_map(|name| {
        let count = count_headers(message, name);
        (count > signed_count(signature, name).max(1)).then(|| ((*name).to_owned(), count))
    })
}

fn signed_count(signature: &Signature, name: &str) -> usize {
    signature.h.iter().filter(|s| s.trim().eq_ignore_ascii_case(name)).count()
}

pub(crate) fn count_headers(message: &AuthenticatedMessage<'_>, name: &str) -> usize {
    // Exactly as the verifier matches `h=` entries; `open` refused names with blanks.
    message.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_line_without_a_colon_that_the_parsers_read_differently_is_refused() {
        let raw =
            b"From: a@paypal.com\r\nSubject: x\r\nno colon here\r\nTo: b@vendor.example\r\n\r\nItem: 100 seats\r\n";
        assert!(matches!(open(raw), Err(MessageRefusal::BodyDisagreement { .. })), "{:?}", open(raw).err());
    }

    #[test]
    fn a_header_name_the_parsers_read_differently_is_refused() {
        let with = |line: &str| format!("From: a@paypal.com\r\nTo: t@thief.example\r\n{line}\r\n\r\nbody\r\n");
        for line in
            ["T o: v@vendor.example", "T\to: v@vendor.example", ":To: v@vendor.example", "Sub ject: x", "T\u{e9}: x"]
        {
            let raw = with(line);
            assert!(matches!(open(raw.as_bytes()), Err(MessageRefusal::HeaderName(_))), "{line:?}");
        }
        // Blanks before the colon (RFC 5322's obsolete syntax): mail-auth's verifier does not match `To ` to an
        // `h=` entry `to`, mail-parser reads it as To.
        assert!(matches!(open(with("To : v@vendor.example").as_bytes()), Err(MessageRefusal::HeaderName(_))));
        assert!(matches!(open(with("Cc\t: v@vendor.example").as_bytes()), Err(MessageRefusal::HeaderName(_))));
        assert!(open(with("X-Mailer: x").as_bytes()).is_ok());
    }

    #[test]
    fn a_bare_cr_anywhere_or_a_control_character_in_a_header_is_refused() {
        let refused = |raw: &str| matches!(open(raw.as_bytes()), Err(MessageRefusal::ControlCharacter(_)));
        let to =
            "From: a@paypal.com\r\nTo: \"Tom\\ \r\" v@vendor.example, \\ \r\"Shop\" <t@thief.example>\r\n\r\nbody\r\n";
        assert!(refused(to), "a bare CR in a quoted To name");
        assert!(refused("From: a@paypal.com\r\nSubject: a\x0c b\r\n\r\nbody\r\n"), "a form feed in a header");
        assert!(refused("From: a@paypal.com\r\n\r\nItem: 1 seat\r100 seats\r\n"), "a bare CR in the body");
        // LF line ends (a Maildir file), a tab, folding, and a form feed in the body are fine.
        assert!(open(b"From: a@paypal.com\nSubject: a\tb\n  c\n\nbody\x0c\n").is_ok());
        assert!(open(b"From: a@paypal.com\r\nSubject: a\r\n b\r\n\r\nbody\r\n").is_ok());
    }

    /// Every message the templates are tested on (real ones and attacks) has header names and bytes both parsers
    /// read alike.
    #[test]
    fn the_fixtures_header_names_are_read_alike_by_both_parsers() {
        let mut read = 0;
        for provider in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).unwrap() {
            let Ok(files) = std::fs::read_dir(provider.unwrap().path()) else { continue };
            for file in files {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "eml") {
                    continue;
                }
                let raw = std::fs::read(&path).unwrap();
                let refusal = open(&raw).err();
                let names = matches!(
                    refusal,
                    Some(
                        MessageRefusal::HeaderName(_)
                            | MessageRefusal::HeaderCount { .. }
                            | MessageRefusal::ControlCharacter(_)
                    )
                );
                assert!(!names, "{}: {refusal:?}", path.display());
                read += 1;
            }
        }
        assert!(read > 100, "only {read} fixtures found");
    }

    #[test]
    fn one_from_header_with_one_address_is_required() {
        assert!(open(b"From: a@paypal.com\r\n\r\nbody\r\n").is_ok());
        let two = open(b"From: a@paypal.com, b@paypal.com\r\n\r\nbody\r\n");
        assert_eq!(two.err(), Some(MessageRefusal::FromCount { headers: 1, addresses: 2 }));
        let none = open(b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(none.err(), Some(MessageRefusal::FromCount { headers: 0, addresses: 0 }));
    }
}
