//! Turning response bodies into models: never panics, names the item that failed, and
//! keeps the top-level fields a model does not know as canonical JSON.
//!
//! Lists are decoded in two cheap passes over borrowed text: the envelope is parsed
//! with each item kept as a [`RawValue`] (no allocation per field), then every item is
//! parsed into its model and scanned once more for unknown keys.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::models::KnownFields;
use super::WithUnknown;

/// Which envelope a list endpoint wraps its rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `{"items": [...]}` (users, roles, my groups).
    Items,
    /// `{"data": [...], "page": n, "rows": n, "total": n}` (teams).
    Data,
}

/// One decoded page of a list.
#[derive(Debug)]
pub struct DecodedPage<T> {
    /// The rows, in the order the server sent them.
    pub items: Vec<WithUnknown<T>>,
    /// The `total` the teams envelope announces (None for `items` lists).
    pub total: Option<i64>,
}

#[derive(Deserialize)]
struct ItemsEnvelope<'a> {
    #[serde(borrow, deserialize_with = "nullable_list")]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct DataEnvelope<'a> {
    #[serde(borrow, deserialize_with = "nullable_list")]
    data: Vec<&'a RawValue>,
    #[serde(default)]
    total: Option<i64>,
}

/// The list field must be present; `null` means an empty list (the page promises nothing).
fn nullable_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes one page of a list endpoint. The error text names the failing item by its
/// index on the page (`item 17: invalid type: …`); the caller adds endpoint and page.
pub fn decode_page<T>(body: &[u8], envelope: Envelope) -> Result<DecodedPage<T>, String>
where
    T: DeserializeOwned + KnownFields,
{
    let (raw, total) = match envelope {
        Envelope::Items => serde_json::from_slice::<ItemsEnvelope>(body)
            .map(|e| (e.items, None))
            .map_err(|e| envelope_error(body, &e))?,
        Envelope::Data => serde_json::from_slice::<DataEnvelope>(body)
            .map(|e| (e.data, e.total))
            .map_err(|e| envelope_error(body, &e))?,
    };
    let mut items = Vec::with_capacity(raw.len());
    for (index, item) in raw.into_iter().enumerate() {
        items.push(split_unknown_fields::<T>(item).map_err(|e| format!("item {index}: {e}"))?);
    }
    Ok(DecodedPage { items, total })
}

/// Parses one list item into its model, and returns the top-level fields the model does
/// not know (see [`KnownFields`]) as canonical JSON: keys sorted at every level, or
/// `None` when there are none.
pub fn split_unknown_fields<T>(item: &RawValue) -> Result<WithUnknown<T>, serde_json::Error>
where
    T: DeserializeOwned + KnownFields,
{
    let value: T = serde_json::from_str(item.get())?;
    let mut de = serde_json::Deserializer::from_str(item.get());
    let unknown = UnknownScan(T::FIELDS).deserialize(&mut de)?;
    Ok((value, unknown))
}

fn envelope_error(body: &[u8], error: &serde_json::Error) -> String {
    if error.is_syntax() || error.is_eof() {
        format!(
            "not JSON ({error}); the body starts with: {}",
            super::transport::body_excerpt(body, 120)
        )
    } else {
        error.to_string()
    }
}

/// Walks the keys of one JSON object, skipping known fields without building them and
/// collecting the unknown ones as [`serde_json::Value`]s.
struct UnknownScan<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for UnknownScan<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UnknownScan<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut unknown = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(KeyKind(self.0))? {
            match key {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(name) => {
                    let value = map.next_value::<serde_json::Value>()?;
                    unknown.insert(name, value);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(None);
        }
        let value = serde_json::Value::Object(unknown);
        Ok(Some(canonical_json(&value)))
    }
}

/// A key: `None` when the model knows it (no allocation), else its owned name.
struct KeyKind<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for KeyKind<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyKind<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!self.0.contains(&v)).then(|| v.to_owned()))
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
    use crate::api::models::{OrganizationUser, Team};
    use proptest::prelude::*;

    #[test]
    fn unknown_fields_are_canonical_json() {
        let body = br#"{"items":[{"id":1,"name":"A","zeta":{"b":1,"a":[{"y":2,"x":1}]},"alpha":null},{"id":2}]}"#;
        let page = decode_page::<OrganizationUser>(body, Envelope::Items).unwrap();
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
        let page = decode_page::<OrganizationUser>(body, Envelope::Items).unwrap();
        assert_eq!(page.items[0].0.id, Some(5));
        assert_eq!(page.items[0].1.as_deref(), Some("{\"n\u{e9}w\":1}"));
    }

    #[test]
    fn errors_name_the_item() {
        let body = br#"{"items":[{"id":1},{"id":"abc"}]}"#;
        let err = decode_page::<OrganizationUser>(body, Envelope::Items).unwrap_err();
        assert!(
            err.starts_with("item 1: invalid type: string \"abc\", expected i64"),
            "{err}"
        );
        let err = decode_page::<OrganizationUser>(
            b"<html><body>Bad gateway</body></html>",
            Envelope::Items,
        )
        .unwrap_err();
        assert!(
            err.contains("not JSON") && err.contains("Bad gateway"),
            "{err}"
        );
        let err = decode_page::<OrganizationUser>(b"{}", Envelope::Items).unwrap_err();
        assert!(err.contains("missing field `items`"), "{err}");
    }

    #[test]
    fn null_list_is_empty_and_total_is_read() {
        let page = decode_page::<Team>(br#"{"data":null,"total":0}"#, Envelope::Data).unwrap();
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
            let _ = decode_page::<OrganizationUser>(&bytes, Envelope::Items);
            let _ = decode_page::<Team>(&bytes, Envelope::Data);
        }

        #[test]
        fn random_json_never_panics(value in json_value(), wrap in 0u8..3) {
            let value = match wrap {
                0 => serde_json::json!({ "items": [value.clone()], "data": [value] }),
                1 => serde_json::json!({ "items": value.clone(), "data": value }),
                _ => value,
            };
            let bytes = serde_json::to_vec(&value).unwrap();
            let _ = decode_page::<OrganizationUser>(&bytes, Envelope::Items);
            let _ = decode_page::<Team>(&bytes, Envelope::Data);
        }
    }
}
