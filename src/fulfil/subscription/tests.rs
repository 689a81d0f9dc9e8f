//! Table tests for renewals, cancellations and upgrades.
use time::macros::date;

use super::*;
use crate::config::{Config, Problems, parse};
use crate::fulfil::{KnownLine, decide as decide_any};
use crate::order::{LineItem, Sku};

const CONFIG: &str = r#"
[[product]]
id = "acme"
name = "Acme"
skus = ["ACME-1Y", "ACME-PRO-UPG", "ACME-STD"]
[product.serial]
product_code = 7
key = { inline = "00112233445566778899aabbccddeeff" }
editions = ["standard", "pro"]
[product.serial.terms]
"ACME-1Y" = { edition = "standard", term = "365d" }
"ACME-STD" = { edition = "standard" }
"ACME-PRO-UPG" = { edition = "pro", term = "365d", upgrade_from = "standard" }
"#;

fn config() -> Config {
    let mut problems = Problems::new("test.toml");
    let config = parse(CONFIG, &mut problems).unwrap();
    config.validate(&mut problems);
    assert!(!problems.has_errors(), "{:?}", problems.items());
    config
}

fn decide(order: &Order, history: &History) -> Decision {
    let config = config();
    decide_any(order, history, &config.products, &config.limits)
}

fn order(kind: OrderKind, id: &str) -> Order {
    Order {
        provider: "paddle".into(),
        kind,
        id: OrderId::parse(id).unwrap(),
        test: false,
        licensee: None,
        buyer_name: None,
        buyer_email: Some(BuyerEmail::parse("jo@example.com").unwrap()),
        items: Vec::new(),
        total: None,
        subscription: Some(OrderId::parse("SUB-1").unwrap()),
        period_end: None,
        payment_id: None,
        sequence: None,
    }
}

fn root() -> LineRef {
    LineRef { provider: "paddle".into(), order_id: OrderId::parse("100").unwrap(), line: 0 }
}

fn chain(expires: Option<time::Date>) -> ChainView {
    ChainView {
        root: root(),
        product: "acme".into(),
        sku: Some("ACME-1Y".into()),
        seats: 2,
        licensee: Licensee::parse("Jo Example").unwrap(),
        buyer_email: BuyerEmail::parse("jo@example.com").ok(),
        expires,
        revoked: false,
        cancelled: false,
    }
}

fn with_chain(chain: ChainView) -> History {
    History { chain: Some(chain), ..History::default() }
}

fn issued_grant(decision: &Decision) -> &Grant {
    match decision {
        Decision::Issue { grants, .. } => grants.first().unwrap(),
        other => panic!("not issued: {other:?}"),
    }
}

#[test]
fn a_renewal_extends_by_the_skus_term_from_the_previous_expiry_for_the_same_licensee() {
    let decision = decide(&order(OrderKind::Renewal, "101"), &with_chain(chain(Some(date!(2026 - 12 - 01)))));
    let grant = issued_grant(&decision);
    assert_eq!(grant.expires.as_deref(), Some("2027-12-01"));
    assert_eq!((grant.licensee.as_str(), grant.seats, grant.sku.as_deref()), ("Jo Example", 2, Some("ACME-1Y")));
    assert_eq!(grant.follows, Some(Follows { how: FollowKind::Renewal, of: root() }));
}

#[test]
fn a_renewal_that_carries_its_period_end_runs_through_that_day() {
    let mut renewal = order(OrderKind::Renewal, "101");
    renewal.period_end = Some("2027-06-30".into());
    let decision = decide(&renewal, &with_chain(chain(Some(date!(2026 - 12 - 01)))));
    assert_eq!(issued_grant(&decision).expires.as_deref(), Some("2027-06-30"));
}

#[test]
fn a_renewal_seen_before_or_already_paid_for_extends_nothing() {
    let recorded = History {
        lines: vec![KnownLine { line: 0, licensed: true, revoked: false }],
        ..with_chain(chain(Some(date!(2026 - 12 - 01))))
    };
    assert_eq!(decide(&order(OrderKind::Renewal, "101"), &recorded).action(), "skip");
    let mut late = order(OrderKind::Renewal, "102");
    late.period_end = Some("2026-11-01".into());
    let decision = decide(&late, &with_chain(chain(Some(date!(2026 - 12 - 01)))));
    assert_eq!(decision.reason(), "the licence of paddle/100#0 already runs through 2026-12-01");
}

#[test]
fn a_renewal_without_a_licence_to_extend_goes_to_review_with_the_reason() {
    let unknown = History {
        chain_problem: Some("no first order with subscription SUB-1 is recorded".into()),
        ..History::default()
    };
    let cases = [
        (
            unknown,
            "renewal 101 of a subscription keypost cannot tie to a licence: no first order with subscription SUB-1 is recorded",
        ),
        (
            with_chain(ChainView { revoked: true, ..chain(Some(date!(2026 - 12 - 01))) }),
            "renewal of paddle/100#0, whose licence is revoked",
        ),
        (with_chain(chain(None)), "renewal of paddle/100#0, whose licence has no expiry (perpetual)"),
        (
            with_chain(ChainView { sku: Some("ACME-STD".into()), ..chain(Some(date!(2026 - 12 - 01))) }),
            "renewal of paddle/100#0: its SKU has no term in [product.serial.terms]",
        ),
    ];
    for (history, reason) in cases {
        let decision = decide(&order(OrderKind::Renewal, "101"), &history);
        assert_eq!((decision.action(), decision.reason()), ("review", reason.to_owned()));
    }
}

#[test]
fn a_cancellation_ends_a_licence_with_a_term_at_its_expiry_and_revokes_a_perpetual_one_at_once() {
    let cancel = order(OrderKind::Cancellation, "100");
    let decision = decide(&cancel, &with_chain(chain(Some(date!(2026 - 12 - 01)))));
    assert_eq!(decision, Decision::Cancel { of: root(), ends: "2026-12-01".into() });
    let again = decide(&cancel, &with_chain(ChainView { cancelled: true, ..chain(Some(date!(2026 - 12 - 01))) }));
    assert_eq!(again.action(), "skip");
    let perpetual =
        History { lines: vec![KnownLine { line: 0, licensed: true, revoked: false }], ..with_chain(chain(None)) };
    assert_eq!(
        decide(&cancel, &perpetual),
        Decision::Revoke { lines: vec![0], reason: "cancellation".into(), linked: None }
    );
}

#[test]
fn refunds_and_chargebacks_still_revoke_a_subscriptions_licence_at_once() {
    for kind in [OrderKind::Refund, OrderKind::Chargeback] {
        let history = History {
            lines: vec![KnownLine { line: 0, licensed: true, revoked: false }],
            ..with_chain(chain(Some(date!(2026 - 12 - 01))))
        };
        assert_eq!(decide(&order(kind, "100"), &history).action(), "revoke");
    }
}

#[test]
fn a_first_payment_that_names_its_period_end_is_valid_through_it_and_a_perpetual_sku_ignores_it() {
    let sale = |sku: &str| {
        let item = LineItem { sku: Some(Sku::parse(sku).unwrap()), product_name: None, quantity: 1, unit_price: None };
        let licensee = Licensee::parse("Jo Example").ok();
        Order { items: vec![item], licensee, period_end: Some("2027-11-03".into()), ..order(OrderKind::Sale, "100") }
    };
    assert_eq!(issued_grant(&decide(&sale("ACME-1Y"), &History::default())).expires.as_deref(), Some("2027-11-03"));
    assert_eq!(issued_grant(&decide(&sale("ACME-STD"), &History::default())).expires, None);
}

fn upgrade_sale() -> Order {
    let item =
        LineItem { sku: Some(Sku::parse("ACME-PRO-UPG").unwrap()), product_name: None, quantity: 1, unit_price: None };
    Order {
        kind: OrderKind::Sale,
        items: vec![item],
        licensee: Licensee::parse("Someone Else").ok(),
        subscription: None,
        ..order(OrderKind::Sale, "200")
    }
}

fn held(order_id: &str, sku: &str) -> HeldLicence {
    HeldLicence {
        line: LineRef { provider: "paddle".into(), order_id: OrderId::parse(order_id).unwrap(), line: 0 },
        product: "acme".into(),
        sku: Some(sku.into()),
        licensee: Licensee::parse("Jo Example").unwrap(),
    }
}

#[test]
fn an_upgrade_replaces_the_buyers_licence_of_the_edition_it_upgrades_from_keeping_its_licensee() {
    let history = History { held: vec![held("90", "ACME-STD"), held("95", "ACME-PRO-UPG")], ..History::default() };
    let decision = decide(&upgrade_sale(), &history);
    let grant = issued_grant(&decision);
    assert_eq!(grant.follows, Some(Follows { how: FollowKind::Upgrade, of: held("90", "ACME-STD").line }));
    assert_eq!(grant.licensee.as_str(), "Jo Example");
}

#[test]
fn an_upgrade_with_no_licence_to_upgrade_on_file_goes_to_review() {
    let history = History { held: vec![held("95", "ACME-PRO-UPG")], ..History::default() };
    let decision = decide(&upgrade_sale(), &history);
    assert_eq!(
        (decision.action(), decision.reason()),
        ("review", "upgrade from standard of acme: the buyer has no such licence on file".to_owned())
    );
}
