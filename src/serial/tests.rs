//! Tests of the public serial API through `Maker`, plus the property tests (round trip, idempotence, tampering).
use proptest::prelude::*;
use time::macros::date;

use super::*;
use crate::config::Problems;

const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn config(toml_text: &str) -> SerialConfig {
    toml::from_str(toml_text).unwrap()
}

fn block_maker() -> Maker {
    let text = format!(
        "product_code = 258\nretired_keys = [{{ key_id = \"K0\", key = {{ inline = \"keypost-test-key\" }} }}]\nkey = {{ inline = \"{TEST_KEY_HEX}\" }}"
    );
    Maker::from_config(&config(&text), Path::new(".")).unwrap()
}

fn name_cbc_maker(extra: &str) -> Maker {
    let text = format!("scheme = \"name-cbc\"\nkey = {{ inline = \"keypost-test-key\" }}\n{extra}");
    Maker::from_config(&config(&text), Path::new(".")).unwrap()
}

fn problem_keys(toml_text: &str) -> Vec<String> {
    let mut problems = Problems::new("keypost.toml");
    config(toml_text).validate("product[0].serial", &mut problems);
    problems.items().iter().filter(|p| p.severity == crate::problems::Severity::Error).map(|p| p.key.clone()).collect()
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
    let old_text = "product_code = 258\nkey_id = \"K0\"\nkey = { inline = \"keypost-test-key\" }";
    let old = Maker::from_config(&config(old_text), Path::new(".")).unwrap();
    let serial = old.make("Jane Doe", 1, date!(2024 - 01 - 31)).unwrap();
    let verified = block_maker().verify("jane doe", &serial).unwrap();
    assert_eq!((verified.key_id.as_deref(), verified.retired_key), (Some("K0"), true));
}

#[test]
fn serial_under_a_removed_key_is_refused_naming_the_unknown_key_id() {
    let other = "product_code = 258\nkey_id = \"K7\"\nkey = { inline = \"keypost-test-key\" }";
    let serial = Maker::from_config(&config(other), Path::new(".")).unwrap().make("Jo", 1, date!(2026 - 01 - 01));
    let err = block_maker().verify("Jo", &serial.unwrap()).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKeyId { ref key_id, .. } if key_id == "K7"), "{err}");
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
    let maker = name_cbc_maker("output = \"crockford\"\ngroup = 5");
    let a = maker.make("Zoë O'Brien-Smith", 1, date!(2026 - 01 - 01)).unwrap();
    let b = maker.make("Zoë O'Brien-Smith", 9, date!(2020 - 01 - 01)).unwrap();
    assert_eq!(a, b);
    assert!(maker.verify("Zoë O'Brien-Smith", &a.to_lowercase()).is_ok());
    assert_eq!(maker.verify("zoë o'brien-smith", &a), Err(VerifyError::Mismatch), "name-cbc keeps case");
}

#[test]
fn name_not_representable_in_windows_1252_is_a_clear_error() {
    let maker = name_cbc_maker("name_encoding = \"windows-1252\"");
    let err = maker.make("王小明", 1, date!(2026 - 01 - 01)).unwrap_err();
    assert_eq!(err.to_string(), "the licensee name contains '王', which windows-1252 cannot represent");
}

#[test]
fn validation_reports_every_bad_field_with_its_dotted_key() {
    let keys = problem_keys(
        "scheme = \"name-cbc\"\nkey = { inline = \"short\" }\niv = \"xyz\"\nname_encoding = \"latin1\"\n\
         output = \"base64\"\nnormalise = \"nfc\"\nproduct_code = 1\nseparator = \"abc\"",
    );
    let expected = ["normalise", "product_code", "key", "separator", "iv", "name_encoding", "output"];
    let expected: Vec<String> = expected.iter().map(|f| format!("product[0].serial.{f}")).collect();
    assert_eq!(keys, expected);
}

#[test]
fn block_needs_a_product_code_and_distinct_well_formed_key_ids() {
    let keys = problem_keys(
        "key = { env = \"K\" }\nkey_id = \"KU\"\noutput = \"hex\"\n\
         retired_keys = [{ key_id = \"k1\", key = { env = \"A\" } }, { key_id = \"ZZ\", key = { env = \"B\" } }, \
         { key_id = \"zz\", key = { env = \"C\" } }]",
    );
    let expected = ["output", "product_code", "key_id", "retired_keys[2].key_id"];
    let expected: Vec<String> = expected.iter().map(|f| format!("product[0].serial.{f}")).collect();
    assert_eq!(keys, expected);
}

#[test]
fn inline_key_is_accepted_with_a_warning_that_never_shows_the_key() {
    let mut problems = Problems::new("keypost.toml");
    config("product_code = 1\nkey = { inline = \"keypost-test-key\" }").validate("product[0].serial", &mut problems);
    assert!(!problems.has_errors());
    assert_eq!(problems.items().len(), 1);
    assert_eq!(problems.items()[0].key, "product[0].serial.key");
    assert!(!problems.items()[0].message.contains("keypost-test-key"));
}

#[test]
fn key_from_an_unset_variable_names_the_field_and_the_variable() {
    let text = "product_code = 1\nkey = { env = \"KEYPOST_TEST_SERIAL_KEY_NEVER_SET\" }";
    let err = Maker::from_config(&config(text), Path::new(".")).unwrap_err();
    assert!(matches!(err, SerialError::LoadKey { .. }), "{err}");
    assert_eq!(err.to_string(), "serial.key: environment variable KEYPOST_TEST_SERIAL_KEY_NEVER_SET is not set");
}

#[test]
fn key_file_of_the_wrong_shape_is_refused_without_showing_its_content() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pro.key"), "hunter2\n").unwrap();
    std::fs::set_permissions(dir.path().join("pro.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = "product_code = 1\nkey = { file = \"pro.key\" }";
    let err = Maker::from_config(&config(text), dir.path()).unwrap_err();
    assert!(matches!(err, SerialError::BadKey { .. }), "{err}");
    assert!(err.to_string().contains("file pro.key") && !err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn maker_debug_output_contains_no_key_material() {
    let debug = format!("{:?}", name_cbc_maker(""));
    assert!(!debug.contains("keypost-test-key"), "{debug}");
    assert!(!debug.contains("107, 101, 121"), "{debug}");
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
        let issued = block::EPOCH + time::Duration::days(day);
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
        let extra = format!(
            "name_encoding = {:?}\noutput = {:?}\niv = \"00112233445566778899aabbccddeeff\"",
            NameEncoding::NAMES[encoding], Output::NAMES[output]
        );
        let maker = name_cbc_maker(&extra);
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
        prop_assert!(block.verify(&name, &tamper(&serial, position, shift, text::CROCKFORD_ALPHABET)).is_err());
        let cbc = name_cbc_maker("");
        let serial = cbc.make(&name, 1, date!(2026 - 01 - 01)).unwrap();
        prop_assert!(cbc.verify(&other, &serial).is_err());
        let base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        prop_assert!(cbc.verify(&name, &tamper(&serial, position, shift, base32)).is_err());
    }
}

#[test]
fn maker_refuses_unchecked_settings_listing_every_bad_field() {
    let text = "scheme = \"name-cbc\"\nkey = { env = \"UNUSED\" }\noutput = \"base64\"\niv = \"00\"";
    let err = Maker::from_config(&config(text), Path::new(".")).unwrap_err();
    assert!(matches!(err, SerialError::Config { .. }));
    let message = err.to_string();
    assert!(message.contains("serial.output: unknown value \"base64\"") && message.contains("serial.iv: must be"));
}
