//! The wire format: one request line and one response line of JSON, newline-terminated. Pure: no I/O.
//!
//! ```text
//! -> {"command":"lookup","query":"jane@example.com"}
//! <- {"status":"ok","stdout":"paypal/8HJ...#0 sale issue: ...\n","exit":0}
//! -> {"command":"resend","provider":"paypal","order_id":"8HJ45678KL901234M"}
//! <- {"status":"error","message":"order paypal/X has no active license to send"}
//! ```
use serde::{Deserialize, Serialize};

/// The exit code of a failed command (also `verify` of an invalid serial, a `lookup` that finds nothing). The
/// tools' exit codes are part of this protocol: the daemon answers with them.
pub const EXIT_ERROR: u8 = 1;
/// The exit code when the configuration or a template has problems.
pub const EXIT_INVALID_CONFIG: u8 = 2;

/// The longest request line the daemon reads (requests are a few hundred bytes; a `pool import` carries its
/// codes, some 200,000 of a platform's usual length).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// What a vendor tool asks for: one variant per command, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Lookup {
        query: String,
        /// A JSON array of the order lines (the fields `export` writes) instead of lines of text.
        #[serde(default)]
        json: bool,
    },
    /// `keypost status`: the daemon's own facts and what the state says.
    Status {
        #[serde(default)]
        json: bool,
    },
    Export {
        format: ExportFormat,
    },
    Resend {
        provider: String,
        order_id: String,
    },
    Revoke {
        provider: String,
        order_id: String,
        reason: String,
    },
    Issue {
        product: String,
        name: String,
        email: String,
        seats: u32,
    },
    /// `keypost extend PROVIDER ORDER_ID --days N`.
    Extend {
        provider: String,
        order_id: String,
        days: u32,
    },
    /// `keypost aside list`: the set-aside messages the state knows.
    AsideList {
        #[serde(default)]
        json: bool,
    },
    /// `keypost aside show|release|drop ID`: `id` is a message key, or `source/key` where keys repeat.
    AsideShow {
        id: String,
    },
    AsideRelease {
        id: String,
    },
    AsideDrop {
        id: String,
        reason: String,
    },
    /// `keypost pool import PRODUCT FILE`: the file's codes (read, trimmed and de-duplicated by the tool, which
    /// counted its blank and repeated lines).
    PoolImport {
        product: String,
        codes: Vec<String>,
        #[serde(default)]
        blank: usize,
        #[serde(default)]
        repeated: usize,
    },
    /// `keypost pool status`: the stock of these pools (product id and low-water mark, from the tool's
    /// configuration) and of any other product with codes in the state.
    PoolStatus {
        pools: Vec<(String, u32)>,
        #[serde(default)]
        json: bool,
    },
}

/// `keypost export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl Request {
    /// The command's name, for logs (the arguments can name a buyer: they are not logged at info).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lookup { .. } => "lookup",
            Self::Status { .. } => "status",
            Self::Export { .. } => "export",
            Self::Resend { .. } => "resend",
            Self::Revoke { .. } => "revoke",
            Self::Issue { .. } => "issue",
            Self::Extend { .. } => "extend",
            Self::AsideList { .. } => "aside list",
            Self::AsideShow { .. } => "aside show",
            Self::AsideRelease { .. } => "aside release",
            Self::AsideDrop { .. } => "aside drop",
            Self::PoolImport { .. } => "pool import",
            Self::PoolStatus { .. } => "pool status",
        }
    }

    /// Parses one request line (its newline included or not).
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() > MAX_REQUEST_BYTES {
            return Err(format!("the request is longer than {MAX_REQUEST_BYTES} bytes"));
        }
        serde_json::from_slice(line).map_err(|err| format!("malformed request: {err}"))
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        line(self)
    }
}

/// What the tool prints on stdout, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub stdout: String,
    pub exit: u8,
}

impl Answer {
    pub fn success(stdout: String) -> Self {
        Self { stdout, exit: 0 }
    }
}

/// The daemon's answer: what to print, or the error (its whole chain) the tool reports with exit code 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    Ok(Answer),
    Error {
        message: String,
    },
    /// `export`: the output follows as it is read, in frames of a length line (`LEN\n`) and that many bytes; a
    /// `0\n` frame ends it and one more response line says how it ended (`ok`, or the error that cut it short).
    /// Neither side holds the whole export.
    Stream,
}

/// The largest frame a daemon sends (the tool refuses a longer one as malformed).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

impl Response {
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error { message: message.into() }
    }

    /// Parses the daemon's response line.
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        serde_json::from_slice(line).map_err(|err| format!("malformed response from keypost run: {err}"))
    }

    pub fn to_line(&self) -> String {
        line(self)
    }
}

impl From<anyhow::Result<Answer>> for Response {
    fn from(result: anyhow::Result<Answer>) -> Self {
        match result {
            Ok(answer) => Self::Ok(answer),
            Err(err) => Self::error(format!("{err:#}")),
        }
    }
}

impl From<Response> for anyhow::Result<Answer> {
    fn from(response: Response) -> Self {
        match response {
            Response::Ok(answer) => Ok(answer),
            Response::Error { message } => Err(anyhow::Error::msg(message)),
            // `client::ask_into` reads a stream to its end; a final line cannot be another stream.
            Response::Stream => Err(anyhow::anyhow!("malformed response from keypost run: a stream inside a stream")),
        }
    }
}

fn line<T: Serialize>(value: &T) -> String {
    // Plain strings and numbers: serialising cannot fail.
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_line() {
        let request = Request::Revoke { provider: "paypal".into(), order_id: "8HJ".into(), reason: "fraud\n".into() };
        let line = request.to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.starts_with(r#"{"command":"revoke","#), "{line}");
        assert_eq!(Request::parse(line.as_bytes()), Ok(request));
    }

    #[test]
    fn malformed_unknown_and_oversized_requests_are_errors() {
        assert!(Request::parse(b"hello\n").unwrap_err().starts_with("malformed request"));
        assert!(Request::parse(br#"{"command":"drop_tables"}"#).unwrap_err().contains("unknown variant"));
        assert!(Request::parse(br#"{"command":"lookup","query":"x","extra":1}"#).is_err());
        assert!(Request::parse(br#"{"command":"issue","product":"p"}"#).unwrap_err().contains("missing field"));
        assert!(Request::parse(&vec![b' '; MAX_REQUEST_BYTES + 1]).unwrap_err().contains("longer than"));
    }

    #[test]
    fn responses_round_trip_and_errors_become_the_tools_error() {
        let ok = Response::Ok(Answer { stdout: "a\nb\n".into(), exit: 1 });
        assert_eq!(Response::parse(ok.to_line().as_bytes()), Ok(ok.clone()));
        assert!(ok.to_line().starts_with(r#"{"status":"ok","#));
        let failed = Response::from(Err::<Answer, _>(anyhow::anyhow!("inner").context("outer")));
        assert_eq!(failed, Response::error("outer: inner"));
        let back: anyhow::Result<Answer> = failed.into();
        assert_eq!(format!("{:#}", back.unwrap_err()), "outer: inner");
    }
}
