//! Opening the state only to read, for the tools that change nothing (`lookup`, `export`, `status`, `aside list`,
//! `pool status`). redb's open to write marks the file's header and syncs it, and its close writes the allocator
//! state and syncs again: five fsyncs, which on a busy disk were most of a `lookup`'s 20–40 ms. An open to read
//! writes nothing.
//!
//! Invariants: a store opened here never writes (a change fails with [`StoreError::ReadOnly`]); a state that
//! needs a write before it can be read as it is (none yet, an old sled one, a repair after an unclean shutdown,
//! sends left in the send journal by a crash, the rate counters' one-off build) is opened to write instead, exactly as [`Store::open`] would; a state the
//! daemon holds is [`StoreError::Locked`], as for an open to write, so the tools ask the daemon.
use std::path::Path;

use super::engine::{self, TABLE};
use super::{Store, StoreError, check_schema, journal, keep_private, make_private, migrate, rate};

impl Store {
    /// Opens the state only to read, with the same checks as [`Store::open`]; see the module doc for when it
    /// opens it to write instead.
    pub fn open_read(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(engine::FILE);
        if !path.exists() || state_dir.join(migrate::LEGACY).exists() || journal::has_lines(state_dir) {
            return Store::open(state_dir);
        }
        make_private(state_dir)?;
        let Some(db) = engine::open_read(&path)? else { return Store::open(state_dir) };
        let db = engine::Db::Read(db);
        let table = db.begin_read()?.open_table(TABLE).map_err(|err| match err {
            redb::TableError::TableDoesNotExist(_) => {
                StoreError::Corrupt { path: path.clone(), detail: "no records table".into() }
            }
            err => err.into(),
        })?;
        check_schema(&table, &path)?;
        if table.get(rate::META_COUNTED)?.is_none() {
            drop((table, db));
            return Store::open(state_dir);
        }
        let ids = engine::Ids::load(&table)?;
        drop(table);
        keep_private(&path);
        Ok(Self::assemble(db, ids, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::super::{Change, Store, StoreError, engine};

    fn state_with_one_order() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        change.put_order(&record("A-1", 0, "asa@example.com", 100));
        store.write(vec![change]).unwrap();
        dir
    }

    #[test]
    fn a_state_opened_to_read_finds_its_orders_refuses_a_change_and_leaves_the_file_as_it_was() {
        let dir = state_with_one_order();
        let file = dir.path().join(engine::FILE);
        let before = std::fs::read(&file).unwrap();
        {
            let store = Store::open_read(dir.path()).unwrap();
            assert_eq!(store.lookup("asa@example.com").unwrap().len(), 1);
            assert_eq!(store.orders().unwrap().len(), 1);
            let err = store.write(vec![Change::new()]).unwrap_err();
            assert!(matches!(err, StoreError::ReadOnly), "{err:?}");
        }
        assert!(std::fs::read(&file).unwrap() == before, "opening and closing to read changed the file");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.orders().unwrap().len(), 1, "the state still opens to write afterwards");
    }

    #[test]
    fn opening_to_read_a_state_the_daemon_holds_is_refused_as_locked_so_the_tool_asks_the_daemon() {
        let dir = state_with_one_order();
        let daemon = Store::open(dir.path()).unwrap();
        let err = Store::open_read(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        drop(daemon);
        // And the other way round, as with a tool that opened it to write: a daemon starting meanwhile is told.
        let _tool = Store::open_read(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    }

    #[test]
    fn a_state_left_by_a_crash_is_repaired_when_a_tool_opens_it_to_read() {
        let dir = state_with_one_order();
        // A copy taken while the state is open is what a kill leaves: its header says it was never closed.
        let crashed = tempfile::tempdir().unwrap();
        {
            let _open = Store::open(dir.path()).unwrap();
            std::fs::copy(dir.path().join(engine::FILE), crashed.path().join(engine::FILE)).unwrap();
        }
        assert!(engine::open_read(&crashed.path().join(engine::FILE)).unwrap().is_none(), "needs a repair");
        let store = Store::open_read(crashed.path()).unwrap();
        assert_eq!(store.lookup("A-1").unwrap().len(), 1);
        drop(store);
        assert!(engine::open_read(&crashed.path().join(engine::FILE)).unwrap().is_some(), "repaired for good");
    }

    #[test]
    fn a_tool_that_only_reads_a_folder_without_a_state_gets_an_empty_one_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_read(&dir.path().join("state")).unwrap();
        assert!(store.orders().unwrap().is_empty());
        assert!(Store::exists(&dir.path().join("state")));
    }
}
