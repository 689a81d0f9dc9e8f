//! Whether an order email was handled before, by what names it: its Message-ID (per provider) and the provider
//! signature that proved it. The content-hash lookup stays in [`Store::seen_email`].
//!
//! # Keys
//! - `m/MESSAGE-ID` -> `provider NUL order id` (written by `Change::index_email`, unchanged since the first
//!   schema): read per provider, so another provider's order never makes a message a duplicate. A second
//!   provider's order under the same Message-ID overwrites the entry; the first's own order id and content hash
//!   still recognise its mail.
//! - `ds/SHA-256(b=)` -> `provider NUL order id`: the `b=` of the DKIM signature that proved an order (the one
//!   keypost verified, or each one the vendor's Authentication-Results can refer to). Only the provider can
//!   make a signature, so a message carrying one that proved another order is that order's mail re-sent with
//!   unsigned headers changed (a new Message-ID, a re-declared Content-Type): never a new order.
//!
//! Both are plain additions to the one table: a state written before them has no `ds/` keys and reads as
//! "never seen", so nothing is migrated.
use super::records::{BY_MESSAGE_ID, key};
use super::{Change, Store, StoreError};

const BY_SIGNATURE: &str = "ds/";

/// The order (`provider` NUL `order id`) an index entry points at, when it is one of `provider`'s.
fn of_provider(value: &[u8], provider: &str) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let (owner, _) = value.split_once('\0')?;
    (owner == provider).then(|| value.into_owned())
}

impl Store {
    /// The order of `provider` an email with this Message-ID already produced; another provider's is not it.
    pub fn seen_message_id(&self, provider: &str, message_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.view()?.get_vec(&key(BY_MESSAGE_ID, &[message_id]))?.and_then(|v| of_provider(&v, provider)))
    }

    /// The order (`provider` NUL `order id`) one of these provider signatures (digests) already proved.
    pub fn seen_signature(&self, digests: &[String]) -> Result<Option<String>, StoreError> {
        let view = self.view()?;
        for digest in digests {
            if let Some(value) = view.get_vec(&key(BY_SIGNATURE, &[digest]))? {
                return Ok(Some(String::from_utf8_lossy(&value).into_owned()));
            }
        }
        Ok(None)
    }
}

impl Change {
    /// Remembers the provider signatures (digests) that proved this order.
    pub fn index_signatures(&mut self, digests: &[String], provider: &str, order_id: &str) {
        let order_ref = [provider, order_id].join("\0").into_bytes();
        for digest in digests {
            self.put(key(BY_SIGNATURE, &[digest]), order_ref.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_indexed_as_states_always_did_is_seen_for_its_provider_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut change = Change::new();
        change.index_email(Some("m1@p"), "hash1", "paypal", "A-1");
        store.commit(change).unwrap();
        assert_eq!(store.seen_message_id("paypal", "m1@p").unwrap().as_deref(), Some("paypal\0A-1"));
        assert_eq!(store.seen_message_id("gumroad", "m1@p").unwrap(), None);
        assert_eq!(store.seen_message_id("paypal", "m2@p").unwrap(), None);
    }

    #[test]
    fn a_signature_is_seen_once_indexed_and_a_state_without_signatures_has_seen_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        assert_eq!(store.seen_signature(std::slice::from_ref(&a)).unwrap(), None);
        let mut change = Change::new();
        change.index_signatures(std::slice::from_ref(&a), "gumroad", "G-1");
        store.commit(change).unwrap();
        assert_eq!(store.seen_signature(&[b.clone(), a]).unwrap().as_deref(), Some("gumroad\0G-1"));
        assert_eq!(store.seen_signature(&[b]).unwrap(), None);
    }
}
