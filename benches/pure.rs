//! Speed of the pure hot paths, without a mail server: serial make and verify for both schemes, and a provider
//! email through `email::parse` + `Templates::classify`. Run: `cargo bench --bench pure`. Prints ns per operation
//! (the median of several timed rounds) so figures can be compared between commits; it asserts nothing.
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use keypost::serial::{Maker, SerialConfig};
use keypost::template::Templates;

const ROUNDS: usize = 7;

/// Median time per call of `op` over `ROUNDS` rounds of `iterations` calls.
fn time_per_op(iterations: u32, mut op: impl FnMut()) -> Duration {
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                op();
            }
            start.elapsed() / iterations
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn maker(toml: &str) -> Maker {
    let config: SerialConfig = toml::from_str(toml).expect("bench serial config");
    config.maker(Path::new(".")).expect("bench maker")
}

fn report(name: &str, per_op: Duration) {
    let per_second = 1.0 / per_op.as_secs_f64().max(1e-12);
    println!("{name:<58} {:>10} ns/op {:>12.0} op/s", per_op.as_nanos(), per_second);
}

fn bench_serials() {
    let issued = time::macros::date!(2026 - 11 - 22);
    let key = "key = { inline = \"000102030405060708090a0b0c0d0e0f\" }";
    let block = maker(&format!("product_code = 7\n{key}"));
    let cbc = maker(&format!("scheme = \"name-cbc\"\ngroup = 5\n{key}"));
    let name = "  José   Müller-Lüdenscheidt ";
    for (scheme, maker) in [("block", &block), ("name-cbc", &cbc)] {
        let serial = maker.make(name, 3, issued).expect("bench serial");
        report(
            &format!("serial make ({scheme})"),
            time_per_op(20_000, || drop(black_box(maker.make(name, 3, issued)))),
        );
        report(
            &format!("serial verify ({scheme})"),
            time_per_op(20_000, || drop(black_box(maker.verify(name, &serial)))),
        );
    }
}

fn bench_parse_and_classify() {
    let templates = Templates::builtin().expect("built-in templates");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let cases = [
        "paypal/sale_plain_text.eml",
        "paypal/sale_german_html_latin1_qp.eml",
        "fastspring/sale_several_items_base64.eml",
        "paypal/forwarded_gmail.eml",
    ];
    for case in cases {
        let raw = std::fs::read(root.join(case)).expect("bench fixture");
        let max = templates.max_message_bytes();
        report(
            &format!("parse + classify {case}"),
            time_per_op(2_000, || {
                if let Ok(email) = keypost::email::parse(&raw, max) {
                    black_box(templates.classify(&email));
                }
            }),
        );
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent; keep that fast.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    bench_serials();
    bench_parse_and_classify();
}
