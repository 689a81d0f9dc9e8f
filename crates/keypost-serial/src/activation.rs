//! Offline activation codes: a MAC over the serial (in its canonical text) and the machine id the app reports,
//! under a key derived from the serial's product key. The app recomputes it without a network. Pure.
//! Algorithm: `docs/serial-format.md` section 6.
use secrecy::zeroize::Zeroizing;

use crate::block::{constant_time_eq, hmac_sha256};
use crate::key::Key;
use crate::text::Output;

/// Label from which the activation key is derived (HMAC-SHA256 under the product key).
const ACTIVATION_KEY_LABEL: &[u8] = b"keypost activation v1 key";
/// Bytes of the MAC kept: 80 bits, 16 Crockford symbols.
const CODE_BYTES: usize = 10;
/// Symbols of a code, printed in groups of 4.
pub const CODE_LEN: usize = 16;

/// The machine id as the MAC takes it: surrounding white space removed; `None` if nothing is left.
pub(crate) fn machine_id(machine: &str) -> Option<&str> {
    Some(machine.trim()).filter(|m| !m.is_empty())
}

/// The code's 16 symbols (ungrouped) for a canonical serial and a trimmed machine id.
pub(crate) fn code(key: &Key, canonical_serial: &str, machine: &str) -> String {
    let activation_key = Zeroizing::new(hmac_sha256(key.bytes(), &[ACTIVATION_KEY_LABEL]));
    let mac = hmac_sha256(activation_key.as_slice(), &[canonical_serial.as_bytes(), &[0], machine.as_bytes()]);
    Output::Crockford.encode(mac.get(..CODE_BYTES).unwrap_or_default())
}

/// True when the typed code (canonical Crockford) is `expected`, compared in constant time.
pub(crate) fn matches(typed: &str, expected: &str) -> bool {
    constant_time_eq(typed.as_bytes(), expected.as_bytes())
}
