//! What a vendor tool prints and its exit code: the same code whether the tool opened the state itself (no
//! daemon running) or the daemon answers over the control socket, so output and exit codes cannot drift apart.
//! Reads (`lookup`, `export`) are answered here from the store; the writes are carried out by the daemon
//! (`daemon/manual.rs`), which formats its result with the functions here. Nothing here changes the state.
use std::fmt::Write as _;

use super::protocol::{Answer, EXIT_ERROR, ExportFormat, Request};
use crate::fulfil::{FollowKind, LineRef};
use crate::store::{OrderRecord, ReplyState, SelfServiceRecord, Store};

/// Answers a request that only reads (`lookup`, `export`); `None` for one that changes the state.
pub fn read(store: &Store, request: &Request) -> Option<anyhow::Result<Answer>> {
    match request {
        Request::Lookup { query, json } => Some(lookup(store, query, *json)),
        // Answered here only when no daemon runs; a running one answers with its own facts (`server.rs`).
        Request::Status { json } => Some(status(store, None, *json)),
        Request::Export { format } => Some(export(store, *format)),
        Request::AsideList { json } => Some(aside_list(store, *json)),
        Request::PoolStatus { pools, json } => Some(pool_status(store, pools, *json)),
        // `aside show` reads the mailbox, which only the daemon's loop (or the tool itself) does.
        Request::Resend { .. }
        | Request::Revoke { .. }
        | Request::Issue { .. }
        | Request::Extend { .. }
        | Request::AsideShow { .. }
        | Request::AsideRelease { .. }
        | Request::AsideDrop { .. }
        | Request::PoolImport { .. } => None,
    }
}

/// Whether [`read`] answers `request` (it changes nothing): a tool opens the state only to read for it.
pub fn reads_only(request: &Request) -> bool {
    matches!(
        request,
        Request::Lookup { .. }
            | Request::Status { .. }
            | Request::Export { .. }
            | Request::AsideList { .. }
            | Request::PoolStatus { .. }
    )
}

/// One set-aside message, as `aside list --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AsideEntry {
    /// What `aside show|release|drop` take: the message's key in its source.
    pub id: String,
    pub source: String,
    /// When it was set aside (RFC 3339).
    pub at: String,
    pub reason: String,
}

/// `aside list`: every set-aside message the state knows, in source and key order.
pub fn aside_list(store: &Store, json: bool) -> anyhow::Result<Answer> {
    let entries: Vec<AsideEntry> = store
        .set_aside()?
        .into_iter()
        .map(|(source, key, record)| AsideEntry { id: key, source, at: rfc3339(record.at), reason: record.note })
        .collect();
    if json {
        return Ok(Answer::success(serde_json::to_string_pretty(&entries)? + "\n"));
    }
    if entries.is_empty() {
        return Ok(Answer::success("nothing is set aside\n".to_owned()));
    }
    let mut out = String::new();
    for entry in &entries {
        writeln!(out, "{}  {}  {}  {}", entry.id, entry.at, entry.source, entry.reason)?;
    }
    Ok(Answer::success(out))
}

/// `pool status`: each configured pool (product id, low-water mark), then any other product with codes.
pub fn pool_status(store: &Store, pools: &[(String, u32)], json: bool) -> anyhow::Result<Answer> {
    let mut stocks = Vec::new();
    let waiting = store.waiting_orders()?;
    let configured = pools.iter().map(|(product, mark)| (product.clone(), Some(*mark)));
    let others = store.pool_products()?.into_iter().filter(|p| !pools.iter().any(|(id, _)| id == p));
    for (product, low_water) in configured.chain(others.map(|p| (p, None))) {
        let counts = store.pool_counts(&product)?;
        let waiting = waiting.iter().filter(|w| w.grants.iter().any(|g| g.product == product)).count();
        stocks.push(crate::pool::Stock {
            available: counts.available,
            handed_out: counts.handed_out,
            revoked: counts.revoked,
            low_water,
            waiting,
            product,
        });
    }
    Ok(Answer::success(crate::pool::render_status(&stocks, json)))
}

/// What `aside show` prints: the record, then the message as it is in the set-aside folder.
pub fn aside_shown(entry: &AsideEntry, message: Option<&[u8]>) -> Answer {
    let mut out = format!(
        "id:     {}\nsource: {}\nset aside: {}\nreason: {}\n\n",
        entry.id, entry.source, entry.at, entry.reason
    );
    match message {
        Some(bytes) => out.push_str(&String::from_utf8_lossy(bytes)),
        None => out.push_str("(the message is no longer in the set-aside folder)\n"),
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Answer::success(out)
}

/// What `aside release` prints.
pub fn aside_released(id: &str) -> Answer {
    Answer::success(format!("{id} put back in the inbox; keypost reads it again on its next pass\n"))
}

/// What `aside drop` prints; `moved` says whether the message was still in the set-aside folder.
pub fn aside_dropped(id: &str, moved: bool) -> Answer {
    let where_ = if moved { "moved to the ignored folder" } else { "it was no longer in the set-aside folder" };
    Answer::success(format!("{id} filed as ignored ({where_})\n"))
}

/// What `resend` prints once its replies were queued and tried.
pub fn resent(queued: usize, sent: usize, failed: usize) -> Answer {
    Answer::success(format!("{queued} reply(ies) queued, {sent} sent, {failed} failed\n"))
}

/// What `revoke` prints.
pub fn revoked(count: usize, order: &str) -> Answer {
    Answer::success(format!("{count} license(s) of {order} revoked\n"))
}

/// What `issue` prints for the order (`provider/order_id`) it made.
pub fn issued(order: &str, sent: usize, failed: usize) -> Answer {
    Answer::success(format!("issued {order}: {sent} sent, {failed} failed\n"))
}

/// What `extend` prints for the extension (`provider/order_id (through DATE)`) it made.
pub fn extended(order: &str, sent: usize, failed: usize) -> Answer {
    Answer::success(format!(
        "extended as {order}: {sent} sent, {failed} failed
"
    ))
}

/// `status`, with the daemon's facts when it runs.
pub fn status(store: &Store, facts: Option<&crate::telemetry::Facts>, json: bool) -> anyhow::Result<Answer> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    super::status::answer(&super::status::gather(store, facts, now)?, json)
}

/// `lookup`: every order line found, with the rest of each licence chain it belongs to (a subscription's first
/// order and its renewals and extensions), and for a buyer address the lost-licence requests from it; exit 1 when
/// neither is found. `--json`: one object, [`LookupJson`].
pub fn lookup(store: &Store, query: &str, json: bool) -> anyhow::Result<Answer> {
    let mut found = store.lookup(query)?;
    for record in found.clone() {
        found.extend(chain_of(store, &record)?);
    }
    found.sort_by_key(OrderRecord::key);
    found.dedup_by_key(|record| record.key());
    // A buyer address also shows the lost-license requests from it (`[self_service]`), answered or not.
    let requests = store.self_service(query.trim(), 0)?;
    let exit = if found.is_empty() && requests.is_empty() { EXIT_ERROR } else { 0 };
    if json {
        let requests = requests.iter().map(LostLicenseRequest::from).collect();
        let value = LookupJson { orders: found, lost_license_requests: requests };
        return Ok(Answer { stdout: serde_json::to_string_pretty(&value)? + "\n", exit });
    }
    if exit != 0 {
        return Ok(Answer { stdout: format!("nothing found for {query:?}\n"), exit });
    }
    let mut stdout: String = found.iter().map(|record| describe(record) + "\n").collect();
    for request in &requests {
        stdout +=
            &format!("lost-license request {} from {}: {}\n", rfc3339(request.at), request.origin, request.outcome);
    }
    Ok(Answer::success(stdout))
}

/// `lookup --json`: what the text `lookup` shows, with stable field names (README "Status").
#[derive(Debug, serde::Serialize)]
pub struct LookupJson {
    /// The order lines, with the fields `export` writes.
    pub orders: Vec<OrderRecord>,
    /// The lost-licence requests from the address looked up, oldest first.
    pub lost_license_requests: Vec<LostLicenseRequest>,
}

/// One lost-licence request (`[self_service]`), as `lookup --json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct LostLicenseRequest {
    /// When it came (RFC 3339).
    pub at: String,
    /// The address on file it came from, where any resend went.
    pub address: String,
    /// The message it came in, `source/key`.
    pub origin: String,
    /// What was done: `resent`, `no order on file`, `rate limited`, ...
    pub outcome: String,
    /// Licenses resent for it.
    pub resent: u32,
}

impl From<&SelfServiceRecord> for LostLicenseRequest {
    fn from(record: &SelfServiceRecord) -> Self {
        Self {
            at: rfc3339(record.at),
            address: record.address.clone(),
            origin: record.origin.clone(),
            outcome: record.outcome.clone(),
            resent: record.resent,
        }
    }
}

/// The other lines of the licence chain `record` is in: its first order, that order's renewals and extensions.
fn chain_of(store: &Store, record: &OrderRecord) -> anyhow::Result<Vec<OrderRecord>> {
    let follows = record.license.as_ref().and_then(|l| l.grant.follows.as_ref());
    let root = match follows {
        Some(f) if f.how != FollowKind::Upgrade => f.of.clone(),
        _ => LineRef { provider: record.provider.clone(), order_id: record.order_id.clone(), line: record.line },
    };
    let mut chain = store.chain_members(&root)?;
    if let Some(first) = store.order_line(&root.provider, root.order_id.as_str(), root.line)? {
        chain.push(first);
    }
    Ok(chain)
}

fn describe(record: &OrderRecord) -> String {
    let license = record.license.as_ref().map_or_else(
        || "no license".to_owned(),
        |l| format!("{} x{} for {:?}: {}", l.grant.product, l.grant.seats, l.grant.licensee.as_str(), l.serial),
    );
    let buyer = record.buyer_email.as_ref().map_or("-", |b| b.as_str());
    let follows = record.license.as_ref().and_then(|l| l.grant.follows.as_ref());
    let follows = follows.map(|f| format!("; {} of {}", f.how.as_str(), f.of)).unwrap_or_default();
    // One purchase, two notifications: the payment they share, and which one answers it.
    let payment = match (&record.payment_id, &record.linked_to) {
        (Some(payment), Some(to)) => format!("; payment {payment}, one purchase with {to} (answered there)"),
        (Some(payment), None) => format!("; payment {payment}"),
        (None, Some(to)) => format!("; one purchase with {to} (answered there)"),
        (None, None) => String::new(),
    };
    format!(
        "{} {} {}: {license}; buyer {buyer}{payment}; reply {}; {}{follows}",
        record.label(),
        record.kind.as_str(),
        record.decision,
        reply_state(&record.reply),
        licence_status(record),
    )
}

/// Where an order line's licence stands: revoked, superseded, cancelled, valid through a day, or perpetual.
fn licence_status(record: &OrderRecord) -> String {
    let Some(license) = &record.license else {
        return match &record.revoked {
            Some(revoked) => format!("REVOKED ({})", revoked.reason),
            None => "no license".to_owned(),
        };
    };
    let through = license.expires.as_deref().map_or("perpetual".to_owned(), |d| format!("valid through {d}"));
    if let Some(revoked) = &record.revoked {
        return format!("REVOKED ({})", revoked.reason);
    }
    if let Some(superseded) = &record.chain.superseded {
        return format!("SUPERSEDED by {}", superseded.by);
    }
    match &record.chain.cancelled {
        Some(cancelled) => format!("{through}; subscription CANCELLED, ends after {}", cancelled.ends),
        None => through,
    }
}

fn reply_state(state: &ReplyState) -> String {
    match state {
        ReplyState::None => "none".to_owned(),
        ReplyState::Queued { .. } => "queued".to_owned(),
        ReplyState::Sent { at, .. } => format!("sent {}", rfc3339(*at)),
        ReplyState::Failed { reason, attempts } => format!("failed after {attempts} attempt(s): {reason}"),
        ReplyState::Cancelled { reason } => format!("cancelled: {reason}"),
    }
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

/// `export`: every order line, in key order (through the daemon: the whole answer at once).
pub fn export(store: &Store, format: ExportFormat) -> anyhow::Result<Answer> {
    let mut out = Vec::new();
    export_to(store, format, &mut out)?;
    Ok(Answer::success(String::from_utf8(out)?))
}

/// Order lines a reading thread hands over at a time, and how many such batches may wait: the export holds at
/// most ~1,300 records however many orders there are.
const EXPORT_BATCH: usize = 256;
const EXPORT_BATCHES_WAITING: usize = 4;

/// Writes the export row by row as the orders are read: memory does not grow with the number of orders.
/// Returns how many order lines were written. Reading and decoding the records (two thirds of the work) runs in
/// a thread of its own, a few batches ahead of this one, which formats each row in one reused buffer and writes
/// it whole. A failed write (a closed pipe) ends the reader too; a failed read ends the export with its error.
pub fn export_to(store: &Store, format: ExportFormat, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
    if format == ExportFormat::Csv {
        writeln!(out, "{}", CSV_HEADER.join(","))?;
    }
    std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel(EXPORT_BATCHES_WAITING);
        scope.spawn(move || {
            let mut batch = Vec::with_capacity(EXPORT_BATCH);
            for record in store.orders_iter() {
                let failed = record.is_err();
                batch.push(record);
                if batch.len() == EXPORT_BATCH || failed {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
                    // An error from `send`: the writer stopped (its output failed); nothing more to read for.
                    if batches.send(full).is_err() || failed {
                        return;
                    }
                }
            }
            let _ = batches.send(batch);
        });
        let mut rows = 0u64;
        let mut line = Vec::with_capacity(2048);
        for batch in received {
            for record in batch {
                let record = record?;
                line.clear();
                match format {
                    ExportFormat::Jsonl => serde_json::to_writer(&mut line, &record)?,
                    ExportFormat::Csv => csv_row(&record, &mut line),
                }
                line.push(b'\n');
                out.write_all(&line)?;
                rows += 1;
            }
        }
        Ok(rows)
    })
}

const CSV_HEADER: [&str; 18] = [
    "provider",
    "order_id",
    "line",
    "kind",
    "test",
    "received_at",
    "decision",
    "reason",
    "product",
    "seats",
    "licensee",
    "serial",
    "buyer_email",
    "reply",
    "revoked",
    "expires",
    "status",
    "follows",
];

/// One CSV row, the fields of [`CSV_HEADER`] in order, appended to `line`.
fn csv_row(r: &OrderRecord, line: &mut Vec<u8>) {
    let license = r.license.as_ref();
    let mut row = CsvRow { line, fields: 0 };
    row.field(&r.provider);
    row.field(r.order_id.as_str());
    row.field(&r.line.to_string());
    row.field(r.kind.as_str());
    row.field(if r.test { "true" } else { "false" });
    row.field(&rfc3339(r.received_at));
    row.field(&r.decision);
    row.field(&r.reason);
    row.field(license.map_or("", |l| l.grant.product.as_str()));
    row.field(&license.map(|l| l.grant.seats.to_string()).unwrap_or_default());
    row.field(license.map_or("", |l| l.grant.licensee.as_str()));
    row.field(license.map_or("", |l| l.serial.as_str()));
    row.field(r.buyer_email.as_ref().map_or("", |e| e.as_str()));
    row.field(&reply_state(&r.reply));
    row.field(r.revoked.as_ref().map_or("", |v| v.reason.as_str()));
    row.field(license.and_then(|l| l.expires.as_deref()).unwrap_or_default());
    row.field(&licence_status(r));
    row.field(
        &license
            .and_then(|l| l.grant.follows.as_ref())
            .map(|f| format!("{} of {}", f.how.as_str(), f.of))
            .unwrap_or_default(),
    );
}

/// A CSV line being written: each field quoted by [`push_csv_field`], comma-separated.
struct CsvRow<'a> {
    line: &'a mut Vec<u8>,
    fields: usize,
}

impl CsvRow<'_> {
    fn field(&mut self, value: &str) {
        if self.fields > 0 {
            self.line.push(b',');
        }
        self.fields += 1;
        push_csv_field(self.line, value);
    }
}

/// RFC 4180 quoting, appended to `out`; a leading `=+-@` is prefixed with `'` so a spreadsheet does not run a
/// buyer's name.
fn push_csv_field(out: &mut Vec<u8>, value: &str) {
    let defuse = value.starts_with(['=', '+', '-', '@']);
    let quote = value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push(b'"');
    }
    if defuse {
        out.push(b'\'');
    }
    if quote {
        for part in value.split('"').enumerate() {
            if part.0 > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(part.1.as_bytes());
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use crate::control::ExportFormat;
    use crate::store::{Change, SelfServiceRecord, Store};

    #[tokio::test]
    async fn lookup_json_lists_the_lost_license_requests_the_text_lookup_shows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        for (at, outcome, resent) in [(10, "resent 1 license(s) to the address on file", 1), (20, "rate limited", 0)] {
            let (address, origin, outcome) = ("jane@example.com".into(), format!("m/{at}"), outcome.into());
            change.self_service(&SelfServiceRecord { at, address, origin, outcome, resent });
        }
        store.commit_durable(change).await.unwrap();
        let text = super::lookup(&store, "Jane@Example.com", false).unwrap();
        assert_eq!((text.exit, text.stdout.lines().count()), (0, 2), "{}", text.stdout);
        let json = super::lookup(&store, "Jane@Example.com", true).unwrap();
        assert_eq!(json.exit, 0, "a request on file is something found");
        let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(value["orders"], serde_json::json!([]));
        let requests = value["lost_license_requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2, "{value:#}");
        assert_eq!(requests[0]["at"], "1970-01-01T00:00:10Z");
        assert_eq!(
            (&requests[0]["resent"], &requests[1]["outcome"]),
            (&serde_json::json!(1), &serde_json::json!("rate limited"))
        );
        assert_eq!(requests[1]["origin"], "m/20");
        let none = super::lookup(&store, "nobody@example.com", true).unwrap();
        assert_eq!(none.exit, super::EXIT_ERROR);
    }

    /// A state with `n` answered orders, `A-0000` to `A-{n-1}`.
    async fn state_with_orders(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        for i in 0..n {
            let record: crate::store::OrderRecord = serde_json::from_value(serde_json::json!({
                "provider": "paypal", "order_id": format!("A-{i:04}"), "line": 0, "kind": "sale",
                "received_at": 1_700_000_000 + i, "origin": "maildir/x", "buyer_email": format!("b{i}@example.com"),
                "decision": "issue", "reason": "",
                "reply": {"state": "sent", "message_id": format!("r{i}@v"), "at": 1_700_000_000 + i},
            }))
            .unwrap();
            change.put_order(&record);
        }
        store.commit_durable(change).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn an_export_larger_than_what_the_reader_may_hold_comes_out_whole_and_in_order() {
        let n = super::EXPORT_BATCH * (super::EXPORT_BATCHES_WAITING + 3) + 5;
        let (_dir, store) = state_with_orders(n).await;
        for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
            let mut out = Vec::new();
            assert_eq!(super::export_to(&store, format, &mut out).unwrap(), n as u64);
            let text = String::from_utf8(out).unwrap();
            let ids: Vec<&str> = text.lines().filter_map(|l| l.split("A-").nth(1)).map(|r| &r[..4]).collect();
            let expected: Vec<String> = (0..n).map(|i| format!("{i:04}")).collect();
            assert_eq!(ids, expected, "{format:?}");
        }
    }

    /// Takes `left` bytes, then fails like a pipe whose reader went away.
    struct ClosingPipe {
        left: usize,
    }

    impl std::io::Write for ClosingPipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.left < buf.len() {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.left -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_export_into_a_pipe_that_closes_stops_with_its_error_and_its_reader_stops_too() {
        let (_dir, store) = state_with_orders(super::EXPORT_BATCH * (super::EXPORT_BATCHES_WAITING + 3)).await;
        let err = super::export_to(&store, ExportFormat::Jsonl, &mut ClosingPipe { left: 10_000 }).unwrap_err();
        let io = err.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        assert_eq!(io, Some(std::io::ErrorKind::BrokenPipe), "{err:#}");
    }

    fn csv_field(value: &str) -> String {
        let mut out = Vec::new();
        super::push_csv_field(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("Åsa, \"Bo\""), "\"Åsa, \"\"Bo\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("=SUM(A1,\"x\")"), "\"'=SUM(A1,\"\"x\"\")\"");
        assert_eq!(csv_field(""), "");
    }
}
