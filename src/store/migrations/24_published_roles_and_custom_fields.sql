-- Roles and permissions as Toggl publishes them, and members' custom field values.

-- Whether a role is only conferred through a group (0/1), the levels it is the default at (a
-- JSON array), a permission's category. NULL where the API does not send them: the reference
-- page's roles have none, and a mirror's roles keep the JSON they had until a server sends them.
ALTER TABLE roles ADD COLUMN require_group INTEGER;
ALTER TABLE roles ADD COLUMN default_for_levels_json TEXT;
ALTER TABLE role_permissions ADD COLUMN category_id INTEGER;
ALTER TABLE role_permissions ADD COLUMN category_name TEXT;

DROP VIEW roles_current;
CREATE VIEW roles_current AS
SELECT role_id, code, name, type, privilege_level, entity, description, organization_id,
       require_group, default_for_levels_json AS default_for_levels
FROM roles;

DROP VIEW role_permissions_current;
CREATE VIEW role_permissions_current AS
SELECT role_id, permission_id, name, entity, condition, description, category_id, category_name
FROM role_permissions;

-- Each member's value of each custom field of the workspace sync.custom_fields_workspace_id
-- (history: entity 'user_custom_field', entity_id '<organization_user_id>:<custom_field_id>').
-- `value` is text: a string as itself, a number, a date, a checkbox or a list as its JSON. The
-- selected options as two JSON arrays in option id order (deleted options still selected
-- included; their `is_deleted` is in the history's JSON). A value is a user's: deferred, as a
-- run writes rows in diff order and the keys need only hold at commit.
CREATE TABLE user_custom_fields (
    organization_user_id INTEGER NOT NULL
        REFERENCES users (organization_user_id) DEFERRABLE INITIALLY DEFERRED,
    custom_field_id      INTEGER NOT NULL,
    custom_field_name    TEXT,
    field_type           TEXT,
    value                TEXT,
    option_ids_json      TEXT NOT NULL DEFAULT '[]',
    option_names_json    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (organization_user_id, custom_field_id)
) WITHOUT ROWID;
CREATE INDEX user_custom_fields_by_field ON user_custom_fields (custom_field_id, value);

CREATE VIEW user_custom_fields_current AS
SELECT organization_user_id, custom_field_id, custom_field_name, field_type, value,
       option_ids_json AS option_ids, option_names_json AS option_names
FROM user_custom_fields;

-- Every value every member had, [valid_from, valid_to) as the mirror observed it.
CREATE VIEW user_custom_field_history AS
SELECT h.id AS organization_user_id,
       h.sub_id AS custom_field_id,
       json_extract(h.data_json, '$.custom_field_name') AS custom_field_name,
       json_extract(h.data_json, '$.field_type') AS field_type,
       json_extract(h.data_json, '$.value') AS value,
       (SELECT json_group_array(json_extract(o.value, '$.option_id'))
        FROM json_each(h.data_json, '$.selected_options') o) AS option_ids,
       (SELECT json_group_array(json_extract(o.value, '$.option_name'))
        FROM json_each(h.data_json, '$.selected_options') o) AS option_names,
       h.valid_from, h.valid_to, h.data_json
FROM entity_history h
WHERE h.entity = 'user_custom_field';
