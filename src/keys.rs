//! Unknown keys in a user's file (the config, a template): the dotted key as the person wrote it, and the closest
//! key the file could have meant there ("unknown key; did you mean `idle`?"). Pure: no I/O.
//!
//! The known keys come from the serde model itself, not a list kept by hand: [`known_keys`] walks a type's
//! `Deserialize` impl down a path with a probing deserializer that answers the `fields` (or enum `variants`) the
//! derive passes to `deserialize_struct` at that point. Where a type does not declare its keys (a map of free
//! names, `flatten`, an untagged enum, a hand-written impl) there is no suggestion, never a wrong one.
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer as _, MapAccess, SeqAccess, Visitor};

/// One step of a path in a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The steps of a `serde_ignored` path, without the `?` steps serde adds for optional and newtype values (they
/// are not keys in the file).
pub fn steps(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    use serde_ignored::Path;
    let mut steps = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => steps(parent),
    };
    match path {
        Path::Seq { index, .. } => steps.push(Step::Index(*index)),
        Path::Map { key, .. } => steps.push(Step::Key(key.clone())),
        _ => {}
    }
    steps
}

/// `mailbox.imap.idel`, `product[1].serial.iv`.
pub fn dotted(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// The problem text for an unknown key at `steps` in a document read as `T`: "unknown key", with the closest
/// known key at that place when one is near enough to be a typo.
pub fn unknown_key_message<'de, T: serde::Deserialize<'de>>(steps: &[Step]) -> String {
    let Some((Step::Key(wrong), parent)) = steps.split_last() else { return "unknown key".to_owned() };
    match known_keys::<T>(parent).and_then(|known| closest(wrong, &known)) {
        Some(key) => format!("unknown key; did you mean `{key}`?"),
        None => "unknown key".to_owned(),
    }
}

/// The keys `T` accepts at `path` (a table's fields, or an enum's variants), when its model declares them.
pub fn known_keys<'de, T: serde::Deserialize<'de>>(path: &[Step]) -> Option<Vec<&'static str>> {
    let found = RefCell::new(None);
    // The probe always ends in an error (it has no values to give); what matters is what it recorded.
    let _ = T::deserialize(Probe { path, found: &found });
    found.into_inner()
}

/// The known key closest to `wrong` by edit distance (adjacent swaps count as one edit), if it is close enough
/// to be a typo: at most one edit in a short key, two in a longer one, three in a long one.
pub fn closest<'a>(wrong: &str, known: &[&'a str]) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    let limit = match wrong.chars().count() {
        0..=4 => 1,
        5..=9 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|key| (edit_distance(&wrong_lower, &key.to_lowercase()), *key))
        .filter(|(distance, key)| *distance <= limit && *key != wrong)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows: two back (for swaps), one back, and the one being filled.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != cb));
            let deletion = previous.get(j + 1).copied().unwrap_or(usize::MAX).saturating_add(1);
            let insertion = current.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let mut best = substitution.min(deletion).min(insertion);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if swapped && let Some(two_back) = before.get(j - 1) {
                best = best.min(two_back + 1);
            }
            if let Some(cell) = current.get_mut(j + 1) {
                *cell = best;
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous.last().copied().unwrap_or(0)
}

#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

fn stop<T>() -> Result<T, Stop> {
    Err(Stop("probe".to_owned()))
}

/// Walks `path` through the model; at its end records the declared keys.
struct Probe<'a> {
    path: &'a [Step],
    found: &'a RefCell<Option<Vec<&'static str>>>,
}

impl<'a> Probe<'a> {
    fn record(&self, keys: &'static [&'static str]) -> Result<(), Stop> {
        *self.found.borrow_mut() = Some(keys.to_vec());
        stop()
    }

    fn rest(&self) -> Probe<'a> {
        Probe { path: self.path.get(1..).unwrap_or_default(), found: self.found }
    }

    /// A table with the path's next key only, its value probed further.
    fn one_entry<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.first() {
            Some(Step::Key(key)) => visitor.visit_map(OneEntry { key: Some(key.clone()), value: Some(self.rest()) }),
            _ => stop(),
        }
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        stop()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.path.is_empty() {
            self.record(fields)?;
        }
        self.one_entry(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // A map of free names (or a flattened struct): its keys are not declared.
        self.one_entry(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.first() {
            Some(Step::Index(_)) => visitor.visit_seq(OneElement(Some(self.rest()))),
            _ => stop(),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.first() {
            None => self.record(variants).and_then(|()| stop()),
            Some(Step::Key(variant)) => visitor.visit_enum(Variant { name: variant.clone(), rest: self.rest() }),
            Some(Step::Index(_)) => stop(),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        tuple tuple_struct identifier ignored_any
    }
}

struct OneEntry<'a> {
    key: Option<String>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        match self.value.take() {
            Some(probe) => seed.deserialize(probe),
            None => stop(),
        }
    }
}

struct OneElement<'a>(Option<Probe<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Stop> {
        match self.0.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

struct Variant<'a> {
    name: String,
    rest: Probe<'a>,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = Stop;
    type Variant = Probe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Probe<'a>), Stop> {
        let value = seed.deserialize(self.name.into_deserializer())?;
        Ok((value, self.rest))
    }
}

impl<'de> de::VariantAccess<'de> for Probe<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        stop()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Stop> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Stop> {
        stop()
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Stop> {
        if self.path.is_empty() {
            self.record(fields)?;
        }
        self.one_entry(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Root {
        mailbox: Option<Mailbox>,
        #[serde(rename = "product")]
        products: Vec<Product>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "snake_case")]
    enum Mailbox {
        Imap { host: String, idle: bool },
        Maildir(Maildir),
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Maildir {
        path: String,
        poll_interval_secs: u64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Product {
        id: String,
        skus: Vec<String>,
    }

    fn key(name: &str) -> Step {
        Step::Key(name.to_owned())
    }

    #[test]
    fn the_probe_finds_the_keys_declared_at_each_place() {
        assert_eq!(known_keys::<Root>(&[]), Some(vec!["mailbox", "product"]));
        assert_eq!(known_keys::<Root>(&[key("mailbox")]), Some(vec!["imap", "maildir"]));
        assert_eq!(known_keys::<Root>(&[key("mailbox"), key("imap")]), Some(vec!["host", "idle"]));
        let maildir = known_keys::<Root>(&[key("mailbox"), key("maildir")]);
        assert_eq!(maildir, Some(vec!["path", "poll_interval_secs"]));
        assert_eq!(known_keys::<Root>(&[key("product"), Step::Index(3)]), Some(vec!["id", "skus"]));
        assert_eq!(known_keys::<Root>(&[key("nowhere")]), None, "an unknown table has no keys to offer");
    }

    #[test]
    fn a_typo_gets_the_closest_key_and_a_stranger_gets_none() {
        let imap = ["host", "port", "idle", "folder", "poll_interval_secs"];
        assert_eq!(closest("idel", &imap), Some("idle"));
        assert_eq!(closest("poll_interval_sec", &imap), Some("poll_interval_secs"));
        assert_eq!(closest("Folder", &imap), Some("folder"));
        assert_eq!(closest("colour", &imap), None);
        assert_eq!(closest("x", &imap), None);
        assert_eq!(closest("requried", &["required", "pattern"]), Some("required"));
    }

    #[test]
    fn the_message_names_the_suggestion_only_when_there_is_one() {
        let idel = [key("mailbox"), key("imap"), key("idel")];
        assert_eq!(unknown_key_message::<Root>(&idel), "unknown key; did you mean `idle`?");
        assert_eq!(unknown_key_message::<Root>(&[key("colour")]), "unknown key");
        assert_eq!(dotted(&[key("product"), Step::Index(1), key("idd")]), "product[1].idd");
    }

    #[test]
    fn edit_distance_counts_a_swap_as_one_edit() {
        assert_eq!(edit_distance("idel", "idle"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
