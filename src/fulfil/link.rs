//! One purchase, two notifications: a shop platform (E-junkie, ...) and the processor beneath it (PayPal) both
//! mail the same sale, under different providers and order ids but with the same payment id. The first to
//! arrive is answered as any order; the other is recorded as linked to it and gets no license and no reply of
//! its own, in either arrival order. A refund, chargeback or cancellation through either takes back the one
//! license. Pure: the caller finds the related order ([`super::History::answered_by`]).
use super::{Decision, OrderKind, Related};

/// A sale whose payment another provider's order already answers.
pub(super) fn sale(related: &Related) -> Decision {
    let to = related.order.clone();
    match related.revoked_ahead {
        // That order is only a refund remembered before its sale: this sale is the one it takes back.
        Some(kind) if related.lines.iter().all(|line| !line.licensed) => Decision::SaleRevoked {
            reason: format!("{} received before the sale, through {to} (the same payment)", kind.as_str()),
        },
        _ => Decision::Link { reason: format!("the same payment as {to}, answered there"), to },
    }
}

/// A revocation through either notice of a payment another provider's order answers: that order's licenses.
pub(super) fn revocation(kind: OrderKind, related: &Related) -> Decision {
    let lines: Vec<u32> = related.lines.iter().filter(|l| l.licensed && !l.revoked).map(|l| l.line).collect();
    if lines.is_empty() {
        let reason = format!(
            "{}: no active license left to revoke (the payment was answered as {})",
            kind.as_str(),
            related.order
        );
        return Decision::Skip { reason };
    }
    Decision::Revoke { lines, reason: kind.as_str().to_owned(), linked: Some(related.order.clone()) }
}

#[cfg(test)]
mod tests {
    use crate::fulfil::tests::config;
    use crate::fulfil::{Decision, History, KnownLine, OrderRef, Related, decide};
    use crate::order::{BuyerEmail, LineItem, Order, OrderId, OrderKind, PaymentId, Sku};

    const TXN: &str = "8DE45678FG901234H";

    /// `provider`'s notice of the PayPal payment [`TXN`], a sale of one Acme Lite.
    fn notice(provider: &str, kind: OrderKind) -> Order {
        Order {
            provider: provider.into(),
            kind,
            id: OrderId::parse(TXN).unwrap(),
            test: false,
            licensee: None,
            buyer_name: Some("Jane Buyer".into()),
            buyer_email: Some(BuyerEmail::parse("jane.buyer@example.com").unwrap()),
            items: vec![LineItem {
                sku: Some(Sku::parse("acme lite").unwrap()),
                product_name: None,
                quantity: 1,
                unit_price: None,
            }],
            total: None,
            subscription: None,
            period_end: None,
            payment_id: Some(PaymentId::parse(&format!("paypal:{TXN}")).unwrap()),
        }
    }

    fn answered_by(provider: &str, lines: Vec<KnownLine>, revoked_ahead: Option<OrderKind>) -> Related {
        Related {
            order: OrderRef { provider: provider.into(), order_id: OrderId::parse(TXN).unwrap() },
            lines,
            revoked_ahead,
        }
    }

    fn licensed(line: u32, revoked: bool) -> KnownLine {
        KnownLine { line, licensed: true, revoked }
    }

    fn decided(order: &Order, history: &History) -> Decision {
        let config = config("");
        decide(order, history, &config.products, &config.limits)
    }

    #[test]
    fn the_second_notice_of_a_payment_is_linked_to_the_first_in_either_arrival_order() {
        for (first, second) in [("ejunkie", "paypal"), ("paypal", "ejunkie")] {
            let history =
                History { answered_by: Some(answered_by(first, vec![licensed(0, false)], None)), ..History::default() };
            let decision = decided(&notice(second, OrderKind::Sale), &history);
            let to = OrderRef { provider: first.into(), order_id: OrderId::parse(TXN).unwrap() };
            let reason = format!("the same payment as {first}/{TXN}, answered there");
            assert_eq!(decision, Decision::Link { to, reason });
        }
    }

    #[test]
    fn a_notice_of_a_payment_nobody_answered_yet_is_fulfilled_as_any_sale() {
        assert_eq!(decided(&notice("paypal", OrderKind::Sale), &History::default()).action(), "issue");
    }

    #[test]
    fn a_notice_already_recorded_as_linked_is_skipped_when_mailed_again() {
        let link = KnownLine { line: 0, licensed: false, revoked: false };
        let history = History {
            lines: vec![link],
            answered_by: Some(answered_by("ejunkie", vec![licensed(0, false)], None)),
            ..History::default()
        };
        assert_eq!(decided(&notice("paypal", OrderKind::Sale), &history).action(), "skip");
    }

    #[test]
    fn the_first_notice_linked_even_when_it_went_to_review_so_no_second_serial_goes_out_behind_the_vendor() {
        let review = KnownLine { line: 0, licensed: false, revoked: false };
        let history = History { answered_by: Some(answered_by("ejunkie", vec![review], None)), ..History::default() };
        assert_eq!(decided(&notice("paypal", OrderKind::Sale), &history).action(), "link");
    }

    #[test]
    fn a_refund_through_either_notice_revokes_the_one_license() {
        for (answering, refunded_through) in [("ejunkie", "paypal"), ("paypal", "ejunkie")] {
            let related = answered_by(answering, vec![licensed(0, false), licensed(1, true)], None);
            let history = History { answered_by: Some(related), ..History::default() };
            let decision = decided(&notice(refunded_through, OrderKind::Refund), &history);
            let linked = Some(OrderRef { provider: answering.into(), order_id: OrderId::parse(TXN).unwrap() });
            assert_eq!(decision, Decision::Revoke { lines: vec![0], reason: "refund".into(), linked });
        }
    }

    #[test]
    fn a_second_refund_through_the_other_notice_finds_nothing_left_to_revoke() {
        let history =
            History { answered_by: Some(answered_by("ejunkie", vec![licensed(0, true)], None)), ..History::default() };
        let decision = decided(&notice("paypal", OrderKind::Chargeback), &history);
        assert_eq!(decision.action(), "skip");
        assert!(decision.reason().contains("answered as ejunkie/"), "{}", decision.reason());
    }

    #[test]
    fn a_sale_whose_payment_was_refunded_through_the_other_notice_first_is_recorded_revoked() {
        let remembered = KnownLine { line: 0, licensed: false, revoked: true };
        let related = answered_by("paypal", vec![remembered], Some(OrderKind::Refund));
        let history = History { answered_by: Some(related), ..History::default() };
        let decision = decided(&notice("ejunkie", OrderKind::Sale), &history);
        assert_eq!(decision.action(), "sale-revoked");
        assert_eq!(
            decision.reason(),
            format!("refund received before the sale, through paypal/{TXN} (the same payment)")
        );
    }

    #[test]
    fn the_link_never_overrides_a_refund_recorded_for_the_notice_itself() {
        let remembered = KnownLine { line: 0, licensed: false, revoked: true };
        let history = History {
            lines: vec![remembered],
            revoked_ahead: Some(OrderKind::Refund),
            answered_by: Some(answered_by("ejunkie", vec![licensed(0, false)], None)),
            ..History::default()
        };
        assert_eq!(decided(&notice("paypal", OrderKind::Sale), &history).action(), "sale-revoked");
    }
}
