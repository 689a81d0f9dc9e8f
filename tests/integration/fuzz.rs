//! Integration tests: arbitrary and mutated mail bytes through parse, classify, trust and decide, in the order
//! the daemon runs them (`email::parse` -> `Templates::classify` -> `Verifier::check` -> `fulfil::decide`).
//!
//! The fuzz target of the project, run in CI as a property test: no input panics, and no input is trusted
//! unless it is (a mutation of) an order really signed with a pinned key, in which case its order is the
//! signed one. `KEYPOST_FUZZ_CASES=100000 cargo test --test integration fuzz::` runs longer (default 256 cases
//! per property). Keys are pinned and DNS is off: nothing touches the network.
use std::sync::OnceLock;

use keypost::config::{Config, Problems};
use keypost::email;
use keypost::fulfil::{self, Decision, History};
use keypost::order::Order;
use keypost::template::{Outcome, Templates};
use keypost::trust::{TrustConfig, Verdict, Verifier};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use proptest::prelude::*;

const MAX_BYTES: u64 = 256 * 1024;

fn cases() -> u32 {
    std::env::var("KEYPOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Everything built once: templates, the verifier with the seed's key pinned, a small config, the corpus.
struct World {
    templates: Templates,
    verifier: Verifier,
    config: Config,
    runtime: tokio::runtime::Runtime,
    /// Every fixture's bytes (no fixture carries a signature that verifies).
    fixtures: Vec<Vec<u8>>,
    /// `fixtures/paypal/sale_plain_text.eml` really signed by `paypal.com`, and the order it yields.
    signed: (Vec<u8>, Order),
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let pinned = keypost::trust::PinnedKey {
            domain: "paypal.com".into(),
            selector: "fuzz".into(),
            public_key: data_encoding::BASE64.encode(&key.public_key()),
        };
        let trust = TrustConfig { dns: false, pinned_keys: vec![pinned], ..TrustConfig::default() };
        let templates = Templates::builtin().unwrap();
        let fixtures_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let seed = std::fs::read(fixtures_dir.join("paypal/sale_plain_text.eml")).unwrap();
        let headers = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"];
        let headers = headers.into_iter().chain(["Content-Transfer-Encoding"]);
        let signature =
            DkimSigner::from_key(key).domain("paypal.com").selector("fuzz").headers(headers).sign(&seed).unwrap();
        let signed = [signature.to_header().into_bytes(), seed].concat();
        let Outcome::Order { order, .. } = templates.classify(&email::parse(&signed, MAX_BYTES).unwrap()) else {
            panic!("the signed seed is not an order")
        };
        World {
            templates,
            verifier: Verifier::new(&trust).unwrap(),
            config: config(),
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            fixtures: fixtures(&fixtures_dir),
            signed: (signed, order),
        }
    })
}

fn config() -> Config {
    let text = r#"
[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO", "Acme Pro", "Acme Pro License"]
serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }
"#;
    keypost::config::parse(text, &mut Problems::new("fuzz.toml")).unwrap()
}

fn fixtures(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for provider in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(provider.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                all.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(!all.is_empty(), "no fixtures found");
    all
}

/// How far a message got, as the daemon would see it.
#[derive(Debug)]
enum Reached {
    Unparseable,
    NotAnOrder,
    Untrusted(Verdict),
    Decided(Box<Order>, Decision),
}

/// The daemon's steps for one message. `decide` also runs on untrusted orders (never acted on), to fuzz it.
fn pipeline(raw: &[u8]) -> Reached {
    let world = world();
    let Ok(email) = email::parse(raw, MAX_BYTES) else { return Reached::Unparseable };
    let Outcome::Order { order, .. } = world.templates.classify(&email) else { return Reached::NotAnOrder };
    let decision = fulfil::decide(&order, &History::default(), &world.config.products, &world.config.limits);
    let Some(provider) = world.templates.provider_trust(&order.provider) else { panic!("no trust for a template") };
    match world.runtime.block_on(world.verifier.check(raw, &email, &provider)) {
        Verdict::Trusted { .. } => Reached::Decided(Box::new(order), decision),
        other => Reached::Untrusted(other),
    }
}

/// The properties every outcome must have; `signed_seed` says whether the input derives from the signed order.
fn check_invariants(reached: &Reached, signed_seed: bool) -> Result<(), TestCaseError> {
    match reached {
        Reached::Untrusted(Verdict::Retry { reason }) => {
            prop_assert!(false, "a retry with DNS off: {reason}");
        }
        Reached::Untrusted(Verdict::Refused { reason }) => {
            prop_assert!(!reason.chars().any(keypost::order::is_forbidden_char), "unsanitised reason: {reason:?}");
        }
        Reached::Untrusted(Verdict::Trusted { .. }) => unreachable!("pipeline() puts trusted ones in Decided"),
        Reached::Decided(order, decision) => {
            prop_assert!(signed_seed, "an input without a valid signature was trusted: {order:?}");
            let seed = &world().signed.1;
            prop_assert_eq!((&order.provider, &order.id, order.kind), (&seed.provider, &seed.id, seed.kind));
            prop_assert_eq!((&order.buyer_email, &order.total), (&seed.buyer_email, &seed.total));
            let items = |o: &Order| o.items.iter().map(|i| (i.sku.clone(), i.quantity, i.unit_price.clone())).collect();
            let (found, expected): (Vec<_>, Vec<_>) = (items(order), items(seed));
            prop_assert_eq!(found, expected, "a trusted mutation changed the order's items");
            if let Decision::Issue { grants, .. } = decision {
                prop_assert!(!grants.is_empty());
                prop_assert!(grants.iter().all(|g| g.seats <= world().config.limits.max_seats));
            }
        }
        Reached::Unparseable | Reached::NotAnOrder => {}
    }
    Ok(())
}

/// Byte edits: overwrite, insert, or cut the rest off.
fn mutate(mut raw: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, op) in edits {
        if raw.is_empty() {
            break;
        }
        let i = at.index(raw.len());
        match op {
            0 => {
                if let Some(slot) = raw.get_mut(i) {
                    *slot = *byte;
                }
            }
            1 => raw.insert(i, *byte),
            _ => raw.truncate(i),
        }
    }
    raw
}

#[test]
fn the_signed_seed_is_trusted_and_issued_and_each_fixture_is_not_trusted() {
    let world = world();
    match pipeline(&world.signed.0) {
        Reached::Decided(_, Decision::Issue { .. }) => {}
        other => panic!("the signed seed did not reach an issue decision: {other:?}"),
    }
    for raw in &world.fixtures {
        check_invariants(&pipeline(raw), false).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_through_the_pipeline_never_panic_nor_get_trusted(
        raw in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        check_invariants(&pipeline(&raw), false)?;
    }

    #[test]
    fn mutated_fixtures_through_the_pipeline_never_panic_nor_get_trusted(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..24),
    ) {
        let raw = world().fixtures[pick.index(world().fixtures.len())].clone();
        check_invariants(&pipeline(&mutate(raw, &edits)), false)?;
    }

    #[test]
    fn a_mutated_signed_order_is_refused_or_yields_the_signed_order(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        check_invariants(&pipeline(&mutate(world().signed.0.clone(), &edits)), true)?;
    }
}
