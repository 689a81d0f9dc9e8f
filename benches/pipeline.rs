//! Benchmark, not a test: the built `keypost run` against a private Dovecot and a recording aiosmtpd sink on
//! loopback, with signed PayPal orders (the integration tests' harness in `tests/integration/support`).
//! (a) Latency from APPEND to the SMTP server accepting the reply while keypost idles in IDLE: one order at a
//! time, the sink's arrival time minus the time the APPEND began (same machine clock), p50 and p95.
//! (b) Drain throughput for a backlog present before start, and keypost's peak RSS (`VmHWM`).
//! Run with `cargo bench --bench pipeline` (release build); `KEYPOST_BENCH_ORDERS` and
//! `KEYPOST_BENCH_LATENCY_ORDERS` change the two sizes (default 10,000 and 60).
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../tests/integration"]
mod integration {
    // The integration tests use all of it; this benchmark only the spawners and the keypost harness.
    #[allow(unused_imports)]
    pub mod support;
}

use integration::support::binary::{VENDOR, config};
use integration::support::{Dovecot, Keypost, Orders, RecordingSink, TestImap, done_folder};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn wait_log(keypost: &Keypost, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !keypost.log().contains(needle) {
        assert!(Instant::now() < deadline, "keypost did not log {needle:?}:\n{}", keypost.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn done_count(client: &mut TestImap) -> u32 {
    client.folder_counts().await.get(&done_folder()).copied().unwrap_or(0)
}

/// (a): APPEND one order, wait for its reply at the sink and for its message to be filed, let keypost go back
/// to IDLE, repeat. Returns the latencies in seconds.
async fn latency(orders: &Orders, count: usize) -> Vec<f64> {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, orders, ""));
    keypost.start();
    wait_log(&keypost, "keypost is running.", Duration::from_secs(20));
    let mut client = dovecot.client().await;
    let mut appended_at = Vec::with_capacity(count);
    for n in 0..count {
        // Settled and back in IDLE (Dovecot's own IDLE push delay is part of what is measured).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mail = orders.mail(n);
        appended_at.push(now_secs());
        client.append("INBOX", &mail).await;
        let got = sink.wait_count(Duration::from_secs(30), |c| c > n);
        assert!(got > n, "no reply for order {n} within 30 s:\n{}", keypost.log());
        let deadline = Instant::now() + Duration::from_secs(10);
        while done_count(&mut client).await <= n as u32 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    keypost.stop();
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), count, "one reply per order");
    let idle_seen = keypost.log().lines().any(|line| line.contains("IMAP connected.") && line.contains("idle=true"));
    assert!(idle_seen, "the server must offer IDLE:\n{}", keypost.log());
    arrivals.iter().zip(&appended_at).map(|(arrival, at)| arrival.at - at).collect()
}

struct Drain {
    orders: usize,
    append_secs: f64,
    drain_secs: f64,
    peak_rss_kib: u64,
}

/// (b): `count` orders in INBOX, then keypost starts; until the sink accepted the last reply.
async fn drain(orders: &Orders, count: usize) -> Drain {
    let dovecot = Dovecot::start();
    let sink = RecordingSink::start(VENDOR);
    let mut client = dovecot.client().await;
    let appending = Instant::now();
    for n in 0..count {
        client.append("INBOX", &orders.mail(n)).await;
    }
    let append_secs = appending.elapsed().as_secs_f64();
    let mut keypost = Keypost::new(&config(dovecot.port, sink.port, orders, ""));
    let started = now_secs();
    keypost.start();
    let mut peak_rss_kib = 0;
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    while sink.count() < count {
        assert!(Instant::now() < deadline, "drain took over 30 minutes:\n{}", keypost.log());
        peak_rss_kib = peak_rss_kib.max(keypost.peak_rss_kib().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    peak_rss_kib = peak_rss_kib.max(keypost.peak_rss_kib().unwrap_or(0));
    keypost.stop();
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), count, "one reply per order");
    let last = arrivals.iter().map(|a| a.at).fold(0.0, f64::max);
    Drain { orders: count, append_secs, drain_secs: last - started, peak_rss_kib }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful either: run as asked.
    let latency_orders = env_usize("KEYPOST_BENCH_LATENCY_ORDERS", 60);
    let drain_orders = env_usize("KEYPOST_BENCH_ORDERS", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let orders = Orders::new();

    let mut latencies = runtime.block_on(latency(&orders, latency_orders));
    latencies.sort_by(f64::total_cmp);
    let ms = |secs: f64| secs * 1000.0;
    let drain = runtime.block_on(drain(&orders, drain_orders));

    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("\nkeypost pipeline benchmark ({cores} cores; Dovecot IMAP + aiosmtpd SMTP on 127.0.0.1)");
    println!(
        "(a) APPEND -> reply accepted by SMTP, keypost in IDLE, {} orders one at a time:\n    \
         p50 {:.0} ms, p95 {:.0} ms, min {:.0} ms, max {:.0} ms (Dovecot delays IDLE pushes by ~0.5 s)",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1]),
    );
    println!(
        "(b) drain of {} orders present before start: {:.1} s from spawn to the last reply accepted, \
         {:.0} orders/s; keypost peak RSS {:.1} MiB (backlog APPENDed in {:.1} s)",
        drain.orders,
        drain.drain_secs,
        drain.orders as f64 / drain.drain_secs,
        drain.peak_rss_kib as f64 / 1024.0,
        drain.append_secs,
    );
}
