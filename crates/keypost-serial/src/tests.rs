//! Tests of the public API through `Maker`, plus the property tests (round trip, idempotence, tampering).
use proptest::prelude::*;
use time::macros::date;

use super::*;

const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn key(text: &str) -> Key {
    Key::parse(text).unwrap()
}

fn block_maker() -> Maker {
    Maker::block(258, "K1", key(TEST_KEY_HEX)).unwrap().with_retired_key("K0", key("keypost-test-key")).unwrap()
}

fn name_cbc_maker(encoding: NameEncoding, output: Output) -> Maker {
    Maker::name_cbc(key("keypost-test-key"), [0; 16], encoding, output)
}

#[test]
fn block_serial_verifies_with_its_seats_date_and_key_id() {
    let maker = block_maker();
    let serial = maker.make("  José Müller ", 3, date!(2026 - 11 - 22)).unwrap();
    assert_eq!(serial.len(), 28 + 6, "seven groups of four joined by dashes");
    let verified = maker.verify("JOSE\u{301} MU\u{308}LLER", &serial).unwrap();
    assert_eq!(verified.seats, Some(3));
    assert_eq!(verified.issued, Some(date!(2026 - 11 - 22)));
    assert_eq!(verified.key_id.as_deref(), Some("K1"));
    assert_eq!(verified.licensee, "josé müller");
    assert!(!verified.retired_key);
}

#[test]
fn serial_under_a_retired_key_still_verifies_and_says_so() {
    let old = Maker::block(258, "k0", key("keypost-test-key")).unwrap();
    let serial = old.make("Jane Doe", 1, date!(2024 - 01 - 31)).unwrap();
    let verified = block_maker().verify("jane doe", &serial).unwrap();
    assert_eq!((verified.key_id.as_deref(), verified.retired_key), (Some("K0"), true));
}

#[test]
fn serial_under_a_removed_key_is_refused_naming_the_unknown_key_id() {
    let serial = Maker::block(258, "K7", key("keypost-test-key")).unwrap().make("Jo", 1, date!(2026 - 01 - 01));
    let err = block_maker().verify("Jo", &serial.unwrap()).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKeyId { ref key_id, .. } if key_id == "K7"), "{err}");
    assert!(err.to_string().contains("known: K1, K0"), "{err}");
}

#[test]
fn bad_and_duplicate_key_ids_are_refused_when_building_a_maker() {
    assert_eq!(Maker::block(1, "KU", key(TEST_KEY_HEX)).unwrap_err(), SerialError::BadKeyId { key_id: "KU".into() });
    let err = Maker::block(1, "K1", key(TEST_KEY_HEX)).unwrap().with_retired_key("k1", key(TEST_KEY_HEX));
    assert_eq!(err.unwrap_err(), SerialError::DuplicateKeyId { key_id: "K1".into() });
}

#[test]
fn verification_forgives_case_spaces_dashes_and_crockford_look_alikes() {
    let maker = block_maker();
    let serial = maker.make("Jo", 1, date!(2026 - 01 - 01)).unwrap();
    let sloppy: String = serial
        .replace('-', " ")
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            c => c,
        })
        .collect();
    assert!(maker.verify("jo", &format!(" {sloppy} ")).is_ok(), "{sloppy}");
}

#[test]
fn name_cbc_ignores_seats_and_date_and_verifies_any_case() {
    let maker = name_cbc_maker(NameEncoding::Utf8, Output::Crockford).with_groups(5, "-");
    let a = maker.make("Zoë O'Brien-Smith", 1, date!(2026 - 01 - 01)).unwrap();
    let b = maker.make("Zoë O'Brien-Smith", 9, date!(2020 - 01 - 01)).unwrap();
    assert_eq!(a, b);
    assert!(maker.verify("Zoë O'Brien-Smith", &a.to_lowercase()).is_ok());
    assert_eq!(maker.verify("zoë o'brien-smith", &a), Err(VerifyError::Mismatch), "name-cbc keeps case");
}

#[test]
fn name_not_representable_in_windows_1252_is_a_clear_error() {
    let maker = name_cbc_maker(NameEncoding::Windows1252, Output::Base32);
    let err = maker.make("王小明", 1, date!(2026 - 01 - 01)).unwrap_err();
    assert_eq!(err.to_string(), "the licensee name contains '王', which windows-1252 cannot represent");
}

#[test]
fn maker_debug_output_contains_no_key_material() {
    for maker in [name_cbc_maker(NameEncoding::Utf8, Output::Hex), block_maker()] {
        let debug = format!("{maker:?}");
        assert!(!debug.contains("keypost-test-key"), "{debug}");
        assert!(!debug.contains("107, 101, 121"), "{debug}");
    }
}

/// Any serial character replaced by a different symbol of the serial's alphabet.
fn tamper(serial: &str, position: usize, shift: usize, alphabet: &str) -> String {
    let symbols: Vec<char> = serial.chars().filter(|c| *c != '-').collect();
    let index = position % symbols.len();
    let alphabet: Vec<char> = alphabet.chars().collect();
    let at = alphabet.iter().position(|c| *c == symbols[index]).unwrap();
    let mut changed = symbols.clone();
    changed[index] = alphabet[(at + 1 + shift % (alphabet.len() - 1)) % alphabet.len()];
    changed.into_iter().collect()
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ \\PC]{1,40}", "[a-zA-Z\u{a0}\u{301}\u{308}ÅéØßİΣς ]{1,24}"]
}

const ENCODINGS: [NameEncoding; 3] = [NameEncoding::Utf8, NameEncoding::Utf16Le, NameEncoding::Windows1252];
const OUTPUTS: [Output; 3] = [Output::Base32, Output::Crockford, Output::Hex];

proptest! {
    #[test]
    fn normalisation_is_idempotent_for_every_rule(name in any_name()) {
        for rule in [NormaliseRule::Rfc8266, NormaliseRule::Rfc8266Casefold, NormaliseRule::None] {
            if let Ok(once) = normalise(&name, rule) {
                prop_assert_eq!(normalise(&once, rule).unwrap(), once);
            }
        }
    }

    #[test]
    fn block_serial_round_trips_for_any_usable_name(name in any_name(), seats in 1u32..=65535, day in 0i64..65535) {
        let maker = block_maker();
        let issued = EPOCH + time::Duration::days(day);
        let Ok(expected) = maker.normalised(&name) else {
            prop_assert!(maker.make(&name, seats, issued).is_err());
            return Ok(());
        };
        let serial = maker.make(&name, seats, issued).unwrap();
        let verified = maker.verify(&name, &serial).unwrap();
        prop_assert_eq!(verified.licensee, expected);
        prop_assert_eq!((verified.seats, verified.issued), (Some(seats), Some(issued)));
    }

    #[test]
    fn name_cbc_serial_round_trips_in_every_encoding(name in any_name(), encoding in 0usize..3, output in 0usize..3) {
        let maker = Maker::name_cbc(
            key("keypost-test-key"), parse_16("00112233445566778899aabbccddeeff").unwrap(),
            ENCODINGS[encoding], OUTPUTS[output],
        );
        match maker.make(&name, 1, date!(2026 - 01 - 01)) {
            Ok(serial) => prop_assert!(maker.verify(&name, &serial).is_ok()),
            // Only an unusable name, or one Windows-1252 cannot hold, may fail to make a serial.
            Err(err) => prop_assert!(
                maker.normalised(&name).is_err() || matches!(err, SerialError::NotRepresentable { .. }),
                "{err}"
            ),
        }
    }

    #[test]
    fn another_name_or_one_changed_character_fails(
        name in "[a-z]{1,12}", other in "[a-z]{1,12}", position in 0usize..64, shift in 0usize..64,
    ) {
        prop_assume!(name != other);
        let block = block_maker();
        let serial = block.make(&name, 1, date!(2026 - 01 - 01)).unwrap();
        prop_assert!(block.verify(&other, &serial).is_err());
        prop_assert!(block.verify(&name, &tamper(&serial, position, shift, CROCKFORD_ALPHABET)).is_err());
        let cbc = name_cbc_maker(NameEncoding::Utf8, Output::Base32);
        let serial = cbc.make(&name, 1, date!(2026 - 01 - 01)).unwrap();
        prop_assert!(cbc.verify(&other, &serial).is_err());
        let base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        prop_assert!(cbc.verify(&name, &tamper(&serial, position, shift, base32)).is_err());
    }
}
