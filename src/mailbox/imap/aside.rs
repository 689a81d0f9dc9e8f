//! The set-aside folder on IMAP, for `keypost aside`: a message there is found by the SHA-256 of its bytes
//! (recorded when it was set aside; the move gave it a new UID) and read, or moved out. Its own short session,
//! separate from the daemon's: nothing here touches the watched folder's cursor.
use std::path::Path;

use super::connect::Endpoint;
use super::session::Conn;
use crate::mailbox::{ImapConfig, sha256_hex};

/// The set-aside message with this digest: its UID and bytes, on a session with the set-aside folder selected.
async fn find(
    config: &ImapConfig,
    base_dir: &Path,
    max_bytes: u64,
    sha256: &str,
) -> anyhow::Result<Option<(Conn, u32, Vec<u8>)>> {
    let endpoint = Endpoint::new(config, base_dir)?;
    let mut conn = Conn::open(&endpoint, &config.set_aside_folder).await?;
    let uids = conn.search(1, u32::MAX).await?;
    let sizes = conn.sizes(&uids).await?;
    let small: Vec<u32> = sizes.into_iter().filter(|(_, size)| *size <= max_bytes).map(|(uid, _)| uid).collect();
    let found = conn.bodies(&small).await?.into_iter().find(|(_, bytes)| sha256_hex(bytes) == sha256);
    Ok(found.map(|(uid, bytes)| (conn, uid, bytes)))
}

/// The bytes of the set-aside message with this digest, if it is still in the set-aside folder.
pub async fn read(
    config: &ImapConfig,
    base_dir: &Path,
    max_bytes: u64,
    sha256: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let found = find(config, base_dir, max_bytes, sha256).await?;
    Ok(match found {
        Some((conn, _, bytes)) => {
            conn.logout().await;
            Some(bytes)
        }
        None => None,
    })
}

/// Moves the set-aside message with this digest to `dest` (a configured folder path). Returns whether it was
/// there to move.
pub async fn move_out(
    config: &ImapConfig,
    base_dir: &Path,
    max_bytes: u64,
    sha256: &str,
    dest: &str,
) -> anyhow::Result<bool> {
    let Some((mut conn, uid, _)) = find(config, base_dir, max_bytes, sha256).await? else { return Ok(false) };
    conn.move_uids(&[uid], dest).await?;
    conn.logout().await;
    Ok(true)
}
