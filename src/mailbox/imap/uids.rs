//! UIDs on the wire and in keys: `"{uidvalidity}:{uid}"` keys, compact bounded UID sets, folder paths. Pure.

/// The key a message is handed out under: stable while the folder keeps its UIDVALIDITY.
pub fn key(uidvalidity: u32, uid: u32) -> String {
    format!("{uidvalidity}:{uid}")
}

/// `(uidvalidity, uid)` from a key made by [`key`]; `None` for anything else.
pub fn parse_key(key: &str) -> Option<(u32, u32)> {
    let (validity, uid) = key.split_once(':')?;
    Some((validity.parse().ok()?, uid.parse().ok().filter(|uid| *uid > 0)?))
}

/// The most UIDs put in one command, so a command line stays far below Dovecot's 64 KiB limit.
pub const MAX_UIDS_PER_COMMAND: usize = 500;

/// A UID set of explicit ranges (`3:5,9`) for sorted, distinct UIDs. Never uses `*`: `n:*` matches the
/// last message even when n is past it.
pub fn uid_set(sorted: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(next) = iter.next_if(|next| Some(*next) == end.checked_add(1)) {
            end = next;
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}:{end}") });
    }
    parts.join(",")
}

/// A configured folder path (`/` separates levels) in the server's own hierarchy delimiter.
pub fn server_folder(path: &str, delimiter: Option<&str>) -> String {
    match delimiter {
        Some(delimiter) if delimiter != "/" && !delimiter.is_empty() => path.replace('/', delimiter),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_key(&key(1795313836, 42)), Some((1795313836, 42)));
        for bad in ["", "1", "1:", ":2", "a:2", "1:b", "1:0", "1:2:3", "-1:2", "4294967296:1"] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn uid_sets_are_compact_explicit_ranges() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8, u32::MAX]), "1:3,5,7:8,4294967295");
    }

    #[test]
    fn folder_paths_use_the_server_delimiter() {
        assert_eq!(server_folder("keypost/done", Some(".")), "keypost.done");
        assert_eq!(server_folder("keypost/done", Some("/")), "keypost/done");
        assert_eq!(server_folder("keypost/done", None), "keypost/done");
    }
}
