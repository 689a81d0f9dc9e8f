//! Integration tests: `keypost serial` and `keypost verify`, run as a user runs the built binary.
use std::path::Path;
use std::process::Output;

use time::ext::NumericalDuration as _;

const CONFIG: &str = r#"
[[product]]
id = "pro"
name = "Pro"
[product.serial]
product_code = 258
key = { file = "pro.key" }

[[product]]
id = "suite"
name = "Suite"
skus = ["SUITE", "SUITE-PRO-1Y"]
[product.serial]
product_code = 259
key = { file = "pro.key" }
editions = ["standard", "pro", "team"]
terms = { "SUITE-PRO-1Y" = { edition = "pro", term = "365d" } }

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
    crate::support::keypost(dir, args).env("KEYPOST_IT_LEGACY_KEY", "keypost-test-key").output().unwrap()
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
    assert_eq!(
        stdout(&checked),
        "valid: product \"pro\", licensee \"åsa öberg\", edition none, seats 5, issued 2026-11-22, expires never, \
         key K1\n"
    );
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
    let expected = "valid: product \"legacy\", licensee \"Zoë O'Brien-Smith\"\n";
    assert_eq!((good.status.code(), stdout(&good).as_str()), (Some(0), expected));
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
        stderr.contains("unknown product \"nope\"")
            && stderr.contains("known products: \"pro\", \"suite\", \"legacy\""),
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

#[test]
fn edition_and_expiry_serial_verifies_until_its_last_day_and_is_refused_after_it() {
    let dir = setup();
    let args = ["serial", "-p", "suite", "-n", "Jane Doe", "--seats", "3", "--date", "2026-11-22"];
    let made = keypost(dir.path(), &[&args[..], &["--edition", "pro+team", "--expires", "365d"]].concat());
    assert!(made.status.success(), "{made:?}");
    let serial = stdout(&made).trim().to_owned();
    let at = |day: &str| keypost(dir.path(), &["verify", "-p", "suite", "-n", "jane doe", "-s", &serial, "--at", day]);
    let last_day = at("2027-11-22");
    assert_eq!(
        (last_day.status.code(), stdout(&last_day)),
        (
            Some(0),
            "valid: product \"suite\", licensee \"jane doe\", edition pro+team, seats 3, issued 2026-11-22, \
             expires 2027-11-22, key K1\n"
                .to_owned()
        )
    );
    let late = at("2027-11-23");
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    assert_eq!(stdout(&late), "invalid: the licence expired on 2027-11-22 (checked on 2027-11-23)\n");
}

#[test]
fn a_product_with_editions_gives_its_first_edition_by_default_and_names_unknown_ones() {
    let dir = setup();
    let made = keypost(dir.path(), &["serial", "-p", "suite", "-n", "Jo", "--date", "2026-01-01"]);
    let serial = stdout(&made).trim().to_owned();
    let checked = keypost(dir.path(), &["verify", "-p", "suite", "-n", "Jo", "-s", &serial]);
    assert!(stdout(&checked).contains("edition standard, seats 1, issued 2026-01-01, expires never"), "{checked:?}");
    let unknown = keypost(dir.path(), &["serial", "-p", "suite", "-n", "Jo", "--edition", "gold"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert!(stderr.contains("unknown edition \"gold\"; this product's editions: standard, pro, team"), "{stderr}");
    let cbc = keypost(dir.path(), &["serial", "-p", "legacy", "-n", "Jo", "--expires", "30d"]);
    assert_eq!(cbc.status.code(), Some(1));
    assert!(String::from_utf8(cbc.stderr).unwrap().contains("name-cbc cannot carry an edition or an expiry"));
}

#[test]
fn activation_code_is_bound_to_the_machine_and_refused_for_another_products_serial() {
    let dir = setup();
    let made = keypost(dir.path(), &["serial", "-p", "pro", "-n", "Jane Doe", "--date", "2026-11-22"]);
    let serial = stdout(&made).trim().to_owned();
    let activate =
        |product: &str, machine: &str| keypost(dir.path(), &["activate", "-p", product, "-s", &serial, "-m", machine]);
    let code = stdout(&activate("pro", "machine-7f3a")).trim().to_owned();
    assert_eq!((code.len(), code.matches('-').count()), (19, 3), "{code}");
    assert_eq!(stdout(&activate("pro", " machine-7f3a ")).trim(), code, "surrounding spaces do not count");
    assert_ne!(stdout(&activate("pro", "machine-7f3b")).trim(), code);
    let other = activate("suite", "machine-7f3a");
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(stdout(&other), "invalid: the serial is mistyped or belongs to another product\n");
    let named = keypost(dir.path(), &["activate", "-p", "pro", "-s", &serial, "-m", "m1", "-n", "John Doe"]);
    assert_eq!(stdout(&named), "invalid: the serial does not match this licensee name\n");
}

#[test]
fn check_names_the_key_of_a_bad_edition_term_upgrade_or_unsold_sku() {
    let dir = setup();
    let bad = CONFIG.replace(
        r#"terms = { "SUITE-PRO-1Y" = { edition = "pro", term = "365d" } }"#,
        r#"terms = { "SUITE-PRO-1Y" = { edition = "gold", term = "1y" }, "NOT-SOLD" = { upgrade_from = "platinum" } }"#,
    );
    std::fs::write(dir.path().join("keypost.toml"), bad).unwrap();
    let out = keypost(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    for key in [
        r#"product[1].serial.terms."SUITE-PRO-1Y".edition"#,
        r#"product[1].serial.terms."SUITE-PRO-1Y".term"#,
        r#"product[1].serial.terms."NOT-SOLD""#,
        r#"product[1].serial.terms."NOT-SOLD".upgrade_from"#,
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
}

/// A sale of a SKU with terms, through the daemon on the demo's Maildir: the serial it mails carries the SKU's
/// edition and expiry (a year from the day it was issued).
#[test]
fn the_daemon_issues_the_edition_and_term_of_the_sold_sku() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_demo(dir.path());
    let demo = std::fs::read_to_string(dir.path().join("demo.toml")).unwrap();
    let plain =
        r#"serial = { product_code = 258, key_id = "K1", key = { inline = "00112233445566778899aabbccddeeff" } }"#;
    assert!(demo.contains(plain), "the demo's acme-pro serial line changed");
    let terms = r#", editions = ["standard", "pro"], terms = { "ACME-PRO" = { edition = "pro", term = "365d" } } }"#;
    let with_terms = format!("{}{terms}", plain.strip_suffix(" }").unwrap());
    std::fs::write(dir.path().join("demo.toml"), demo.replace(plain, &with_terms)).unwrap();
    let run = |args: &[&str]| {
        let out = keypost(dir.path(), &[&["--config", "demo.toml"], args].concat());
        assert!(out.status.success() || args[0] == "verify", "{args:?}: {out:?}");
        stdout(&out)
    };
    run(&["run", "--once"]);
    let licenses: Vec<serde_json::Value> = run(&["export"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["license"]["product"] == "acme-pro")
        .collect();
    let listed = |record: &serde_json::Value| {
        record["license"]["sku"].as_str().is_some_and(|sku| sku.eq_ignore_ascii_case("ACME-PRO"))
    };
    assert!(licenses.iter().any(listed), "no acme-pro license sold under the SKU ACME-PRO");
    for record in &licenses {
        let license = &record["license"];
        let (name, serial) = (license["licensee"].as_str().unwrap(), license["serial"].as_str().unwrap());
        let issued = license["issued"].as_str().unwrap();
        let verified = run(&["verify", "-p", "acme-pro", "-n", name, "-s", serial, "--at", issued]);
        let date = time::Date::parse(issued, time::macros::format_description!("[year]-[month]-[day]")).unwrap();
        // A sale matched by product name rather than by the listed SKU gets the first edition, perpetual.
        let expected = if listed(record) {
            format!(", edition pro, seats {}, issued {date}, expires {}, key K1", license["seats"], date + 365.days())
        } else {
            format!(", edition standard, seats {}, issued {date}, expires never, key K1", license["seats"])
        };
        assert!(verified.starts_with("valid: ") && verified.contains(&expected), "{verified} lacks {expected}");
    }
}

/// `tests/vectors/serial.json` against the library, and against `docs/serial-format.md` (so they cannot drift).
/// `KEYPOST_BLESS=1` rewrites the computed fields of the JSON and the vector tables of the document.
mod vectors {
    use std::path::{Path, PathBuf};

    use keypost::serial::{Licence, Maker, SerialConfig, SerialError};
    use serde_json::{Value, json};

    const BEGIN: &str = "<!-- BEGIN VECTORS: generated from tests/vectors/serial.json -->";
    const END: &str = "<!-- END VECTORS -->";

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn blessing() -> bool {
        std::env::var_os("KEYPOST_BLESS").is_some_and(|v| v == "1")
    }

    fn load() -> Value {
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/vectors/serial.json")).unwrap()).unwrap()
    }

    fn text<'a>(value: &'a Value, field: &str) -> &'a str {
        value[field].as_str().unwrap_or_else(|| panic!("{field} missing in {value}"))
    }

    /// The set's parameters as a `[product.serial]` table with the test key inline.
    fn maker(set: &Value) -> Maker {
        let mut config = set.as_object().unwrap().clone();
        for field in ["id", "seats", "issued", "edition", "expires"] {
            config.remove(field);
        }
        config.insert("key".into(), json!({ "inline": text(set, "key") }));
        let config: SerialConfig = serde_json::from_value(Value::Object(config)).unwrap();
        config.maker(Path::new(".")).unwrap()
    }

    fn error_code(err: &SerialError) -> &'static str {
        match err {
            SerialError::NotRepresentable { .. } => "not-representable",
            SerialError::EmptyName => "empty-name",
            SerialError::ControlCharacter { .. } => "control-character",
            other => panic!("unexpected error for a vector: {other}"),
        }
    }

    /// What keypost computes for one vector: its `normalised`, `serial` and `error` fields.
    fn compute(sets: &[Value], vector: &Value) -> Value {
        let set = sets.iter().find(|s| s["id"] == vector["set"]).unwrap();
        let maker = maker(set);
        let name = text(vector, "name");
        let seats = set["seats"].as_u64().map_or(1, |s| u32::try_from(s).unwrap());
        let date = |text: &str| time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"));
        let mut licence = Licence::new(seats, date(set["issued"].as_str().unwrap_or("2000-01-01")).unwrap());
        licence.edition = set["edition"].as_u64().map_or(0, |bits| u8::try_from(bits).unwrap());
        licence.expires = set["expires"].as_str().map(|text| date(text).unwrap());
        let normalised = maker.normalised(name).unwrap();
        match maker.issue(name, &licence) {
            Ok(serial) => json!({ "normalised": normalised, "serial": serial, "error": null }),
            Err(err) => json!({ "normalised": normalised, "serial": null, "error": error_code(&err) }),
        }
    }

    /// What keypost computes for one activation: its `code`.
    fn compute_activation(sets: &[Value], activation: &Value) -> Value {
        let set = sets.iter().find(|s| s["id"] == activation["set"]).unwrap();
        let code = maker(set).activation_code(text(activation, "serial"), text(activation, "machine")).unwrap();
        json!(code)
    }

    /// JSON with every non-ASCII character as a `\uXXXX` escape, so NFC and NFD differ visibly.
    fn ascii_json(value: &Value) -> String {
        escape_non_ascii(&serde_json::to_string(value).unwrap())
    }

    /// Non-ASCII characters only occur inside JSON strings, where `\uXXXX` (UTF-16 units) means the same.
    fn escape_non_ascii(json_text: &str) -> String {
        let mut out = String::new();
        for c in json_text.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units).iter().for_each(|u| out.push_str(&format!("\\u{u:04x}")));
            }
        }
        out
    }

    /// The vector tables of `docs/serial-format.md`, one line per set and per vector.
    fn doc_lines(file: &Value) -> Vec<String> {
        let mut lines = vec!["| set | scheme | test key | parameters |".to_owned(), "|---|---|---|---|".to_owned()];
        for set in file["sets"].as_array().unwrap() {
            let mut params = set.as_object().unwrap().clone();
            let [id, scheme, key] = ["id", "scheme", "key"].map(|f| params.remove(f).unwrap());
            let (id, scheme, key) = (id.as_str().unwrap(), scheme.as_str().unwrap(), key.as_str().unwrap());
            lines.push(format!("| `{id}` | {scheme} | `{key}` | `{}` |", ascii_json(&Value::Object(params))));
        }
        lines.push(String::new());
        lines.push("| set | name | raw name (JSON) | normalised (JSON) | serial |".to_owned());
        lines.push("|---|---|---|---|---|".to_owned());
        for v in file["vectors"].as_array().unwrap() {
            let serial =
                v["serial"].as_str().map_or_else(|| format!("error: {}", text(v, "error")), |s| format!("`{s}`"));
            lines.push(format!(
                "| `{}` | {} | `{}` | `{}` | {serial} |",
                text(v, "set"),
                text(v, "label"),
                ascii_json(&v["name"]),
                ascii_json(&v["normalised"]),
            ));
        }
        lines.push(String::new());
        lines.push("| set | serial (as typed) | machine id (JSON) | activation code |".to_owned());
        lines.push("|---|---|---|---|".to_owned());
        for a in file["activations"].as_array().unwrap() {
            let (set, serial, code) = (text(a, "set"), text(a, "serial"), text(a, "code"));
            lines.push(format!("| `{set}` | `{serial}` | `{}` | `{code}` |", ascii_json(&a["machine"])));
        }
        lines
    }

    fn bless(mut file: Value, doc: &str) {
        let sets = file["sets"].as_array().unwrap().clone();
        for vector in file["vectors"].as_array_mut().unwrap() {
            let computed = compute(&sets, vector);
            for (field, value) in computed.as_object().unwrap() {
                vector[field] = value.clone();
            }
        }
        for activation in file["activations"].as_array_mut().unwrap() {
            activation["code"] = compute_activation(&sets, activation);
        }
        let pretty = escape_non_ascii(&serde_json::to_string_pretty(&file).unwrap());
        std::fs::write(root().join("tests/vectors/serial.json"), pretty + "\n").unwrap();
        let (before, rest) = doc.split_once(BEGIN).unwrap();
        let (_, after) = rest.split_once(END).unwrap();
        let table = doc_lines(&file).join("\n");
        std::fs::write(root().join("docs/serial-format.md"), format!("{before}{BEGIN}\n{table}\n{END}{after}"))
            .unwrap();
    }

    #[test]
    fn every_vector_in_the_json_is_what_keypost_computes() {
        let file = load();
        let doc = std::fs::read_to_string(root().join("docs/serial-format.md")).unwrap();
        if blessing() {
            bless(file.clone(), &doc);
            eprintln!("KEYPOST_BLESS=1: rewrote tests/vectors/serial.json and the tables of docs/serial-format.md");
            return;
        }
        let sets = file["sets"].as_array().unwrap();
        let vectors = file["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 40, "only {} vectors", vectors.len());
        for vector in vectors {
            let computed = compute(sets, vector);
            for field in ["normalised", "serial", "error"] {
                assert_eq!(vector[field], computed[field], "{field} of {}/{}", vector["set"], vector["name_id"]);
            }
        }
        let activations = file["activations"].as_array().unwrap();
        assert!(activations.len() >= 5, "only {} activations", activations.len());
        for activation in activations {
            assert_eq!(activation["code"], compute_activation(sets, activation), "{activation}");
        }
    }

    #[test]
    fn every_vector_appears_in_the_format_document() {
        let file = load();
        let doc = std::fs::read_to_string(root().join("docs/serial-format.md")).unwrap();
        let lines = doc_lines(&file);
        assert!(lines.len() > file["vectors"].as_array().unwrap().len());
        for line in lines.iter().filter(|l| l.starts_with("| `")) {
            assert!(doc.lines().any(|d| d == line), "docs/serial-format.md lacks:\n{line}");
        }
    }
}
