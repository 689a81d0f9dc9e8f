//! Every vector of keypost's `tests/vectors/serial.json`, made and verified with this crate alone (no keypost
//! configuration layer): the vectors are the format's contract, so the crate an app uses must reproduce them.
use keypost_serial::{Key, Licence, Maker, NameEncoding, NormaliseRule, Output, SerialError, parse_16};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/serial.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value[field].as_str()
}

fn maker(set: &Value) -> Maker {
    let key = Key::parse(text(set, "key").unwrap()).unwrap();
    let maker = match text(set, "scheme").unwrap() {
        "block" => {
            let code = u16::try_from(set["product_code"].as_u64().unwrap()).unwrap();
            Maker::block(code, text(set, "key_id").unwrap_or("K1"), key).unwrap()
        }
        "name-cbc" => {
            let iv = text(set, "iv").map_or([0; 16], |iv| parse_16(iv).unwrap());
            let encoding = NameEncoding::parse(text(set, "name_encoding").unwrap_or("utf-8")).unwrap();
            Maker::name_cbc(key, iv, encoding, Output::parse(text(set, "output").unwrap_or("base32")).unwrap())
        }
        other => panic!("unknown scheme {other}"),
    };
    let group = usize::try_from(set["group"].as_u64().unwrap()).unwrap();
    let rule = NormaliseRule::parse(text(set, "normalise").unwrap()).unwrap();
    maker.with_groups(group, text(set, "separator").unwrap_or("-")).with_rule(rule)
}

fn date(text: &str) -> time::Date {
    let (y, rest) = text.split_once('-').unwrap();
    let (m, d) = rest.split_once('-').unwrap();
    let month = time::Month::try_from(m.parse::<u8>().unwrap()).unwrap();
    time::Date::from_calendar_date(y.parse().unwrap(), month, d.parse().unwrap()).unwrap()
}

#[test]
fn every_vector_is_made_and_verified_by_the_crate_alone() {
    let file = vectors();
    let sets = file["sets"].as_array().unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 40, "only {} vectors", vectors.len());
    for vector in vectors {
        let set = sets.iter().find(|s| s["id"] == vector["set"]).unwrap();
        let maker = maker(set);
        let name = text(vector, "name").unwrap();
        let seats = set["seats"].as_u64().map_or(1, |s| u32::try_from(s).unwrap());
        let mut licence = Licence::new(seats, date(text(set, "issued").unwrap_or("2000-01-01")));
        licence.edition = set["edition"].as_u64().map_or(0, |bits| u8::try_from(bits).unwrap());
        licence.expires = text(set, "expires").map(date);
        let what = format!("{}/{}", vector["set"], vector["name_id"]);
        assert_eq!(maker.normalised(name).ok().as_deref(), text(vector, "normalised"), "{what}");
        match (maker.issue(name, &licence), text(vector, "serial")) {
            (Ok(serial), Some(expected)) => {
                assert_eq!(serial, expected, "{what}");
                let verified = maker.verify(name, expected).unwrap();
                assert_eq!(Some(verified.licensee.as_str()), text(vector, "normalised"), "{what}");
                if set["scheme"] == "block" {
                    let layout = if licence.edition == 0 && licence.expires.is_none() { 1 } else { 2 };
                    assert_eq!(verified.layout, Some(layout), "{what}");
                    assert_eq!((verified.seats, verified.issued), (Some(seats), Some(licence.issued)), "{what}");
                    assert_eq!((verified.edition.unwrap_or(0), verified.expires), (licence.edition, licence.expires));
                }
            }
            (Err(SerialError::NotRepresentable { .. }), None) => {
                assert_eq!(text(vector, "error"), Some("not-representable"), "{what}");
            }
            (made, expected) => panic!("{what}: made {made:?}, vector has {expected:?}"),
        }
    }
}

#[test]
fn every_activation_code_is_what_the_crate_computes_and_verifies() {
    let file = vectors();
    let sets = file["sets"].as_array().unwrap();
    let activations = file["activations"].as_array().unwrap();
    assert!(activations.len() >= 5, "only {} activations", activations.len());
    for activation in activations {
        let maker = maker(sets.iter().find(|s| s["id"] == activation["set"]).unwrap());
        let (serial, machine, code) =
            (text(activation, "serial").unwrap(), text(activation, "machine").unwrap(), text(activation, "code"));
        assert_eq!(maker.activation_code(serial, machine).ok().as_deref(), code, "{activation}");
        assert_eq!(maker.verify_activation(serial, machine, code.unwrap()), Ok(()), "{activation}");
        let other_machine = format!("{machine}-2");
        assert!(maker.verify_activation(serial, &other_machine, code.unwrap()).is_err(), "{activation}");
    }
}
