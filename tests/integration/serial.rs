//! Integration tests: `keypost serial` and `keypost verify`, run as a user runs the built binary.
use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = r#"
[[product]]
id = "pro"
name = "Pro"
[product.serial]
product_code = 258
key = { file = "pro.key" }

[[product]]
id = "legacy"
name = "Legacy"
[product.serial]
scheme = "name-cbc"
key = { env = "KEYPOST_IT_LEGACY_KEY" }
output = "crockford"
group = 5
"#;

/// A temp dir holding keypost.toml and a private test key file.
fn setup() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keypost.toml"), CONFIG).unwrap();
    let key = dir.path().join("pro.key");
    std::fs::write(&key, "000102030405060708090a0b0c0d0e0f\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

fn keypost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keypost"))
        .current_dir(dir)
        .args(args)
        .env("KEYPOST_IT_LEGACY_KEY", "keypost-test-key")
        .env_remove("KEYPOST_CONFIG")
        .env("KEYPOST_LOG", "error")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn block_serial_from_the_cli_verifies_with_its_seats_and_date() {
    let dir = setup();
    let made = keypost(
        dir.path(),
        &["serial", "--product", "pro", "--name", "Åsa  Öberg", "--seats", "5", "--date", "2026-11-22"],
    );
    assert!(made.status.success(), "{made:?}");
    let serial = stdout(&made).trim().to_owned();
    assert_eq!(serial.len(), 34, "{serial}");
    assert!(serial.starts_with("K1"), "{serial}");
    let checked = keypost(dir.path(), &["verify", "-p", "pro", "-n", " åsa öberg ", "-s", &serial.to_lowercase()]);
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    assert_eq!(stdout(&checked), "valid: licensee \"åsa öberg\", seats 5, issued 2026-11-22, key K1\n");
}

#[test]
fn tampered_serial_exits_1_with_a_one_line_reason() {
    let dir = setup();
    let made = keypost(dir.path(), &["serial", "-p", "pro", "-n", "Jane Doe"]);
    let serial = stdout(&made).trim().to_owned();
    let last = serial.chars().last().unwrap();
    let tampered = format!("{}{}", &serial[..serial.len() - 1], if last == 'A' { 'B' } else { 'A' });
    let checked = keypost(dir.path(), &["verify", "-p", "pro", "-n", "Jane Doe", "-s", &tampered]);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    let out = stdout(&checked);
    assert!(out.starts_with("invalid: ") && out.lines().count() == 1, "{out}");
}

#[test]
fn name_cbc_serial_for_another_name_is_refused() {
    let dir = setup();
    let made = keypost(dir.path(), &["serial", "-p", "legacy", "-n", "Zoë O'Brien-Smith"]);
    assert!(made.status.success(), "{made:?}");
    let serial = stdout(&made).trim().to_owned();
    let good = keypost(dir.path(), &["verify", "-p", "legacy", "-n", "Zoë O'Brien-Smith", "-s", &serial]);
    assert_eq!((good.status.code(), stdout(&good)), (Some(0), "valid: licensee \"Zoë O'Brien-Smith\"\n".to_owned()));
    let other = keypost(dir.path(), &["verify", "-p", "legacy", "-n", "Zoe O'Brien-Smith", "-s", &serial]);
    assert_eq!(other.status.code(), Some(1), "{other:?}");
}

#[test]
fn unknown_product_is_an_error_listing_the_known_ids() {
    let dir = setup();
    let out = keypost(dir.path(), &["serial", "-p", "nope", "-n", "Jane"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("unknown product \"nope\"") && stderr.contains("known products: \"pro\", \"legacy\""),
        "{stderr}"
    );
}

#[test]
fn name_that_normalises_to_nothing_is_refused_by_the_cli() {
    let dir = setup();
    let out = keypost(dir.path(), &["serial", "-p", "pro", "-n", " \u{a0} "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("empty once normalised"));
}
