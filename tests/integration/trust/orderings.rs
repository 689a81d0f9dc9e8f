//! Property tests over header orderings: a genuine RSA-signed order for this vendor, with extra copies of From,
//! To, Cc and Subject inserted at any position of its header section (above the signature, between signed
//! headers, just above the body), is refused on the DKIM path and on the Authentication-Results path alike.
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;

const VENDOR: &str = "sales@vendor.example";

/// Copies an attacker could add: the same value again or a different one.
const EXTRAS: [&str; 8] = [
    "From: PayPal <service@paypal.com>",
    "From: billing@paypal.com",
    "To: sales@vendor.example",
    "To: seller@other.example",
    "Cc: sales@vendor.example",
    "Cc: seller@other.example",
    "Subject: Notification of payment received",
    "Subject: Refund",
];

struct Fixture {
    /// The genuine order, signed.
    signed: String,
    /// Has the key: the DKIM path decides.
    dkim: Verifier,
    /// Has no key: the vendor's Authentication-Results decide.
    results: Verifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let paypal_key = signer("paypal.com");
        let order = order_email(FROM, "8AB12345", "49.00").replace("To: vendor@example.org", &format!("To: {VENDOR}"));
        let bound = |signers: &[&TestSigner]| {
            Verifier::new(&TrustConfig { recipients: vec![VENDOR.into()], ..config(signers) }).unwrap()
        };
        Fixture { signed: paypal_key.sign(&order), dkim: bound(&[&paypal_key]), results: bound(&[]) }
    })
}

/// The header section as whole fields (folded lines kept with their field), and the rest from the blank line on.
fn fields(message: &str) -> (Vec<String>, String) {
    let (head, body) = message.split_once("\r\n\r\n").unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(field) if line.starts_with([' ', '\t']) => *field = format!("{field}\r\n{line}"),
            _ => fields.push(line.to_owned()),
        }
    }
    (fields, format!("\r\n{body}"))
}

/// `signed` with each `(extra, position)` inserted, positions taken modulo the number of gaps.
fn with_extras(signed: &str, extras: &[(usize, usize)]) -> String {
    let (mut fields, rest) = fields(signed);
    for (extra, position) in extras {
        let at = position % (fields.len() + 1);
        fields.insert(at, EXTRAS[extra % EXTRAS.len()].to_owned());
    }
    format!("{}\r\n{rest}", fields.join("\r\n"))
}

fn results_on_top(message: &str) -> String {
    with_results(&["mx.vendor.example; dkim=pass header.d=paypal.com header.s=s1"], message)
}

fn verdicts(raw: &str) -> (Verdict, Verdict) {
    let fixture = fixture();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        (
            check(&fixture.dkim, raw, &parsed(FROM)).await,
            check(&fixture.results, &results_on_top(raw), &parsed(FROM)).await,
        )
    })
}

#[test]
fn the_genuine_order_without_extra_headers_is_trusted_on_both_paths() {
    let (dkim, results) = verdicts(&fixture().signed);
    assert_eq!(trusted_by(&dkim), "dkim d=paypal.com");
    assert!(
        matches!(&results, Verdict::Trusted { method, .. } if method.starts_with("authentication-results")),
        "{results:?}"
    );
    // The splitting and joining is lossless.
    assert_eq!(with_extras(&fixture().signed, &[]), fixture().signed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn extra_from_to_cc_or_subject_copies_at_any_position_are_refused_on_both_paths(
        extras in prop::collection::vec((0..EXTRAS.len(), 0usize..32), 1..4),
    ) {
        let raw = with_extras(&fixture().signed, &extras);
        let (dkim, results) = verdicts(&raw);
        prop_assert!(matches!(dkim, Verdict::Refused { .. }), "DKIM path trusted {raw}: {dkim:?}");
        prop_assert!(matches!(results, Verdict::Refused { .. }), "A-R path trusted {raw}: {results:?}");
    }
}
