//! Raw bytes -> [`Email`]: ids, headers, the best text body, and the original of a forwarded order. No I/O.

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

/// One parsed message. When it is a forward, `from`, `subject`, `date` and `text` are the original's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    /// The outer Message-ID, without angle brackets.
    pub message_id: Option<String>,
    pub from: Option<Address>,
    pub subject: String,
    /// RFC 3339.
    pub date: Option<String>,
    /// The best text: text/plain when present, else the HTML as readable text.
    pub text: String,
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
