//! How an [`super::Outgoing`]'s message bytes are kept in the state's JSON: as a string when they are UTF-8 (a
//! rendered reply always is), else as the list of byte values. Both forms read back, so an outbox entry written
//! as a list (every one before this form existed) is still sent with the same bytes.
//!
//! Why: a list of numbers is about four times the message's size, and writing it, storing it and reading it back
//! before the send was a tenth of keypost's own CPU per order in the harness's profile.
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.collect_seq(bytes),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_any(MessageBytes)
}

struct MessageBytes;

impl<'de> Visitor<'de> for MessageBytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the message as a string or a list of byte values")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        Ok(text.as_bytes().to_vec())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Vec<u8>, E> {
        Ok(text.into_bytes())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outgoing;

    fn outgoing(bytes: &[u8]) -> Outgoing {
        Outgoing { message_id: "1@x".into(), from: "a@x".into(), to: vec!["b@y".into()], bytes: bytes.to_vec() }
    }

    #[test]
    fn a_utf8_message_is_kept_as_a_string_and_reads_back_the_same() {
        let mail = outgoing("Subject: Grüße\r\n\r\n.dot\r\n".as_bytes());
        let json = serde_json::to_string(&mail).unwrap();
        assert!(json.contains(r#""bytes":"Subject: Grüße\r\n\r\n.dot\r\n""#), "{json}");
        assert_eq!(serde_json::from_str::<Outgoing>(&json).unwrap(), mail);
    }

    #[test]
    fn a_message_that_is_not_utf8_is_kept_as_byte_values_and_reads_back_the_same() {
        let mail = outgoing(b"Subject: x\r\n\r\n\xff\xfe\r\n");
        let json = serde_json::to_string(&mail).unwrap();
        assert!(json.contains(r#""bytes":[83,"#), "{json}");
        assert_eq!(serde_json::from_str::<Outgoing>(&json).unwrap(), mail);
    }

    #[test]
    fn an_entry_written_as_a_list_of_byte_values_before_still_reads() {
        let old = r#"{"message_id":"1@x","from":"a@x","to":["b@y"],"bytes":[72,105,13,10]}"#;
        assert_eq!(serde_json::from_str::<Outgoing>(old).unwrap(), outgoing(b"Hi\r\n"));
    }

    #[test]
    fn bytes_that_are_neither_a_string_nor_a_list_of_byte_values_are_an_error() {
        for bad in [r#"7"#, r#"[300]"#, r#"{"a":1}"#] {
            let json = format!(r#"{{"message_id":"1@x","from":"a@x","to":[],"bytes":{bad}}}"#);
            assert!(serde_json::from_str::<Outgoing>(&json).is_err(), "{bad}");
        }
    }
}
