//! Benchmark, not a test: keypost with a million orders in its state. Fills a state (through the store's own
//! API, with what the daemon records per answered order: the order line with its license and sent reply, the
//! Message-ID and content-hash indexes, the source message's record and two audit lines), then measures:
//! bytes per order on disk; `keypost run` from exec to "keypost is running." (a Maildir source and a files
//! outbox, so no server is involved); `keypost lookup EMAIL` as a process and `Store::lookup` in-process; the
//! rate-limit check (`Store::recent_counts`) with 10,000 orders in the last hour; `keypost export` to /dev/null
//! (rows/s and the process's peak RSS, `VmHWM`).
//! Run with `cargo bench --bench million`; `KEYPOST_BENCH_STATE_ORDERS` changes the size (default 1,000,000).
//! The state is built in a temp dir under `$TMPDIR` (about 2.9 GB at the default size) and removed at the end;
//! `KEYPOST_BENCH_DIR=PATH` builds it there instead and keeps it, and a later run with the same PATH measures
//! the kept state again without filling it (its size and clock come from `PATH/filled`), for profiling.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keypost::fulfil::Grant;
use keypost::mailbox::Disposition;
use keypost::order::{BuyerEmail, Licensee, OrderId, OrderKind};
use keypost::store::{Change, License, OrderRecord, ReplyState, SourceRecord, Store};

const BIN: &str = env!("CARGO_BIN_EXE_keypost");
/// Orders in the last hour (a backlog drain): what a rate-limit check has to count.
const LAST_HOUR: u64 = 10_000;

const CONFIG: &str = r#"
[state]
dir = "state"

[mailbox.maildir]
path = "mail"
poll_interval_secs = 1

[outbox.files]
dir = "out"

[reply]
from = "Acme Licenses <licenses@acme.example>"
vendor = "vendor@acme.example"
vendor_copy = "none"

[trust]
dns = false
sender_only = ["paypal"]

[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO"]
serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }
"#;

fn email(i: u64) -> String {
    format!("buyer{i}@example.com")
}

/// Order `i` of `n`: the last [`LAST_HOUR`] in the hour before `now`, the others 90 s apart before that.
fn received_at(i: u64, n: u64, now: i64) -> i64 {
    let from_end = n - i;
    if from_end <= LAST_HOUR { now - (from_end * 3600 / LAST_HOUR) as i64 } else { now - 3600 - (from_end * 90) as i64 }
}

/// What the daemon commits for one answered order (decision and send folded into one change here).
fn order_change(i: u64, n: u64, now: i64) -> Change {
    let at = received_at(i, n, now);
    let order_id = format!("5TY{i:014}");
    let message_id = format!("pp-{i}@paypal.com");
    let record = OrderRecord {
        provider: "paypal".into(),
        order_id: OrderId::parse(&order_id).unwrap(),
        line: 0,
        kind: OrderKind::Sale,
        test: false,
        received_at: at,
        origin: format!("imap:orders@mail.example/INBOX/1796017430:{i}"),
        message_id: Some(message_id.clone()),
        buyer_email: Some(BuyerEmail::parse(&email(i)).unwrap()),
        buyer_name: Some(format!("Buyer Number {i}")),
        decision: "issue".into(),
        reason: String::new(),
        license: Some(License {
            grant: Grant {
                line: 0,
                product: "pro".into(),
                seats: 1,
                licensee: Licensee::parse(&format!("Buyer Number {i}")).unwrap(),
                sku: Some("ACME-PRO".into()),
                expires: None,
                follows: None,
            },
            serial: "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY-Z2345-67ABC".into(),
            issued: "2026-11-30".into(),
            expires: None,
        }),
        reply: ReplyState::Sent { message_id: format!("keypost.reply.{i:024x}@acme.example"), at },
        revoked: None,
        resends: 0,
        amount: None,
        payment_id: None,
        linked_to: None,
        chain: Default::default(),
    };
    let mut change = Change::new();
    change.put_order(&record);
    change.index_email(
        Some(&message_id),
        &format!("{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
        "paypal",
        &order_id,
    );
    let source = SourceRecord { disposition: Disposition::Done, at, note: "fulfilled".into(), sha256: None };
    change.put_source("imap:orders@mail.example/INBOX", &format!("1796017430:{i}"), &source);
    change.audit(at, "decided", &record.label(), "issue: 1 license(s)");
    change.audit(at, "sent", &record.label(), "reply sent");
    change
}

fn fill(state: &Path, n: u64, now: i64) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = Store::open(state).unwrap();
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        runtime.block_on(store.commit_durable_all((i..end).map(|k| order_change(k, n, now)))).unwrap();
        i = end;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("fill: {n} orders in {secs:.1} s ({:.0}/s, batches of 1,000, one flush each)", n as f64 / secs);
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { disk_bytes(&entry.path()) } else { meta.len() };
    }
    total
}

fn keypost(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).arg("--config").arg(dir.join("keypost.toml")).args(args);
    command
}

/// `keypost run` from exec until it logs that it is running; then SIGTERM. Returns seconds to ready.
fn start_up(dir: &Path) -> f64 {
    start_up_and_stop(dir, "-TERM")
}

/// The same, stopped with `signal` (`-KILL`: the next start finds a state not closed cleanly).
fn start_up_and_stop(dir: &Path, signal: &str) -> f64 {
    let log = dir.join("run.log");
    let started = Instant::now();
    let mut child =
        keypost(dir, &["run"]).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let ready = loop {
        if std::fs::read_to_string(&log).unwrap_or_default().contains("keypost is running.") {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never ready:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(child.try_wait().unwrap().is_none(), "exited:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(2));
    };
    Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
    ready
}

/// A tool's run: wall seconds, peak RSS in KiB (`VmHWM`), CPU seconds (user + system).
struct Run {
    secs: f64,
    hwm_kib: u64,
    cpu_secs: f64,
}

/// Runs a tool to completion with stdout to /dev/null, sampling /proc every 5 ms (the last sample is of the
/// exited, not yet reaped process, so its peak RSS and CPU time are final).
fn timed(mut command: Command) -> Run {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    let proc_dir = format!("/proc/{}", child.id());
    let (mut hwm_kib, mut cpu_secs) = (0, 0.0);
    loop {
        if let Some(kib) = std::fs::read_to_string(format!("{proc_dir}/status")).ok().and_then(|s| vm_hwm(&s)) {
            hwm_kib = hwm_kib.max(kib);
        }
        if let Some(secs) = std::fs::read_to_string(format!("{proc_dir}/stat")).ok().and_then(|s| cpu_time(&s)) {
            cpu_secs = secs;
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{command:?} failed: {status}");
            return Run { secs: started.elapsed().as_secs_f64(), hwm_kib, cpu_secs };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// utime + stime from `/proc/PID/stat` (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_time(stat: &str) -> Option<f64> {
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut n: u64 = std::env::var("KEYPOST_BENCH_STATE_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_temp, dir) = match std::env::var_os("KEYPOST_BENCH_DIR") {
        Some(kept) => (None, std::path::PathBuf::from(kept)),
        None => {
            let temp = tempfile::tempdir().unwrap();
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
    };
    let dir = dir.as_path();
    println!("load average at the start: {}", load_average());
    std::fs::create_dir_all(dir.join("mail/new")).unwrap();
    std::fs::write(dir.join("keypost.toml"), CONFIG).unwrap();
    let state = dir.join("state");
    let filled = dir.join("filled");
    match std::fs::read_to_string(&filled) {
        Ok(kept) => {
            let mut fields = kept.split_whitespace().map(|f| f.parse().unwrap());
            (n, now) = (fields.next().unwrap() as u64, fields.next().unwrap());
            println!("fill: kept state of {n} orders in {}", dir.display());
        }
        Err(_) => {
            fill(&state, n, now);
            std::fs::write(&filled, format!("{n} {now}\n")).unwrap();
        }
    }
    let bytes = disk_bytes(&state);
    println!("disk: {bytes} bytes in the state folder, {:.0} bytes per order", bytes as f64 / n as f64);

    // In-process reads on the open store.
    let store = Store::open(&state).unwrap();
    let target = email(n / 2);
    let t = Instant::now();
    let found = store.lookup(&target).unwrap();
    let lookup_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(found.len(), 1, "lookup {target}");
    let t = Instant::now();
    let by_id = store.lookup(&format!("5TY{:014}", n / 3)).unwrap();
    let by_id_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(by_id.len(), 1);
    let buyer = BuyerEmail::parse(&email(n - 1)).unwrap();
    let t = Instant::now();
    let (provider_count, buyer_count) = store.recent_counts("paypal", Some(&buyer), now - 3600).unwrap();
    let rate_us = t.elapsed().as_secs_f64() * 1e6;
    assert!(provider_count >= LAST_HOUR as u32 - 1 && buyer_count == 1, "{provider_count} {buyer_count}");
    println!(
        "in-process: lookup EMAIL {lookup_ms:.2} ms, lookup ORDER-ID {by_id_ms:.2} ms, rate-limit check {rate_us:.0} us \
         ({provider_count} orders from the provider in the window)"
    );
    drop(store);

    let ready = start_up(dir);
    println!("start-up: `keypost run` ready after {:.3} s", ready);
    start_up_and_stop(dir, "-KILL");
    let recovered = start_up(dir);
    println!("recovery: `keypost run` ready after {recovered:.3} s on a state left by SIGKILL (redb repairs it)");
    let mut lookups: Vec<f64> = (0..7).map(|_| timed(keypost(dir, &["lookup", &target])).secs * 1e3).collect();
    lookups.sort_by(f64::total_cmp);
    println!(
        "lookup: `keypost lookup EMAIL` median {:.1} ms of 7 (min {:.1}, max {:.1}; process, including opening the state)",
        lookups[3], lookups[0], lookups[6]
    );
    for format in ["jsonl", "csv"] {
        let run = timed(keypost(dir, &["export", "--format", format]));
        println!(
            "export {format}: {n} rows in {:.2} s = {:.0} rows/s, peak RSS {:.1} MiB; CPU {:.2} s = {:.0} rows per CPU-second",
            run.secs,
            n as f64 / run.secs,
            run.hwm_kib as f64 / 1024.0,
            run.cpu_secs,
            n as f64 / run.cpu_secs,
        );
    }
    println!("load average at the end: {}", load_average());
}
