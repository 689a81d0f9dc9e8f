//! A folder of the configured IMAP account read for `keypost replay`: its own session, every message listed
//! once, fetched by `BODY.PEEK[]` (no \Seen flag), nothing moved. Separate from the watched folder's source.
use std::collections::BTreeMap;
use std::path::Path;

use super::connect::Endpoint;
use super::session::Conn;
use crate::mailbox::{ImapConfig, MailContent};

pub struct ArchiveFolder {
    conn: Conn,
}

impl ArchiveFolder {
    /// Logs in, selects `folder` (a configured `a/b` path) and lists its UIDs, ascending.
    pub async fn open(config: &ImapConfig, base_dir: &Path, folder: &str) -> anyhow::Result<(Self, Vec<u32>)> {
        let endpoint = Endpoint::new(config, base_dir)?;
        let mut conn = Conn::open(&endpoint, folder).await?;
        let uids = conn.search(1, u32::MAX).await?;
        Ok((Self { conn }, uids))
    }

    pub fn uidvalidity(&self) -> u32 {
        self.conn.selected.uidvalidity
    }

    /// These messages' bytes (over `max_bytes`: their size only), in UID order; UIDs gone meanwhile are left out.
    pub async fn fetch(&mut self, uids: &[u32], max_bytes: u64) -> anyhow::Result<Vec<(u32, MailContent)>> {
        let sizes = self.conn.sizes(uids).await?;
        let small: Vec<u32> = sizes.iter().filter(|(_, size)| **size <= max_bytes).map(|(uid, _)| *uid).collect();
        let mut bodies: BTreeMap<u32, Vec<u8>> = self.conn.bodies(&small).await?;
        Ok(sizes
            .into_iter()
            .filter_map(|(uid, size)| match bodies.remove(&uid) {
                Some(bytes) => Some((uid, MailContent::Bytes(bytes))),
                None if size > max_bytes => Some((uid, MailContent::TooLarge { size })),
                None => None,
            })
            .collect())
    }

    pub async fn close(self) {
        self.conn.logout().await;
    }
}
