//! Property: whatever mix of originals, identical copies, forwards, re-sent notices and refunds arrives, in
//! whatever order, with restarts between passes, each order gets exactly one reply if a sale email for it
//! arrived before any refund, and none otherwise; and any refund, before the sale or after it, leaves the order
//! revoked.
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::fakes::{daemon, mail, sale};

#[derive(Debug, Clone)]
enum Copy {
    Original,
    SameAgain,
    Forwarded,
    NewNotice,
    Refund,
}

fn copy() -> impl Strategy<Value = Copy> {
    prop_oneof![
        Just(Copy::Original),
        Just(Copy::SameAgain),
        Just(Copy::Forwarded),
        Just(Copy::NewNotice),
        Just(Copy::Refund)
    ]
}

fn bytes(order: u8, copy: &Copy) -> Vec<u8> {
    let id = format!("P-{order}");
    let buyer = format!("buyer{order}@example.com");
    match copy {
        Copy::Original | Copy::SameAgain => mail(&format!("{id}@shop.example"), &sale(&id, &buyer)),
        Copy::Forwarded => mail(&format!("fw-{id}@vendor.example"), &format!("-- forwarded --\n{}", sale(&id, &buyer))),
        Copy::NewNotice => mail(&format!("{id}-2@shop.example"), &format!("{}\nnote: reminder", sale(&id, &buyer))),
        Copy::Refund => mail(&format!("r-{id}@shop.example"), &format!("kind: refund\norder: {id}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn each_order_gets_at_most_one_reply_and_none_after_its_refund_whatever_arrives_in_whatever_order(
        arrivals in proptest::collection::vec((0u8..4, copy(), any::<bool>()), 1..14)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut sold = BTreeSet::new();
        let mut refunded = BTreeSet::new();
        let mut refunded_first = BTreeSet::new();
        let mut replies: BTreeMap<u8, usize> = BTreeMap::new();
        let mut daemon = daemon(dir.path(), "");
        for (n, (order, copy, restart)) in arrivals.iter().enumerate() {
            match copy {
                Copy::Refund => {
                    if !sold.contains(order) {
                        refunded_first.insert(*order);
                    }
                    refunded.insert(*order);
                }
                _ => { sold.insert(*order); }
            }
            daemon.source.deliver(&format!("{n:03}"), &bytes(*order, copy));
            runtime.block_on(daemon.poll_once()).unwrap();
            if *restart {
                for order in 0..4u8 {
                    *replies.entry(order).or_default() += daemon.mailer.to(&format!("buyer{order}@example.com")).len();
                }
                drop(daemon);
                daemon = super::fakes::daemon(dir.path(), "");
            }
        }
        for order in 0..4u8 {
            let total = replies.get(&order).copied().unwrap_or(0) + daemon.mailer.to(&format!("buyer{order}@example.com")).len();
            let answered = sold.contains(&order) && !refunded_first.contains(&order);
            prop_assert_eq!(total, usize::from(answered), "order {}", order);
            let line = daemon.core.store.order_line("shop", &format!("P-{order}"), 0).unwrap();
            if refunded.contains(&order) {
                prop_assert!(line.and_then(|l| l.revoked).is_some(), "order {} revoked", order);
            }
        }
    }
}
