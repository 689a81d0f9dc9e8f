//! Tests of `[product.serial]`: validation with dotted keys, key loading, and that a config builds the maker it
//! describes. The schemes themselves are tested in the `keypost-serial` crate.
use std::path::Path;

use time::macros::date;

use super::*;
use crate::problems::Problems;

const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn config(toml_text: &str) -> SerialConfig {
    toml::from_str(toml_text).unwrap()
}

fn maker(toml_text: &str) -> Maker {
    config(toml_text).maker(Path::new(".")).unwrap()
}

fn problem_keys(toml_text: &str) -> Vec<String> {
    let mut problems = Problems::new("keypost.toml");
    config(toml_text).validate("product[0].serial", &mut problems);
    problems.items().iter().filter(|p| p.severity == crate::problems::Severity::Error).map(|p| p.key.clone()).collect()
}

#[test]
fn block_config_with_a_retired_key_builds_a_maker_that_verifies_under_both() {
    let current = maker(&format!(
        "product_code = 258\nretired_keys = [{{ key_id = \"k0\", key = {{ inline = \"keypost-test-key\" }} }}]\n\
         key = {{ inline = \"{TEST_KEY_HEX}\" }}"
    ));
    let old = maker("product_code = 258\nkey_id = \"K0\"\nkey = { inline = \"keypost-test-key\" }");
    let serial = old.make("Jane Doe", 1, date!(2024 - 01 - 31)).unwrap();
    let verified = current.verify("jane doe", &serial).unwrap();
    assert_eq!((verified.key_id.as_deref(), verified.retired_key), (Some("K0"), true));
    let new = current.make("Jane Doe", 2, date!(2026 - 01 - 01)).unwrap();
    assert_eq!((new.len(), &new[..2]), (34, "K1"), "defaults: key id K1, groups of 4");
    assert_eq!(current.scheme(), Scheme::Block);
    assert_eq!(current.rule(), NormaliseRule::Rfc8266Casefold);
}

#[test]
fn name_cbc_config_applies_its_encoding_output_grouping_and_rule() {
    let cbc = maker(
        "scheme = \"name-cbc\"\nkey = { inline = \"keypost-test-key\" }\noutput = \"crockford\"\ngroup = 5\n\
         normalise = \"rfc8266-casefold\"",
    );
    let serial = cbc.make("ZOË", 1, date!(2026 - 01 - 01)).unwrap();
    assert_eq!(serial.chars().nth(5), Some('-'), "{serial}");
    assert!(cbc.verify("zoë", &serial).is_ok());
    assert_eq!(cbc.scheme(), Scheme::NameCbc);
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
    let err = config(text).maker(Path::new(".")).unwrap_err();
    assert!(matches!(err, LoadError::LoadKey { .. }), "{err}");
    assert_eq!(err.to_string(), "serial.key: environment variable KEYPOST_TEST_SERIAL_KEY_NEVER_SET is not set");
}

#[test]
fn key_file_of_the_wrong_shape_is_refused_without_showing_its_content() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pro.key"), "hunter2\n").unwrap();
    std::fs::set_permissions(dir.path().join("pro.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = "product_code = 1\nkey = { file = \"pro.key\" }";
    let err = config(text).maker(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::BadKey { .. }), "{err}");
    assert!(err.to_string().contains("file pro.key") && !err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn maker_refuses_unchecked_settings_listing_every_bad_field() {
    let text = "scheme = \"name-cbc\"\nkey = { env = \"UNUSED\" }\noutput = \"base64\"\niv = \"00\"";
    let err = config(text).maker(Path::new(".")).unwrap_err();
    assert!(matches!(err, LoadError::Config { .. }));
    let message = err.to_string();
    assert!(message.contains("serial.output: unknown value \"base64\"") && message.contains("serial.iv: must be"));
}
