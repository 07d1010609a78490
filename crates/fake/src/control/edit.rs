//! The tests' changes to the fake organization beyond the few the plain handle offers, and
//! the full records behind them.

use crate::handle::FakeHandle;
use crate::org::{FakeCustomField, FakeCustomValue, FakeRole, FakeUser};

impl FakeHandle {
    /// Changes a user's e-mail. False when unknown.
    pub fn set_email(&self, id: i64, email: &str) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.email = email.to_string()))
    }

    /// Activates or deactivates a user. False when unknown.
    pub fn set_active(&self, id: i64, active: bool) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.active = active))
    }

    /// Removes a user from a group softly: the teams list still lists them, with
    /// `deleted_at` set to now. False when they were not in it.
    pub fn soft_leave_group(&self, group_id: i64, user_id: i64) -> bool {
        self.edit_membership(group_id, |o| {
            let now = o.now;
            o.soft_remove_member(group_id, user_id, now)
        })
    }

    /// Sets or clears a user's working hours.
    pub fn set_working_hours(&self, user_id: i64, hours: Option<f64>) -> bool {
        self.org(|o| o.edit_user(user_id, |u, _| u.working_hours = hours))
    }

    /// Applies any change to a user (bumps `updated_at`). False when unknown.
    pub fn edit_user(&self, user_id: i64, f: impl FnOnce(&mut FakeUser)) -> bool {
        self.org(|o| o.edit_user(user_id, |u, _| f(u)))
    }

    /// Adds an empty group linked to the first workspace; returns its id. An empty emoji
    /// means none.
    pub fn add_group(&self, name: &str, emoji: &str) -> i64 {
        self.org(|o| {
            let ws: Vec<i64> = o.workspaces.first().map(|w| w.id).into_iter().collect();
            let emoji = (!emoji.is_empty()).then_some(emoji);
            o.create_group(name, emoji, &[], &ws)
        })
    }

    /// Removes a group; its members leave it. False when unknown.
    pub fn remove_group(&self, id: i64) -> bool {
        self.org(|o| o.remove_group(id))
    }

    /// Applies any change to a role. False when unknown.
    pub fn edit_role(&self, role_id: i64, f: impl FnOnce(&mut FakeRole)) -> bool {
        self.org(|o| o.edit_role(role_id, f))
    }

    /// Renames a role. False when unknown.
    pub fn rename_role(&self, role_id: i64, name: &str) -> bool {
        self.edit_role(role_id, |r| r.name = name.to_string())
    }

    /// Changes a role's description. False when unknown.
    pub fn set_role_description(&self, role_id: i64, description: &str) -> bool {
        self.edit_role(role_id, |r| r.description = description.to_string())
    }

    /// Moves a permission of a role to another category. False when either is unknown.
    pub fn set_permission_category(
        &self,
        role_id: i64,
        permission_id: i64,
        category_id: i64,
        category_name: &str,
    ) -> bool {
        let mut found = false;
        self.edit_role(role_id, |r| {
            if let Some(p) = r
                .permissions
                .iter_mut()
                .find(|p| p.permission_id == permission_id)
            {
                p.category_id = category_id;
                p.category_name = category_name.to_string();
                found = true;
            }
        });
        found
    }

    /// Sets a member's value of a custom field that has no options (text, number, date,
    /// checkbox). False when the user or field is unknown, or the field has options.
    pub fn set_custom_field_value(
        &self,
        user_id: i64,
        field_id: i64,
        value: serde_json::Value,
    ) -> bool {
        self.org(|o| {
            let plain = o
                .custom_fields
                .iter()
                .any(|f| f.id == field_id && f.options.is_empty());
            plain
                && o.edit_custom_values(user_id, |values| {
                    values.insert(
                        field_id,
                        FakeCustomValue {
                            value,
                            option_ids: Vec::new(),
                        },
                    );
                })
        })
    }

    /// Selects these options of a select (one) or multi-select field for a member; the
    /// `value` is the option's id, or the list of ids. False when the user, the field or an
    /// option is unknown, or a select gets more than one.
    pub fn select_custom_field_options(
        &self,
        user_id: i64,
        field_id: i64,
        options: &[i64],
    ) -> bool {
        self.org(|o| {
            let Some(field) = o.custom_fields.iter().find(|f| f.id == field_id) else {
                return false;
            };
            let known = options
                .iter()
                .all(|id| field.options.iter().any(|x| x.id == *id));
            let value = match (field.field_type.as_str(), options) {
                ("select", [one]) => serde_json::Value::from(*one),
                ("multi_select", ids) => serde_json::Value::from(ids.to_vec()),
                _ => return false,
            };
            known
                && o.edit_custom_values(user_id, |values| {
                    values.insert(
                        field_id,
                        FakeCustomValue {
                            value,
                            option_ids: options.to_vec(),
                        },
                    );
                })
        })
    }

    /// Clears a member's value of a custom field. False when the user is unknown or had none.
    pub fn clear_custom_field(&self, user_id: i64, field_id: i64) -> bool {
        let mut had = false;
        self.org(|o| {
            o.edit_custom_values(user_id, |values| {
                had = values.remove(&field_id).is_some();
            })
        });
        had
    }

    /// Renames a custom field. False when unknown.
    pub fn rename_custom_field(&self, field_id: i64, name: &str) -> bool {
        self.org(|o| {
            let Some(f) = o.custom_field_mut(field_id) else {
                return false;
            };
            let old = std::mem::replace(&mut f.name, name.to_string());
            o.record_custom_field(
                "custom_field",
                field_id,
                "update",
                field_id,
                named(&old),
                named(name),
            );
            true
        })
    }

    /// Renames an option of a custom field. False when either is unknown.
    pub fn rename_custom_field_option(&self, field_id: i64, option_id: i64, name: &str) -> bool {
        self.org(|o| {
            match o
                .custom_field_mut(field_id)
                .and_then(|f| f.options.iter_mut().find(|x| x.id == option_id))
            {
                Some(option) => {
                    let old = std::mem::replace(&mut option.name, name.to_string());
                    o.record_custom_field(
                        "custom_field_option",
                        option_id,
                        "update",
                        field_id,
                        named(&old),
                        named(name),
                    );
                    true
                }
                None => false,
            }
        })
    }

    /// Deletes an option of a custom field: members who had it keep it, `is_deleted`. False
    /// when either is unknown.
    pub fn delete_custom_field_option(&self, field_id: i64, option_id: i64) -> bool {
        self.org(|o| {
            match o
                .custom_field_mut(field_id)
                .and_then(|f| f.options.iter_mut().find(|x| x.id == option_id))
            {
                Some(option) => {
                    option.deleted = true;
                    let old = named(&option.name);
                    o.record_custom_field(
                        "custom_field_option",
                        option_id,
                        "delete",
                        field_id,
                        old,
                        serde_json::Map::new(),
                    );
                    true
                }
                None => false,
            }
        })
    }

    /// Adds a permission to a role; returns the new permission's id.
    pub fn add_role_permission(&self, role_id: i64, name: &str) -> Option<i64> {
        self.org(|o| o.add_role_permission(role_id, name))
    }

    /// Removes a permission from a role. False when either is unknown.
    pub fn remove_role_permission(&self, role_id: i64, permission_id: i64) -> bool {
        let mut removed = false;
        self.edit_role(role_id, |r| {
            let before = r.permissions.len();
            r.permissions.retain(|p| p.permission_id != permission_id);
            removed = r.permissions.len() != before;
        });
        removed
    }

    /// Makes every record of `entity` (`"user"`, `"group"` or `"role"`) carry an extra
    /// top-level field the models do not know.
    pub fn add_unknown_field(&self, entity: &str, key: &str, value: serde_json::Value) {
        self.org(|o| {
            o.extra
                .entry(entity.to_string())
                .or_default()
                .insert(key.to_string(), value);
        })
    }

    /// Removes all extra fields again.
    pub fn clear_unknown_fields(&self) {
        self.org(|o| o.extra.clear())
    }

    /// All role ids, ascending.
    pub fn role_ids(&self) -> Vec<i64> {
        self.org(|o| o.roles.iter().map(|r| r.role_id).collect())
    }

    /// The members of a group, ascending (empty when unknown).
    pub fn group_members(&self, group_id: i64) -> Vec<i64> {
        self.org(|o| {
            o.groups
                .get(&group_id)
                .map(|g| g.members.keys().copied().collect())
                .unwrap_or_default()
        })
    }

    /// A full copy of a user record.
    pub fn user_record(&self, id: i64) -> Option<FakeUser> {
        self.org(|o| o.user(id).cloned())
    }

    /// A full copy of a role.
    pub fn role(&self, role_id: i64) -> Option<FakeRole> {
        self.org(|o| o.roles.iter().find(|r| r.role_id == role_id).cloned())
    }

    /// Every custom field, by id.
    pub fn custom_fields(&self) -> Vec<FakeCustomField> {
        self.org(|o| o.custom_fields.clone())
    }

    /// A member's custom field values by field id (empty when unknown).
    pub fn custom_field_values(
        &self,
        user_id: i64,
    ) -> std::collections::BTreeMap<i64, FakeCustomValue> {
        self.org(|o| {
            o.user(user_id)
                .map(|u| u.custom_values.clone())
                .unwrap_or_default()
        })
    }
}

/// `{"name": name}`, an audit event's value of a rename.
fn named(name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("name".to_string(), name.into());
    map
}
