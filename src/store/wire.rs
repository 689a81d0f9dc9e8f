//! serde by hand for the two parts of every order record that derived code reads slowly: a [`License`] (its
//! grant flattened into it) and a [`ReplyState`] (tagged by a `state` field). Derived, both are read through
//! serde's buffered map of the whole object before the fields are looked at, about a sixth of an export's time
//! at a million orders; here each is read in one pass into a plain struct of its fields.
//!
//! Invariants: the JSON is the derived one, field for field and in the same order (a state written before reads
//! the same, and `export` prints the same bytes); unknown fields are ignored, as derived code does;
//! `wire::tests` pins both with every variant and optional field.
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::records::{License, ReplyState};
use crate::fulfil::{Follows, Grant};
use crate::order::Licensee;

impl Serialize for License {
    /// The grant's fields in its declaration order, then the license's: what `#[serde(flatten)]` wrote.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let grant = &self.grant;
        let mut out = serializer.serialize_struct("License", 10)?;
        out.serialize_field("line", &grant.line)?;
        out.serialize_field("product", &grant.product)?;
        out.serialize_field("seats", &grant.seats)?;
        out.serialize_field("licensee", &grant.licensee)?;
        optional(&mut out, "sku", &grant.sku)?;
        optional(&mut out, "paid_through", &grant.expires)?;
        optional(&mut out, "follows", &grant.follows)?;
        out.serialize_field("serial", &self.serial)?;
        out.serialize_field("issued", &self.issued)?;
        optional(&mut out, "expires", &self.expires)?;
        out.end()
    }
}

/// `skip_serializing_if = "Option::is_none"`.
fn optional<S: serde::ser::SerializeStruct, T: Serialize>(
    out: &mut S,
    name: &'static str,
    value: &Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(value) => out.serialize_field(name, value),
        None => out.skip_field(name),
    }
}

/// A license's fields, flat, as stored.
#[derive(Deserialize)]
struct LicenseFields {
    line: u32,
    product: String,
    seats: u32,
    licensee: Licensee,
    sku: Option<String>,
    paid_through: Option<String>,
    follows: Option<Follows>,
    serial: String,
    issued: String,
    expires: Option<String>,
}

impl<'de> Deserialize<'de> for License {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = LicenseFields::deserialize(deserializer)?;
        Ok(License {
            grant: Grant {
                line: f.line,
                product: f.product,
                seats: f.seats,
                licensee: f.licensee,
                sku: f.sku,
                expires: f.paid_through,
                follows: f.follows,
            },
            serial: f.serial,
            issued: f.issued,
            expires: f.expires,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplyTag {
    None,
    Queued,
    Sent,
    Failed,
    Cancelled,
}

/// Every field any reply state has; which must be there depends on `state`.
#[derive(Deserialize)]
struct ReplyFields {
    state: ReplyTag,
    message_id: Option<String>,
    at: Option<i64>,
    reason: Option<String>,
    attempts: Option<u32>,
}

impl<'de> Deserialize<'de> for ReplyState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = ReplyFields::deserialize(deserializer)?;
        Ok(match f.state {
            ReplyTag::None => ReplyState::None,
            ReplyTag::Queued => ReplyState::Queued { message_id: need(f.message_id, "message_id")? },
            ReplyTag::Sent => ReplyState::Sent { message_id: need(f.message_id, "message_id")?, at: need(f.at, "at")? },
            ReplyTag::Failed => {
                ReplyState::Failed { reason: need(f.reason, "reason")?, attempts: need(f.attempts, "attempts")? }
            }
            ReplyTag::Cancelled => ReplyState::Cancelled { reason: need(f.reason, "reason")? },
        })
    }
}

fn need<T, E: serde::de::Error>(value: Option<T>, name: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(name))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{License, ReplyState};
    use crate::fulfil::{FollowKind, Follows, Grant, LineRef};
    use crate::order::{Licensee, OrderId};

    /// What `License` derived before (the reference the hand-written code must match).
    #[derive(Serialize, Deserialize)]
    struct DerivedLicense {
        #[serde(flatten)]
        grant: Grant,
        serial: String,
        issued: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
    }

    /// What `ReplyState` derived before.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case", tag = "state")]
    enum DerivedReply {
        None,
        Queued { message_id: String },
        Sent { message_id: String, at: i64 },
        Failed { reason: String, attempts: u32 },
        Cancelled { reason: String },
    }

    fn licenses() -> Vec<License> {
        let bare = License {
            grant: Grant {
                line: 2,
                product: "pro".into(),
                seats: 3,
                licensee: Licensee::parse("Åsa \"Öberg\", AB").unwrap(),
                sku: None,
                expires: None,
                follows: None,
            },
            serial: "S-1".into(),
            issued: "2026-11-30".into(),
            expires: None,
        };
        let mut full = bare.clone();
        full.grant.sku = Some("ACME-PRO-1Y".into());
        full.grant.expires = Some("2027-12-31".into());
        full.grant.follows = Some(Follows {
            how: FollowKind::Renewal,
            of: LineRef { provider: "paddle".into(), order_id: OrderId::parse("P-9").unwrap(), line: 0 },
        });
        full.expires = Some("2027-12-31".into());
        let mut some = bare.clone();
        some.grant.sku = Some("ACME".into());
        some.expires = Some("2027-01-01".into());
        vec![bare, full, some]
    }

    fn derived(license: &License) -> DerivedLicense {
        DerivedLicense {
            grant: license.grant.clone(),
            serial: license.serial.clone(),
            issued: license.issued.clone(),
            expires: license.expires.clone(),
        }
    }

    #[test]
    fn a_license_is_written_byte_for_byte_as_the_derived_flattened_form_and_reads_back() {
        for license in licenses() {
            let written = serde_json::to_string(&license).unwrap();
            assert_eq!(written, serde_json::to_string(&derived(&license)).unwrap());
            assert_eq!(serde_json::from_str::<License>(&written).unwrap(), license, "{written}");
        }
    }

    #[test]
    fn a_license_reads_with_its_fields_in_any_order_and_unknown_fields_ignored_as_derived_code_did() {
        let json =
            r#"{"issued":"2026-11-30","future":1,"serial":"S","licensee":"Bo","seats":1,"product":"p","line":0}"#;
        let license: License = serde_json::from_str(json).unwrap();
        assert_eq!((license.grant.licensee.as_str(), license.serial.as_str()), ("Bo", "S"));
        assert!(serde_json::from_str::<DerivedLicense>(json).is_ok());
        let missing = r#"{"issued":"2026-11-30","licensee":"Bo","seats":1,"product":"p","line":0}"#;
        assert!(serde_json::from_str::<License>(missing).is_err(), "a license without its serial is refused");
        let bad_name = r#"{"serial":"S","issued":"d","licensee":"Bo\u202eb","seats":1,"product":"p","line":0}"#;
        assert!(serde_json::from_str::<License>(bad_name).is_err(), "the licensee is still checked");
    }

    #[test]
    fn every_reply_state_reads_back_from_what_the_derived_code_wrote() {
        let states = [
            (ReplyState::None, DerivedReply::None),
            (ReplyState::Queued { message_id: "q@v".into() }, DerivedReply::Queued { message_id: "q@v".into() }),
            (
                ReplyState::Sent { message_id: "s@v".into(), at: -5 },
                DerivedReply::Sent { message_id: "s@v".into(), at: -5 },
            ),
            (
                ReplyState::Failed { reason: "550 no".into(), attempts: 4 },
                DerivedReply::Failed { reason: "550 no".into(), attempts: 4 },
            ),
            (ReplyState::Cancelled { reason: "revoked".into() }, DerivedReply::Cancelled { reason: "revoked".into() }),
        ];
        for (state, reference) in states {
            let written = serde_json::to_string(&reference).unwrap();
            assert_eq!(serde_json::to_string(&state).unwrap(), written);
            assert_eq!(serde_json::from_str::<ReplyState>(&written).unwrap(), state, "{written}");
        }
        let reordered: ReplyState = serde_json::from_str(r#"{"at":7,"message_id":"m","state":"sent","x":0}"#).unwrap();
        assert_eq!(reordered, ReplyState::Sent { message_id: "m".into(), at: 7 });
        for bad in
            [r#"{"state":"sent","message_id":"m"}"#, r#"{"state":"failed","reason":"r"}"#, r#"{"state":"lost"}"#, "{}"]
        {
            assert!(serde_json::from_str::<ReplyState>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<DerivedReply>(bad).is_err(), "the derived code refused {bad} too");
        }
    }
}
