//! Turning response bodies into models: never panics, names the item that failed, and
//! keeps the top-level fields a model does not know as canonical JSON.
//!
//! A list page is decoded in two passes over borrowed text: the envelope is parsed with
//! each item kept as a [`RawValue`] (no allocation per field), then every item is read into
//! its model, its unknown top-level keys kept on the way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::models::KnownFields;
use super::WithUnknown;

/// One decoded page of a list.
#[derive(Debug)]
pub struct DecodedPage<T> {
    /// The rows, in the order the server sent them.
    pub items: Vec<WithUnknown<T>>,
    /// The `total` the body announces (the rows of the whole list), when it does.
    pub total: Option<i64>,
    /// Items whose `id` could be read but whose body could not, as (id, why). Each is in
    /// `items` as its model's [`KnownFields::stand_in`] (so paging counts it), which the
    /// caller must not take for the record.
    pub quarantined: Vec<(i64, String)>,
}

/// Only the `id` of an item (every other field skipped unread, so a number out of range
/// or a wrong type elsewhere does not stop it).
#[derive(Deserialize)]
struct IdOnly {
    id: Option<i64>,
}

/// An object envelope: the list under `items` or `data`, and `total` read leniently (a
/// number, a numeric string, or ignored).
#[derive(Deserialize)]
struct ObjectEnvelope<'a> {
    #[serde(borrow, default, deserialize_with = "present_list")]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, deserialize_with = "present_list")]
    data: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    total: Option<&'a RawValue>,
}

/// A list field that is present: `null` means an empty list (the page promises nothing).
fn present_list<'de, D>(deserializer: D) -> Result<Option<Vec<&'de RawValue>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Some(
        Option::<Vec<&'de RawValue>>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// A count as a server may send it: `12`, `"12"`; anything else is no count.
fn lenient_count(raw: Option<&RawValue>) -> Option<i64> {
    let text = raw?.get().trim();
    let text = text.trim_matches('"').trim();
    text.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// Decodes one page of a list endpoint. The error text names the failing item by its
/// index on the page (`item 17: invalid type: …`); the caller adds endpoint and page.
pub fn decode_page<T>(body: &[u8]) -> Result<DecodedPage<T>, String>
where
    T: DeserializeOwned + KnownFields,
{
    let bare = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    // Every list endpoint accepts each wrapping: the seed shows `items` (users, roles,
    // groups/me) and `data` (teams), clients of the real API report `{"page", "per_page",
    // "data"}`, and a bare array costs nothing to accept.
    let (raw, total) = if bare {
        let rows =
            serde_json::from_slice::<Vec<&RawValue>>(body).map_err(|e| envelope_error(body, &e))?;
        (rows, None)
    } else {
        let e =
            serde_json::from_slice::<ObjectEnvelope>(body).map_err(|e| envelope_error(body, &e))?;
        let rows = match (e.items, e.data) {
            (Some(rows), _) => rows,
            (None, Some(rows)) => rows,
            (None, None) => {
                return Err(format!(
                    "the list is in neither `items` nor `data` (nor a bare array); the body starts with: {}",
                    super::error::body_excerpt(body, 120)
                ))
            }
        };
        (rows, lenient_count(e.total))
    };
    let mut quarantined = Vec::new();
    let items = raw
        .iter()
        .enumerate()
        .map(|(i, item)| {
            split_unknown_fields::<T>(item).or_else(|e| {
                let why = format!("item {i}: {e}");
                let id = serde_json::from_str::<IdOnly>(item.get())
                    .ok()
                    .and_then(|o| o.id);
                match id.and_then(|id| T::stand_in(id).map(|s| (id, s))) {
                    Some((id, stand_in)) => {
                        quarantined.push((id, why));
                        Ok((stand_in, None))
                    }
                    None => Err(why),
                }
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(DecodedPage {
        items,
        total,
        quarantined,
    })
}

/// Parses one list item into its model, and returns the top-level fields the model does
/// not know (see [`KnownFields`]) as canonical JSON: keys sorted at every level, or
/// `None` when there are none. One pass: the model's own deserializer reads the item
/// through [`Capture`], which keeps the unknown fields as they go by.
pub fn split_unknown_fields<T>(item: &RawValue) -> Result<WithUnknown<T>, serde_json::Error>
where
    T: DeserializeOwned + KnownFields,
{
    let mut unknown = serde_json::Map::new();
    let mut de = serde_json::Deserializer::from_str(item.get());
    let value = T::deserialize(Capture {
        inner: &mut de,
        known: T::is_known,
        unknown: &mut unknown,
    })?;
    de.end()?;
    if unknown.is_empty() {
        return Ok((value, None));
    }
    Ok((
        value,
        Some(canonical_json(&serde_json::Value::Object(unknown))),
    ))
}

/// Wrapped around the deserializer of one item, it hands the model its fields and keeps,
/// beside, the top-level ones not in `known`; wrapped around the model's visitor, it does
/// the same for the item's map.
struct Capture<'a, T> {
    inner: T,
    known: fn(&str) -> bool,
    unknown: &'a mut serde_json::Map<String, serde_json::Value>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capture<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = Capture {
            inner: visitor,
            known: self.known,
            unknown: self.unknown,
        };
        self.inner.deserialize_struct(name, fields, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Capture<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(CaptureMap {
            map,
            known: self.known,
            unknown: self.unknown,
            pending: None,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(seq)
    }
}

struct CaptureMap<'a, A> {
    map: A,
    known: fn(&str) -> bool,
    unknown: &'a mut serde_json::Map<String, serde_json::Value>,
    /// The name of the unknown field whose value comes next.
    pending: Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CaptureMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key_seed(KeyText)? else {
            return Ok(None);
        };
        self.pending = (!(self.known)(key.as_ref())).then(|| key.clone().into_owned());
        seed.deserialize(de::value::CowStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.pending.take() {
            None => self.map.next_value_seed(seed),
            Some(name) => {
                let value: serde_json::Value = self.map.next_value()?;
                let out = seed.deserialize(value.clone()).map_err(de::Error::custom)?;
                self.unknown.insert(name, value);
                Ok(out)
            }
        }
    }
}

/// A map key as text, borrowed from the input where it has no escapes.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

fn envelope_error(body: &[u8], error: &serde_json::Error) -> String {
    if error.is_syntax() || error.is_eof() {
        format!(
            "not JSON ({error}); the body starts with: {}",
            super::error::body_excerpt(body, 120)
        )
    } else {
        error.to_string()
    }
}

/// JSON text with object keys sorted at every level, whatever order the map type keeps.
fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_string(&sorted(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::{KnownFields, OrganizationUser, Team};
    use proptest::prelude::*;

    #[test]
    fn unknown_fields_are_canonical_json() {
        let body = br#"{"items":[{"id":1,"name":"A","zeta":{"b":1,"a":[{"y":2,"x":1}]},"alpha":null},{"id":2}]}"#;
        let page = decode_page::<OrganizationUser>(body).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].0.id, Some(1));
        assert_eq!(page.items[0].0.name.as_deref(), Some("A"));
        assert_eq!(
            page.items[0].1.as_deref(),
            Some(r#"{"alpha":null,"zeta":{"a":[{"x":1,"y":2}],"b":1}}"#)
        );
        assert_eq!(page.items[1].1, None);
    }

    #[test]
    fn escaped_keys_are_compared_decoded() {
        let body = br#"{"items":[{"i\u0064":5,"n\u00e9w":1}]}"#;
        let page = decode_page::<OrganizationUser>(body).unwrap();
        assert_eq!(page.items[0].0.id, Some(5));
        assert_eq!(page.items[0].1.as_deref(), Some("{\"n\u{e9}w\":1}"));
    }

    #[test]
    fn errors_name_the_item() {
        let body = br#"{"items":[{"id":1},{"id":"abc"}]}"#;
        let err = decode_page::<OrganizationUser>(body).unwrap_err();
        assert!(
            err.starts_with("item 1: invalid type: string \"abc\", expected i64"),
            "{err}"
        );
        let err =
            decode_page::<OrganizationUser>(b"<html><body>Bad gateway</body></html>").unwrap_err();
        assert!(
            err.contains("not JSON") && err.contains("Bad gateway"),
            "{err}"
        );
        let err = decode_page::<OrganizationUser>(b"{}").unwrap_err();
        assert!(err.contains("neither `items` nor `data`"), "{err}");
    }

    /// Every list endpoint reads every envelope; the paging fields are read leniently.
    #[test]
    fn every_envelope_is_read() {
        // (body, total)
        let cases: [(&[u8], Option<i64>); 6] = [
            (br#"{"items":[{"id":1},{"id":2}]}"#, None),
            (br#"{"data":[{"id":1},{"id":2}]}"#, None),
            (
                br#"{"page":1,"per_page":100,"data":[{"id":1},{"id":2}]}"#,
                None,
            ),
            (
                br#"{"data":[{"id":1},{"id":2}],"page":1,"rows":2,"total":"7"}"#,
                Some(7),
            ),
            (br#" [{"id":1},{"id":2}]"#, None),
            (br#"{"items":[{"id":1},{"id":2}],"total":2.5}"#, None),
        ];
        for (body, total) in cases {
            let page = decode_page::<OrganizationUser>(body).unwrap();
            let ids: Vec<_> = page.items.iter().map(|(u, _)| u.id).collect();
            assert_eq!(ids, [Some(1), Some(2)], "{}", String::from_utf8_lossy(body));
            assert_eq!(page.total, total);
        }
        let page = decode_page::<Team>(br#"{"data":null}"#).unwrap();
        assert!(page.items.is_empty());
    }

    #[test]
    fn a_large_page_keeps_its_order_and_names_the_first_bad_item() {
        let items: Vec<String> = (0..150)
            .map(|i| format!(r#"{{"id":{i},"x{i}":1}}"#))
            .collect();
        let body = |items: &[String]| format!(r#"{{"items":[{}]}}"#, items.join(","));
        let page = decode_page::<OrganizationUser>(body(&items).as_bytes()).unwrap();
        let ids: Vec<i64> = page.items.iter().filter_map(|(u, _)| u.id).collect();
        assert_eq!(ids, (0..150).collect::<Vec<i64>>());
        assert_eq!(page.items[120].1.as_deref(), Some(r#"{"x120":1}"#));
        let mut bad = items.clone();
        bad[130] = r#"{"id":"x"}"#.to_string();
        let err = decode_page::<OrganizationUser>(body(&bad).as_bytes()).unwrap_err();
        assert!(err.starts_with("item 130: invalid type"), "{err}");
        bad[10] = r#"{"id":[]}"#.to_string();
        let err = decode_page::<OrganizationUser>(body(&bad).as_bytes()).unwrap_err();
        assert!(err.starts_with("item 10: invalid type"), "{err}");
    }

    #[test]
    fn null_list_is_empty_and_total_is_read() {
        let page = decode_page::<Team>(br#"{"data":null,"total":0}"#).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.total, Some(0));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "[a-z_0-9]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("id".to_string()),
                Just("items".to_string()),
                Just("data".to_string()),
                Just("total".to_string()),
                Just("name".to_string()),
                Just("groups".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_page::<OrganizationUser>(&bytes);
            let _ = decode_page::<Team>(&bytes);
        }

        /// Whatever the mix of keys, the unknown fields kept are exactly the top-level keys
        /// the model does not know (with their values), and the model reads the rest.
        #[test]
        fn the_unknown_fields_are_exactly_the_unknown_keys(
            extra in proptest::collection::btree_map("[a-z_]{1,8}", json_value(), 0..6),
            id in any::<i64>(),
            name in proptest::option::of("[a-zé ]{0,6}"),
        ) {
            let mut object = serde_json::Map::new();
            object.insert("id".into(), id.into());
            object.insert("name".into(), name.clone().into());
            for (k, v) in &extra {
                if !OrganizationUser::is_known(k) {
                    object.insert(k.clone(), v.clone());
                }
            }
            let text = serde_json::to_string(&serde_json::Value::Object(object)).unwrap();
            // As parsed (serde_json's float parsing need not give back the same bits).
            let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(&text) else {
                panic!("an object");
            };
            let raw = RawValue::from_string(text).unwrap();
            let (user, unknown) = split_unknown_fields::<OrganizationUser>(&raw).unwrap();
            prop_assert_eq!(user.id, Some(id));
            prop_assert_eq!(user.name, name);
            object.remove("id");
            object.remove("name");
            let expected = (!object.is_empty())
                .then(|| canonical_json(&serde_json::Value::Object(object)));
            prop_assert_eq!(unknown, expected);
        }

        #[test]
        fn random_json_never_panics(value in json_value(), wrap in 0u8..3) {
            let value = match wrap {
                0 => serde_json::json!({ "items": [value.clone()], "data": [value] }),
                1 => serde_json::json!({ "items": value.clone(), "data": value }),
                _ => value,
            };
            let bytes = serde_json::to_vec(&value).unwrap();
            let _ = decode_page::<OrganizationUser>(&bytes);
            let _ = decode_page::<Team>(&bytes);
        }
    }

    #[test]
    fn an_item_whose_id_is_readable_and_body_is_not_is_quarantined() {
        let body = br#"{"items": [
            {"id": 1, "name": "ok"},
            {"id": 2, "rate": {"hourly_rate": 1e309}},
            {"id": 3, "working_hours": "NaN"}
        ]}"#;
        let page = decode_page::<OrganizationUser>(body).unwrap();
        let ids: Vec<Option<i64>> = page.items.iter().map(|(u, _)| u.id).collect();
        assert_eq!(ids, vec![Some(1), Some(2), Some(3)]);
        let quarantined: Vec<i64> = page.quarantined.iter().map(|(id, _)| *id).collect();
        assert_eq!(quarantined, vec![2, 3]);
        assert!(
            page.quarantined[0].1.starts_with("item 1: "),
            "{:?}",
            page.quarantined
        );
        // Without a readable id the item still fails the page.
        let body = br#"{"items": [{"id": "two", "working_hours": "NaN"}]}"#;
        assert!(decode_page::<OrganizationUser>(body).is_err());
    }
}
