//! The normalised records of every entity and their canonical JSON.
//!
//! Normalisation is what makes "the same data" compare equal: timestamps become UTC
//! with a `Z`, lists are sorted by id, and the fields that merely repeat another
//! entity (a group's name inside a user, a user's name inside a membership) are left
//! out so that a rename is one event on the renamed entity, not one per reference.
//! Field names are the upstream's, so `changed_fields` speaks the API's language.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A normalised organization user (without rate: see [`RateRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: i64,
    pub user_account_id: Option<i64>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub owner: Option<bool>,
    pub joined: Option<bool>,
    pub invite_sent: Option<bool>,
    #[serde(rename = "2fa_enabled")]
    pub two_fa_enabled: Option<bool>,
    pub can_edit_personal_details: Option<bool>,
    pub account_locked_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub organization_id: Option<i64>,
    pub working_hours: Option<f64>,
    /// The seed's untyped `permissions` object, as canonical JSON.
    pub permissions: Option<CanonicalJson>,
    /// Sorted by id.
    pub tags: Vec<TagRecord>,
    /// Sorted by workspace id.
    pub workspaces: Vec<UserWorkspaceRecord>,
}

/// JSON text in canonical form (object keys sorted), kept as text: far smaller than a
/// `serde_json::Value` and serialized verbatim into the record's JSON.
#[derive(Debug, Clone)]
pub struct CanonicalJson(Box<serde_json::value::RawValue>);

impl CanonicalJson {
    /// The canonical text of `value` (serde_json's map keeps keys sorted: see the test
    /// `json_objects_serialize_with_sorted_keys`).
    pub fn from_value(value: &serde_json::Value) -> CanonicalJson {
        let text = value.to_string();
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => CanonicalJson(raw),
            // `Value::to_string` always yields valid JSON; keep a valid fallback anyway.
            Err(_) => CanonicalJson(serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// A JSON array of these strings (the caller sorts them), made without a `Value`.
    pub fn from_strings(items: &[String]) -> CanonicalJson {
        let text = serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string());
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => CanonicalJson(raw),
            Err(_) => CanonicalJson(serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for CanonicalJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for CanonicalJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CanonicalJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(CanonicalJson::from_value(&value))
    }
}

/// A tag on a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRecord {
    pub id: i64,
    pub label: Option<String>,
    pub color: Option<String>,
}

/// A user's place in a workspace, with the role ids there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserWorkspaceRecord {
    pub id: i64,
    pub workspace_user_id: Option<i64>,
    pub focus_role_id: Option<i64>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    /// Sorted, as a JSON array (one small allocation instead of one per product).
    pub toggl_products: CanonicalJson,
}

/// A user's current rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRecord {
    pub organization_user_id: i64,
    pub hourly_rate: Option<f64>,
    pub currency: Option<String>,
    pub start_at: Option<Timestamp>,
    pub end_at: Option<Timestamp>,
    pub workspace_id: Option<i64>,
    pub workspace_rate_id: Option<i64>,
    pub workspace_user_rate_id: Option<i64>,
}

/// A normalised group (its members are [`MembershipRecord`]s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: i64,
    pub name: Option<String>,
    pub emoji: Option<String>,
    pub organization_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    /// Sorted by workspace id.
    pub workspaces: Vec<GroupWorkspaceRecord>,
    /// Sorted by id.
    pub ghosts: Vec<GhostRecord>,
}

/// A workspace a group is linked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWorkspaceRecord {
    pub workspace_id: i64,
    pub workspace_group_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

/// A ghost of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GhostRecord {
    pub id: i64,
    pub name: Option<String>,
}

/// One user's membership of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub group_id: i64,
    pub organization_user_id: i64,
    pub user_group_id: Option<i64>,
    pub user_account_id: Option<i64>,
    pub focus_role_id: Option<i64>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

/// A role with its permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub role_id: i64,
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub privilege_level: Option<i64>,
    pub entity: Option<String>,
    pub description: Option<String>,
    pub organization_id: Option<i64>,
    /// Sorted by permission id.
    pub permissions: Vec<PermissionRecord>,
    /// Whether the role is only conferred through a group. Left out of the JSON when the
    /// API did not send it, as every field below: a role from a server that sends none of
    /// them has the JSON (and hash) it always had, so no update appears that is only a
    /// new column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_group: Option<bool>,
    /// The levels the role is the default at, as a JSON array; `None` when it is the
    /// default nowhere (the API's `null`) or the API did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_for_levels: Option<CanonicalJson>,
}

/// A permission of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRecord {
    pub permission_id: i64,
    pub name: Option<String>,
    pub entity: Option<String>,
    pub condition: Option<String>,
    pub description: Option<String>,
    /// Left out when not sent (see [`RoleRecord::require_group`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_name: Option<String>,
}

/// One member's value of one custom field (of the workspace `sync.custom_fields_workspace_id`).
/// The field's and the options' names are kept with the value, as the API sends them: a
/// renamed field or option is an update of every value that carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCustomFieldRecord {
    pub organization_user_id: i64,
    pub custom_field_id: i64,
    pub custom_field_name: Option<String>,
    /// `text`, `number`, `date`, `checkbox`, `select`, `multi_select`, `users`, …
    pub field_type: Option<String>,
    /// The value as text: a string as itself, anything else (a number, `true`, a list of
    /// option ids) as its JSON; `None` for `null`.
    pub value: Option<String>,
    /// Sorted by option id.
    pub selected_options: Vec<SelectedOptionRecord>,
}

/// An option selected in a member's custom field value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectedOptionRecord {
    pub option_id: i64,
    pub option_name: Option<String>,
    /// The option was deleted from the field and is still selected.
    pub is_deleted: Option<bool>,
}

/// A record with the top-level fields the model did not know, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept<T> {
    pub record: T,
    /// Canonical JSON object of unknown top-level fields; `None` when there were none.
    pub unknown: Option<String>,
}

thread_local! {
    /// Where [`RecordRef::with_json`] writes a record's JSON (kept at the largest size seen).
    static JSON_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A borrowed record of any kind.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Role(&'a RoleRecord),
    Group(&'a GroupRecord),
    User(&'a UserRecord),
    Membership(&'a MembershipRecord),
    Rate(&'a RateRecord),
    CustomField(&'a UserCustomFieldRecord),
}

impl RecordRef<'_> {
    /// [`content_hash`](super::content_hash) of [`RecordRef::canonical_json`], without making the string: a
    /// re-sync hashes every record it pulls.
    pub fn content_hash(&self) -> i64 {
        self.with_json(|json| twox_hash::XxHash3_64::oneshot(json) as i64)
    }

    /// The canonical JSON the mirror compares and stores.
    pub fn canonical_json(&self) -> String {
        self.with_json(|json| String::from_utf8_lossy(json).into_owned())
    }

    /// Calls `f` with the record's canonical JSON, written into this thread's
    /// [`JSON_BUFFER`]: a string is then allocated once at its size, or not at all,
    /// instead of being grown (and copied) from empty for every record.
    fn with_json<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        JSON_BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            self.write_json(buffer);
            f(buffer)
        })
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let r = match self {
            RecordRef::Role(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Group(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::User(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Membership(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Rate(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::CustomField(r) => serde_json::to_writer(&mut *out, r),
        };
        // Serializing these plain structs (strings, numbers, Values) cannot fail.
        if let Err(e) = r {
            out.clear();
            out.extend_from_slice(
                format!("{{\"serialization_error\":{:?}}}", e.to_string()).as_bytes(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::OrganizationUser;
    use crate::model::content_hash;
    use crate::snapshot::OrgSnapshot;

    #[test]
    fn json_objects_serialize_with_sorted_keys() {
        // Canonical JSON relies on serde_json's map being sorted (no `preserve_order`
        // feature anywhere in the build). If a dependency ever turns it on, this fails.
        let v: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(
            CanonicalJson::from_value(&v).as_str(),
            r#"{"a":{"c":3,"d":2},"b":1}"#
        );
    }

    #[test]
    fn a_record_hashes_as_its_canonical_json() {
        let mut s = OrgSnapshot::default();
        let user = OrganizationUser {
            id: Some(7),
            name: Some("Zoë \"quoted\" 🙂".into()),
            permissions: Some(serde_json::json!({"b": 1, "a": [true, null]})),
            ..Default::default()
        };
        s.add_user(user, None).unwrap();
        let rows: Vec<_> = s.rows().collect();
        assert!(!rows.is_empty());
        // The buffer holds the previous record's JSON (longer, then shorter) when the next is written.
        let long_rate = RateRecord {
            organization_user_id: 1,
            hourly_rate: None,
            currency: Some("x".repeat(4096)),
            start_at: None,
            end_at: None,
            workspace_id: None,
            workspace_rate_id: None,
            workspace_user_rate_id: None,
        };
        let long = RecordRef::Rate(&long_rate);
        for row in rows {
            assert!(long.canonical_json().len() > 4096);
            assert_eq!(
                row.value.content_hash(),
                content_hash(&row.value.canonical_json())
            );
            let json = row.value.canonical_json();
            assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&json).is_ok_and(|v| v.is_object()),
                "{json}"
            );
        }
    }

    /// A role from a server that sends none of the published fields (`require_group`,
    /// `default_for_levels`, a permission's `category_*`) has, byte for byte, the JSON the
    /// mirror stored before it knew them: no update appears after an upgrade.
    #[test]
    fn a_role_without_the_published_fields_keeps_the_json_it_always_had() {
        let permission = PermissionRecord {
            permission_id: 701,
            name: Some("view_users".into()),
            entity: Some("organization".into()),
            condition: None,
            description: Some("Allows view users".into()),
            category_id: None,
            category_name: None,
        };
        let mut role = RoleRecord {
            role_id: 11,
            code: Some("org_owner".into()),
            name: Some("Owner".into()),
            kind: Some("owner".into()),
            privilege_level: Some(100),
            entity: Some("organization".into()),
            description: None,
            organization_id: Some(1001),
            permissions: vec![permission],
            require_group: None,
            default_for_levels: None,
        };
        let before = r#"{"role_id":11,"code":"org_owner","name":"Owner","type":"owner","privilege_level":100,"entity":"organization","description":null,"organization_id":1001,"permissions":[{"permission_id":701,"name":"view_users","entity":"organization","condition":null,"description":"Allows view users"}]}"#;
        assert_eq!(RecordRef::Role(&role).canonical_json(), before);
        role.require_group = Some(false);
        role.default_for_levels = Some(CanonicalJson::from_strings(&["organization".into()]));
        role.permissions[0].category_id = Some(3);
        role.permissions[0].category_name = Some("Users".into());
        let json = RecordRef::Role(&role).canonical_json();
        assert!(
            json.contains(r#""require_group":false,"default_for_levels":["organization"]"#)
                && json.contains(r#""category_id":3,"category_name":"Users""#),
            "{json}"
        );
    }

    #[test]
    fn a_list_of_strings_is_the_json_of_its_value() {
        for items in [
            vec![],
            vec!["focus".to_string()],
            vec!["a\"b".into(), "é🙂".into()],
        ] {
            let direct = CanonicalJson::from_strings(&items);
            let via_value = CanonicalJson::from_value(&serde_json::Value::from(items.clone()));
            assert_eq!(direct, via_value, "{items:?}");
        }
    }
}
