use super::*;
use crate::fulfil::Grant;
use crate::mailbox::Disposition;
use crate::order::{Licensee, OrderId, OrderKind};
use crate::reply::Outgoing;

pub(super) fn record(order_id: &str, line: u32, buyer: &str, at: i64) -> OrderRecord {
    OrderRecord {
        provider: "paypal".into(),
        order_id: OrderId::parse(order_id).unwrap(),
        line,
        kind: OrderKind::Sale,
        test: false,
        received_at: at,
        origin: "maildir/1".into(),
        message_id: None,
        buyer_email: Some(BuyerEmail::parse(buyer).unwrap()),
        buyer_name: None,
        decision: "issue".into(),
        reason: String::new(),
        license: Some(License {
            grant: Grant {
                line,
                product: "pro".into(),
                seats: 1,
                licensee: Licensee::parse("Åsa Öberg").unwrap(),
                sku: None,
                expires: None,
                follows: None,
            },
            serial: "S".into(),
            issued: "2026-11-22".into(),
            expires: None,
        }),
        reply: ReplyState::None,
        revoked: None,
        resends: 0,
        chain: ChainState::default(),
        amount: None,
        payment_id: None,
        linked_to: None,
    }
}

pub(super) fn outgoing(id: &str) -> Outgoing {
    Outgoing { message_id: id.into(), from: "v@x.example".into(), to: vec!["b@y.example".into()], bytes: b"x".to_vec() }
}

#[test]
fn a_committed_change_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        change.put_order(&record("A-1", 0, "asa@example.com", 100));
        change.index_email(Some("m1@p"), "hash1", "paypal", "A-1");
        change.settle_source("maildir", "k1", Disposition::Done, 100, "fulfilled");
        change.queue(&OutboxEntry::new(outgoing("r1@v"), Purpose::Vendor, 100));
        change.audit(100, "decided", "paypal/A-1#0", "issue");
        store.commit(change).unwrap();
        store.flush_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.order_lines("paypal", "A-1").unwrap().len(), 1);
    assert_eq!(store.order_lines("paypal", "A-").unwrap().len(), 0, "an order id prefix is not the order");
    assert_eq!(store.seen_email(Some("other"), "hash1").unwrap().as_deref(), Some("paypal\0A-1"));
    assert_eq!(store.seen_email(Some("m1@p"), "").unwrap().as_deref(), Some("paypal\0A-1"));
    assert_eq!(store.source_record("maildir", "k1").unwrap().unwrap().disposition, Disposition::Done);
    assert_eq!(store.due_outbox(100).unwrap().len(), 1);
    assert_eq!(store.audit().unwrap().len(), 1);
}

#[test]
fn rate_counts_only_include_orders_since_the_given_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut change = Change::new();
    change.put_order(&record("A-1", 0, "asa@example.com", 100));
    change.put_order(&record("A-2", 0, "asa@example.com", 5000));
    change.put_order(&record("A-3", 0, "bo@example.com", 5000));
    store.commit(change).unwrap();
    let asa = BuyerEmail::parse("asa@example.com").unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&asa), 4000).unwrap(), (2, 1));
    assert_eq!(store.recent_counts("paypal", Some(&asa), 0).unwrap(), (3, 2));
    assert_eq!(store.recent_counts("gumroad", None, 0).unwrap(), (0, 0));
}

#[test]
fn rate_counts_count_an_order_once_however_often_and_with_however_many_lines_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut change = Change::new();
    change.put_order(&record("A-1", 0, "asa@example.com", 6000));
    change.put_order(&record("A-1", 1, "asa@example.com", 6000));
    store.commit(change).unwrap();
    // Later updates of the same line (its reply sent, a revocation) rewrite it.
    for _ in 0..3 {
        let mut change = Change::new();
        change.put_order(&record("A-1", 0, "asa@example.com", 6000));
        store.commit(change).unwrap();
    }
    let asa = BuyerEmail::parse("asa@example.com").unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&asa), 3000).unwrap(), (1, 1));
}

#[test]
fn rate_counts_over_a_busy_hour_include_every_order_of_the_window_and_none_older_than_its_first_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 2,000 orders over ~2.2 hours, one every 4 s, from 7 buyers; committed in batches as the daemon does.
    let at = |i: i64| 100_000 + 4 * i;
    for chunk in (0..2000).collect::<Vec<i64>>().chunks(100) {
        let mut change = Change::new();
        for &i in chunk {
            change.put_order(&record(&format!("B-{i}"), 0, &format!("b{}@example.com", i % 7), at(i)));
        }
        store.commit(change).unwrap();
    }
    let now = at(1999);
    let since = now - 3600;
    let window_start = since - since.rem_euclid(60);
    let expected = (0..2000).filter(|&i| at(i) >= window_start).count() as u32;
    let expected_b3 = (0..2000).filter(|&i| at(i) >= window_start && i % 7 == 3).count() as u32;
    assert!((900..=916).contains(&expected), "the window holds an hour and at most a minute more: {expected}");
    let b3 = BuyerEmail::parse("b3@example.com").unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&b3), since).unwrap(), (expected, expected_b3));
    // A limit one below the count holds the next order; the count never falls short of the exact one.
    let exact = (0..2000).filter(|&i| at(i) >= since).count() as u32;
    assert!(store.recent_counts("paypal", None, since).unwrap().0 >= exact);
    let minute = (now + 1) - (now + 1).rem_euclid(60);
    let this_minute = (0..2000).filter(|&i| at(i) >= minute).count() as u32;
    assert_eq!(store.recent_counts("paypal", None, now + 1).unwrap().0, this_minute, "the current minute's orders");
    assert_eq!(store.recent_counts("paypal", None, now + 60).unwrap().0, 0, "none after it");
}

#[test]
fn a_state_written_before_the_rate_counters_gets_them_built_once_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let asa = BuyerEmail::parse("asa@example.com").unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        change.put_order(&record("A-1", 0, "asa@example.com", 100));
        change.put_order(&record("A-2", 0, "asa@example.com", 5000));
        change.put_order(&record("A-3", 0, "bo@example.com", 5030));
        store.commit(change).unwrap();
        // What an older keypost left: the time indexes, no counters.
        let counters: Vec<Vec<u8>> =
            store.prefix(rate::COUNTS.as_bytes()).unwrap().map(|item| item.unwrap().0.value().to_vec()).collect();
        raw_write(&store, |table| {
            for key in &counters {
                table.remove(key.as_slice()).unwrap();
            }
            table.remove(rate::META_COUNTED).unwrap();
        });
        assert_eq!(store.recent_counts("paypal", Some(&asa), 0).unwrap(), (0, 0));
        store.flush_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&asa), 4000).unwrap(), (2, 1));
    assert_eq!(store.recent_counts("paypal", Some(&asa), 0).unwrap(), (3, 2));
    let mut change = Change::new();
    change.put_order(&record("A-4", 0, "asa@example.com", 5040));
    store.commit(change).unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&asa), 4000).unwrap(), (3, 2), "counted on from there");
}

#[test]
fn the_per_buyer_rate_limit_counts_jane_plus_1_and_capital_jane_as_one_buyer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut change = Change::new();
    change.put_order(&record("A-1", 0, "jane+1@example.com", 100));
    change.put_order(&record("A-2", 0, "Jane@example.com", 100));
    change.put_order(&record("A-3", 0, "jane+shop@Example.COM", 100));
    store.commit(change).unwrap();
    let jane = BuyerEmail::parse("jane@example.com").unwrap();
    assert_eq!(store.recent_counts("paypal", Some(&jane), 0).unwrap(), (3, 3));
}

#[test]
fn lookup_finds_lines_by_order_id_buyer_or_licensee() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut change = Change::new();
    change.put_order(&record("A-1", 0, "asa@example.com", 1));
    change.put_order(&record("A-1", 1, "asa@example.com", 1));
    change.put_order(&record("B-7", 0, "bo@example.com", 1));
    store.commit(change).unwrap();
    let ids = |q: &str| store.lookup(q).unwrap().iter().map(OrderRecord::label).collect::<Vec<_>>();
    assert_eq!(ids("A-1"), ["paypal/A-1#0", "paypal/A-1#1"]);
    assert_eq!(ids("BO@example.com"), ["paypal/B-7#0"]);
    assert_eq!(ids("åsa öberg").len(), 3);
    assert!(ids("nobody").is_empty());
}

#[test]
fn due_outbox_skips_entries_waiting_for_a_later_try_and_unqueue_removes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut later = OutboxEntry::new(outgoing("later@v"), Purpose::Vendor, 0);
    later.next_try = 500;
    let mut change = Change::new();
    change.queue(&later);
    change.queue(&OutboxEntry::new(outgoing("now@v"), Purpose::Vendor, 10));
    store.commit(change).unwrap();
    let due: Vec<_> = store.due_outbox(100).unwrap().into_iter().map(|e| e.outgoing.message_id).collect();
    assert_eq!(due, ["now@v"]);
    let mut change = Change::new();
    change.unqueue("now@v");
    store.commit(change).unwrap();
    assert_eq!(store.outbox_len(), 1);
}

#[test]
fn a_damaged_database_stops_start_up_instead_of_starting_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        change.put_order(&record("A-1", 0, "asa@example.com", 1));
        store.commit(change).unwrap();
        store.flush_blocking().unwrap();
    }
    let db_file = dir.path().join("keypost.redb");
    let len = std::fs::metadata(&db_file).unwrap().len() as usize;
    std::fs::write(&db_file, vec![0x5a; len]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. } | StoreError::Open { .. }), "{err}");
}

#[test]
fn a_first_start_killed_while_creating_the_database_is_rebuilt_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    // What a kill during creation leaves: a staging database without its schema version.
    drop(redb::Database::create(dir.path().join("keypost.redb.creating")).unwrap());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.outbox_len(), 0);
    assert!(!dir.path().join("keypost.redb.creating").exists());
    drop(store);
    Store::open(dir.path()).unwrap();
}

#[test]
fn a_database_without_a_schema_version_is_refused_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    drop(redb::Database::create(dir.path().join("keypost.redb")).unwrap());
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Corrupt { .. })));
    let txn = redb::Database::open(dir.path().join("keypost.redb")).unwrap().begin_write().unwrap();
    drop(txn.open_table(TABLE).unwrap());
    txn.commit().unwrap();
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Corrupt { .. })), "a table without the schema");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        raw_write(&store, |table| {
            table.insert(META_SCHEMA, (SCHEMA_VERSION + 1).to_be_bytes().as_slice()).unwrap();
        });
    }
    assert!(
        matches!(Store::open(dir.path()), Err(StoreError::NewerSchema { found, .. }) if found == SCHEMA_VERSION + 1)
    );
}

#[test]
fn a_second_open_of_a_state_in_use_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked { .. })));
    drop(store);
    Store::open(dir.path()).unwrap();
}

#[test]
fn audit_lines_and_pool_numbers_keep_rising_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let audit_then_seq = |store: &Store, at: i64| {
        let mut change = Change::new();
        change.audit(at, "noted", "x", "");
        store.commit(change).unwrap();
        store.pool_next_seq().unwrap()
    };
    let first = {
        let store = Store::open(dir.path()).unwrap();
        audit_then_seq(&store, 1);
        let seq = audit_then_seq(&store, 2);
        // The last number was handed out but never committed: the next start may hand it out again.
        store.flush_blocking().unwrap();
        seq
    };
    let store = Store::open(dir.path()).unwrap();
    assert!(audit_then_seq(&store, 3) >= first);
    let order: Vec<i64> = store.audit().unwrap().iter().map(|entry| entry.at).collect();
    assert_eq!(order, [1, 2, 3], "the audit trail stays in the order it was written");
}

#[tokio::test]
async fn changes_made_durable_together_are_all_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut pending = store.pending();
        for i in 0..3 {
            let mut change = Change::new();
            change.put_order(&record(&format!("P-{i}"), 0, "asa@example.com", 100));
            change.queue(&OutboxEntry::new(outgoing(&format!("r{i}@v")), Purpose::Vendor, 100));
            pending.apply(change).unwrap();
        }
        assert_eq!(store.order_lines("paypal", "P-2").unwrap().len(), 1, "visible before it is durable");
        let queued = pending.durable().await.unwrap();
        assert_eq!(queued.message_ids(), ["r0@v", "r1@v", "r2@v"]);
        // Concurrent durable commits (the sends of a batch) each return once theirs is on disk.
        let sends = (0..3).map(|i| {
            let store = store.clone();
            async move {
                let mut change = Change::new();
                change.unqueue(&format!("r{i}@v"));
                store.commit_durable(change).await.unwrap()
            }
        });
        futures_join(sends).await;
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.orders().unwrap().len(), 3);
    assert_eq!(store.outbox_len(), 0);
}

async fn futures_join<F>(futures: impl Iterator<Item = F>)
where
    F: std::future::Future<Output: Send + 'static> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// Writes into the records table directly, durably (what an older or a damaged state holds), after the changes
/// applied before it.
fn raw_write(store: &Store, write: impl FnOnce(&mut engine::WriteTable<'_>)) {
    store.flush_blocking().unwrap();
    let txn = store.db.begin_write().unwrap();
    write(&mut txn.open_table(TABLE).unwrap());
    txn.commit().unwrap();
    store.buffer.stale();
}

#[test]
fn the_state_folder_is_created_private_and_an_open_one_is_narrowed() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a/state");
    drop(Store::open(&state).unwrap());
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("keypost.redb")), 0o600);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(Store::open(&state).unwrap());
    assert_eq!(mode(&state), 0o700, "an open state folder is narrowed");
}

/// A reply queued durably for order `A-1`, as step 2 leaves it.
fn queued_reply(store: &Store, id: &str) {
    let mut change = Change::new();
    change.put_order(&record("A-1", 0, "asa@example.com", 100));
    let purpose = Purpose::Reply { provider: "paypal".into(), order_id: OrderId::parse("A-1").unwrap(), line: 0 };
    change.queue(&OutboxEntry::new(outgoing(id), purpose, 100));
    store.commit(change).unwrap();
    store.flush_blocking().unwrap();
}

/// A state whose reply `r1@v` the server accepted and the journal noted, left by a process killed before the
/// group's commit.
fn killed_after_a_journaled_send() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    queued_reply(&store, "r1@v");
    store.journal_sent(160, "r1@v").unwrap();
    dir
}

/// The journal notes the send of `id` at 160; returns its record, not committed.
fn journaled_send(store: &Store, id: &str) -> Change {
    store.journal_sent(160, id).unwrap();
    let entry = store.outbox_entry(id).unwrap().unwrap();
    let mut change = Change::new();
    store.record_sent(&entry, 160, &mut change).unwrap();
    change
}

fn audit_events(store: &Store) -> Vec<String> {
    store.audit().unwrap().into_iter().map(|entry| entry.event).collect()
}

fn journal_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(journal::FILE)).unwrap().len()
}

#[test]
fn a_send_noted_in_the_journal_is_recorded_as_sent_when_a_crash_came_before_its_commit() {
    let dir = killed_after_a_journaled_send();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.outbox_entry("r1@v").unwrap().is_none(), "not sent again after the restart");
    let line = store.order_line("paypal", "A-1", 0).unwrap().unwrap();
    assert_eq!(line.reply, ReplyState::Sent { message_id: "r1@v".into(), at: 160 });
    assert_eq!(audit_events(&store), ["sent", "journal"]);
    assert_eq!(journal_len(dir.path()), 0, "emptied once recorded");
}

#[test]
fn a_journal_line_whose_commit_landed_before_the_crash_changes_nothing_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        queued_reply(&store, "r1@v");
        let change = journaled_send(&store, "r1@v");
        // Committed, and the process dies before the journal is emptied.
        store.write(vec![change]).unwrap();
        assert!(journal_len(dir.path()) > 0);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(audit_events(&store), ["sent"], "recorded once");
}

#[tokio::test]
async fn the_journal_is_emptied_only_after_the_commit_of_every_send_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    queued_reply(&store, "r1@v");
    queued_reply(&store, "r2@v");
    let first = journaled_send(&store, "r1@v");
    let second = journaled_send(&store, "r2@v");
    store.commit_sends(vec![first], 1).await.unwrap();
    assert!(journal_len(dir.path()) > 0, "r2's line still waits for its commit");
    store.commit_sends(vec![second], 1).await.unwrap();
    assert_eq!(journal_len(dir.path()), 0);
    assert_eq!(store.outbox_len(), 0);
}

#[test]
fn a_tool_opening_to_read_a_state_with_sends_left_in_the_journal_sees_them_sent() {
    let dir = killed_after_a_journaled_send();
    let store = Store::open_read(dir.path()).unwrap();
    assert_eq!(store.outbox_len(), 0, "the journal's send is recorded before the tool reads");
    let line = store.order_line("paypal", "A-1", 0).unwrap().unwrap();
    assert_eq!(line.reply, ReplyState::Sent { message_id: "r1@v".into(), at: 160 });
}
