//! Table tests for [`super::decide`].
use super::*;
use crate::config::{Config, Problems, parse};
use crate::order::{BuyerEmail, LineItem, Money, OrderId, Sku};

/// The products every case decides against; `serial` is whatever the serial module needs for a demo key.
pub(crate) const PRODUCTS_TOML: &str = r#"
[[product]]
id = "pro"
name = "Acme Pro"
skus = ["ACME-PRO", "acme-pro-2"]
serial = { scheme = "name-cbc", key = { inline = "0123456789abcdef0123456789abcdef" } }
min_price = [{ currency = "EUR", amount = "9.00" }]

[[product]]
id = "lite"
name = "Acme Lite"
serial = { scheme = "name-cbc", key = { inline = "fedcba9876543210fedcba9876543210" } }
"#;

/// A configuration with [`PRODUCTS_TOML`] and `extra` before it.
pub(crate) fn config(extra: &str) -> Config {
    let mut problems = Problems::new("test.toml");
    let config = parse(&format!("{extra}\n{PRODUCTS_TOML}"), &mut problems);
    let unknown_serial_keys = problems.items().iter().all(|p| p.key.contains("serial"));
    assert!(unknown_serial_keys, "{:?}", problems.items());
    config.unwrap()
}

/// [`super::decide`] against a whole configuration's products and limits.
fn decide(order: &Order, history: &History, config: &Config) -> Decision {
    super::decide(order, history, &config.products, &config.limits)
}

fn item(sku: Option<&str>, name: Option<&str>, quantity: u32, price: Option<(i64, &str)>) -> LineItem {
    LineItem {
        sku: sku.map(|s| Sku::parse(s).unwrap()),
        product_name: name.map(str::to_owned),
        quantity,
        unit_price: price.map(|(hundredths, currency)| Money { hundredths, currency: Some(currency.to_owned()) }),
    }
}

fn sale(items: Vec<LineItem>) -> Order {
    Order {
        provider: "paypal".into(),
        kind: OrderKind::Sale,
        id: OrderId::parse("A-1").unwrap(),
        test: false,
        licensee: Some(Licensee::parse("Åsa Öberg").unwrap()),
        buyer_name: Some("Asa".into()),
        buyer_email: Some(BuyerEmail::parse("asa@example.com").unwrap()),
        items,
        total: None,
        subscription: None,
        period_end: None,
        payment_id: None,
        sequence: None,
    }
}

fn licensed(line: u32, revoked: bool) -> KnownLine {
    KnownLine { line, licensed: true, revoked }
}

fn action_and_reason(decision: &Decision) -> (&'static str, String) {
    (decision.action(), decision.reason())
}

/// The order with the total the provider computed.
fn with_total(mut order: Order, hundredths: i64, currency: &str) -> Order {
    order.total = Some(Money { hundredths, currency: Some(currency.to_owned()) });
    order
}

#[test]
fn a_sale_maps_each_item_by_sku_or_name_case_insensitively_with_seats_from_quantity() {
    let items = vec![item(Some("acme-pro"), None, 3, Some((1900, "EUR"))), item(None, Some("ACME LITE"), 1, None)];
    let order = with_total(sale(items), 5700, "EUR");
    let decision = decide(&order, &History::default(), &config(""));
    let Decision::Issue { grants, recipient } = decision else { panic!("{decision:?}") };
    assert_eq!(recipient, Recipient::Buyer);
    let got: Vec<_> = grants.iter().map(|g| (g.line, g.product.as_str(), g.seats, g.licensee.as_str())).collect();
    assert_eq!(got, [(0, "pro", 3, "Åsa Öberg"), (1, "lite", 1, "Åsa Öberg")]);
}

#[test]
fn a_line_without_a_sku_sells_under_its_product_name_when_the_vendor_lists_that_name_as_a_sku() {
    let items = vec![item(None, Some("Acme-Pro-2"), 1, None), item(None, Some("Acme Lite"), 1, None)];
    let decision = decide(&with_total(sale(items), 2000, "EUR"), &History::default(), &config(""));
    let Decision::Issue { grants, .. } = decision else { panic!("{decision:?}") };
    let skus: Vec<_> = grants.iter().map(|g| (g.product.as_str(), g.sku.as_deref())).collect();
    assert_eq!(skus, [("pro", Some("acme-pro-2")), ("lite", None)], "the listed spelling; an unlisted name has none");
}

#[test]
fn failed_checks_go_to_review_with_a_reason() {
    let pro = |quantity, price| item(Some("ACME-PRO"), None, quantity, price);
    let mut no_email = sale(vec![pro(1, Some((900, "EUR")))]);
    no_email.buyer_email = None;
    let mut no_name = sale(vec![pro(1, Some((900, "EUR")))]);
    no_name.licensee = None;
    no_name.buyer_name = None;
    let cases: Vec<(Order, &str)> = vec![
        (sale(vec![item(Some("OTHER"), None, 1, None)]), "unknown product SKU \"OTHER\""),
        // The provider's SKU cell and a name line a buyer typed above it: never the product listed first.
        (
            sale(vec![item(Some("ACME-PRO"), Some("Acme Lite"), 1, None)]),
            "SKU \"ACME-PRO\" is product \"pro\" but the line's name \"Acme Lite\" is product \"lite\"",
        ),
        (with_total(sale(vec![pro(1, Some((900, "EUR")))]), 899, "EUR"), "below the minimum"),
        (with_total(sale(vec![pro(1, None)]), 5000, "USD"), "no minimum price for pro in USD"),
        (sale(vec![pro(1, Some((900, "EUR")))]), "no order total"),
        (sale(vec![pro(0, Some((900, "EUR")))]), "quantity 0"),
        (sale(vec![pro(101, Some((900, "EUR")))]), "101 seats"),
        (sale(vec![]), "no line items"),
        (no_email, "no valid buyer email"),
        (no_name, "no licensee"),
    ];
    for (order, expected) in cases {
        let (action, reason) = action_and_reason(&decide(&order, &History::default(), &config("")));
        assert_eq!(action, "review", "{expected}");
        assert!(reason.contains(expected), "{reason:?} should contain {expected:?}");
    }
}

#[test]
fn the_price_floor_is_checked_on_the_providers_total_not_on_a_unit_price() {
    // A unit price line can sit next to text the buyer wrote; the provider's total cannot.
    let order = |quantity, unit: i64, total| {
        with_total(sale(vec![item(Some("ACME-PRO"), None, quantity, Some((unit, "EUR")))]), total, "EUR")
    };
    let reason = decide(&order(1, 1900, 1), &History::default(), &config("")).reason();
    assert_eq!(reason, "order total 0.01 EUR is below the minimum 9.00 EUR for its items");
    assert!(decide(&order(3, 900, 2000), &History::default(), &config("")).reason().contains("minimum 27.00 EUR"));
    assert_eq!(decide(&order(1, 1, 900), &History::default(), &config("")).action(), "issue");
    assert_eq!(decide(&order(3, 900, 2700), &History::default(), &config("")).action(), "issue");
}

#[test]
fn seats_are_capped_per_order_across_its_line_items() {
    let lite = |quantity| item(None, Some("acme lite"), quantity, None);
    let order = sale(vec![lite(60), lite(60)]);
    assert_eq!(decide(&order, &History::default(), &config("")).reason(), "120 seats in one order (limit 100)");
    let roomy = config("[limits]\nmax_order_seats = 200\n");
    assert_eq!(decide(&order, &History::default(), &roomy).action(), "issue");
}

#[test]
fn rate_limits_per_buyer_and_per_provider_send_orders_to_review() {
    let order = sale(vec![item(None, Some("acme lite"), 1, None)]);
    let config = config("[limits]\nper_buyer_per_hour = 2\nper_provider_per_hour = 3\n");
    let at = |buyer, provider| History {
        buyer_orders_last_hour: buyer,
        provider_orders_last_hour: provider,
        ..History::default()
    };
    assert_eq!(decide(&order, &at(1, 2), &config).action(), "issue");
    assert!(decide(&order, &at(2, 0), &config).reason().contains("buyer placed 2 orders"));
    assert!(decide(&order, &at(0, 3), &config).reason().contains("provider paypal sent 3 orders"));
}

#[test]
fn a_test_order_goes_to_the_vendor_unless_configured_for_the_buyer() {
    let mut order = sale(vec![item(None, Some("acme lite"), 1, None)]);
    order.test = true;
    let to = |config: &Config| match decide(&order, &History::default(), config) {
        Decision::Issue { recipient, .. } => recipient,
        other => panic!("{other:?}"),
    };
    assert_eq!(to(&config("")), Recipient::Vendor);
    assert_eq!(to(&config("[limits]\ntest_orders = \"buyer\"\n")), Recipient::Buyer);
}

#[test]
fn a_second_email_for_a_recorded_order_is_skipped() {
    let order = sale(vec![item(None, Some("acme lite"), 1, None)]);
    let history = History { lines: vec![licensed(0, false)], ..History::default() };
    assert_eq!(
        action_and_reason(&decide(&order, &history, &config(""))),
        ("skip", "order A-1 is already recorded".into())
    );
}

#[test]
fn refunds_chargebacks_and_cancellations_revoke_only_active_licenses() {
    let cases = [
        (OrderKind::Refund, vec![licensed(0, false), licensed(1, true)], ("revoke", "refund")),
        (OrderKind::Chargeback, vec![licensed(0, false)], ("revoke", "chargeback")),
        (OrderKind::Cancellation, vec![licensed(0, false)], ("revoke", "cancellation")),
        (OrderKind::Refund, vec![licensed(0, true)], ("skip", "refund: no active license left to revoke")),
        (OrderKind::Refund, vec![], ("revoke-ahead", "refund for an order keypost has not recorded")),
    ];
    for (kind, lines, (action, reason)) in cases {
        let mut order = sale(vec![]);
        order.kind = kind;
        let decision = decide(&order, &History { lines, ..History::default() }, &config(""));
        assert_eq!(action_and_reason(&decision), (action, reason.to_owned()));
        if let Decision::Revoke { lines, .. } = decision {
            assert_eq!(lines, [0]);
        }
    }
}

#[test]
fn zero_limits_are_configuration_errors() {
    let mut problems = Problems::new("k.toml");
    LimitsConfig { per_buyer_per_hour: 0, max_order_seats: 0, ..LimitsConfig::default() }.validate(&mut problems);
    let keys: Vec<_> = problems.items().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["limits.per_buyer_per_hour", "limits.max_order_seats"]);
}

#[test]
fn a_sale_whose_refund_came_first_is_recorded_revoked_never_issued() {
    let order = sale(vec![item(None, Some("acme lite"), 1, None)]);
    let remembered = KnownLine { line: 0, licensed: false, revoked: true };
    for kind in [OrderKind::Refund, OrderKind::Chargeback] {
        let history = History { lines: vec![remembered.clone()], revoked_ahead: Some(kind), ..History::default() };
        let expected = format!("{} received before the sale", kind.as_str());
        assert_eq!(action_and_reason(&decide(&order, &history, &config(""))), ("sale-revoked", expected));
    }
    // The same refund mailed again finds nothing left to revoke.
    let mut refund = sale(vec![]);
    refund.kind = OrderKind::Refund;
    let history = History { lines: vec![remembered], revoked_ahead: Some(OrderKind::Refund), ..History::default() };
    assert_eq!(decide(&refund, &history, &config("")).action(), "skip");
}
