//! The fake organization: its records, the deterministic generator and the rendering of
//! records into the fake's own wire definitions ([`super::wire`]).
//!
//! **Generation is a pure function of `(users, seed)`**: the PRNG is our own splitmix64 and
//! the clock is a fake one, so the same inputs give byte-identical responses forever.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as TimeDelta, FixedOffset, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::wire::{
    CustomFieldValue, Ghost, Group, GroupRef, GroupUser, GroupWorkspace, OrganizationUser,
    Permission, Rate, Role, SelectedOption, Tag, Team, UserGroup, UserWorkspace,
};
use super::FakeProfile;

/// The first organization user id; ids grow from here.
pub const FIRST_USER_ID: i64 = 100_001;
/// The first group id.
pub const FIRST_GROUP_ID: i64 = 5001;
/// The first custom field's id (`Department`, a select of the first workspace).
pub const FIRST_CUSTOM_FIELD_ID: i64 = 8001;

/// splitmix64: tiny, fast and stable across crate versions, unlike a library PRNG whose
/// algorithm may change under us and break "same seed, same bytes".
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with the given probability in percent.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Renders a timestamp as RFC 3339 with a `Z`, or in the given offset (same instant).
pub(crate) fn render_time(at: DateTime<Utc>, offset: Option<FixedOffset>) -> String {
    match offset {
        Some(off) => at
            .with_timezone(&off)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        None => at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// The instant the fake clock starts at.
pub fn epoch() -> DateTime<Utc> {
    // A fixed, valid instant: `single()` cannot fail for it, the fallback is never used.
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A workspace of the organization.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeWorkspace {
    pub id: i64,
    pub name: String,
}

/// A user's membership of one workspace, with the user's role ids there.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUserWorkspace {
    pub workspace_id: i64,
    pub workspace_user_id: i64,
    pub focus_role_id: i64,
    pub track_role_id: i64,
    pub work_role_id: i64,
    pub toggl_products: Vec<String>,
}

/// A tag on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTag {
    pub id: i64,
    pub label: String,
    pub color: String,
}

/// A user's current rate.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRate {
    pub hourly_rate: f64,
    pub currency: String,
    pub start_at: DateTime<Utc>,
    pub workspace_id: i64,
    pub workspace_rate_id: i64,
    pub workspace_user_rate_id: i64,
}

/// An organization user.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUser {
    pub id: i64,
    pub user_account_id: i64,
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub admin: bool,
    pub owner: bool,
    pub joined: bool,
    pub invite_sent: bool,
    pub two_fa_enabled: bool,
    pub can_edit_personal_details: bool,
    pub account_locked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspaces: Vec<FakeUserWorkspace>,
    pub tags: Vec<FakeTag>,
    pub rate: Option<FakeRate>,
    pub working_hours: Option<f64>,
    /// The groups the user is a member of; kept equal to the groups' member lists.
    pub groups: BTreeSet<i64>,
    /// The user's custom field values by custom field id (fields of any workspace).
    pub custom_values: BTreeMap<i64, FakeCustomValue>,
}

/// A custom field of a workspace (entity type `user`).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomField {
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    /// `text`, `number`, `date`, `checkbox`, `select`, `multi_select`.
    pub field_type: String,
    pub options: Vec<FakeCustomFieldOption>,
}

/// An option of a select or multi-select custom field.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomFieldOption {
    pub id: i64,
    pub name: String,
    /// Deleted from the field; members who had it selected keep it, marked `is_deleted`.
    pub deleted: bool,
}

/// A member's value of one custom field: the JSON `value` and, for the select types, the
/// options selected.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomValue {
    pub value: Value,
    pub option_ids: Vec<i64>,
}

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMember {
    pub user_group_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group's link to a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGroupWorkspace {
    pub workspace_id: i64,
    pub workspace_group_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group (a "team" in the teams list).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGroup {
    pub id: i64,
    pub name: String,
    pub emoji: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Members by organization user id.
    pub members: BTreeMap<i64, FakeMember>,
    pub workspaces: Vec<FakeGroupWorkspace>,
    /// Local ghosts: `(id, name)`.
    pub ghosts: Vec<(i64, String)>,
    /// Members removed softly: still listed, with `deleted_at` set (the seed has the field).
    pub departed: BTreeMap<i64, (FakeMember, DateTime<Utc>)>,
}

/// A permission inside a role.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePermission {
    pub permission_id: i64,
    pub name: String,
    pub entity: String,
    pub condition: Option<String>,
    pub description: String,
    /// The published spec's permission category.
    pub category_id: i64,
    pub category_name: String,
}

/// An organization role.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRole {
    pub role_id: i64,
    pub code: String,
    pub name: String,
    /// Wire name `type`.
    pub kind: String,
    pub privilege_level: i64,
    pub entity: String,
    pub description: String,
    pub permissions: Vec<FakePermission>,
    /// Only conferred through a group (the published spec's).
    pub require_group: bool,
    /// The levels it is the default at; `None` when it is the default nowhere.
    pub default_for_levels: Option<Vec<String>>,
}

/// The whole fake organization. Users are a `Vec` sorted by id so a page is a slice.
#[derive(Debug, Clone)]
pub struct FakeOrg {
    pub organization_id: i64,
    pub workspaces: Vec<FakeWorkspace>,
    pub users: Vec<FakeUser>,
    pub groups: BTreeMap<i64, FakeGroup>,
    pub roles: Vec<FakeRole>,
    /// The custom fields of the workspaces, by id.
    pub custom_fields: Vec<FakeCustomField>,
    /// The fake clock: mutations stamp `updated_at` with it.
    pub now: DateTime<Utc>,
    /// Extra top-level fields per entity (`user`, `group`, `role`) the models do not know.
    pub extra: BTreeMap<String, Map<String, Value>>,
    next_user_id: i64,
    next_group_id: i64,
    next_id: i64,
    next_permission_id: i64,
}

const FIRST_NAMES: &[(&str, &str)] = &[
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Ngọc", "ngoc"),
    ("Renée", "renee"),
    ("Aarav", "aarav"),
    ("Mia", "mia"),
    ("Oğuz", "oguz"),
    ("Анна", "anna"),
    ("美咲", "misaki"),
    ("Liam", "liam"),
    ("Chloé", "chloe"),
    ("Björn", "bjorn"),
    ("Fatima", "fatima"),
    ("Kai", "kai"),
    ("Siobhán", "siobhan"),
    ("Mateus", "mateus"),
    ("Γιώργος", "giorgos"),
    ("Ada", "ada"),
];

const LAST_NAMES: &[&str] = &[
    "Müller",
    "García",
    "Nowak",
    "Jensen",
    "Nguyễn",
    "Dubois",
    "Patel",
    "Smith",
    "Yılmaz",
    "Иванова",
    "佐藤",
    "O'Brien",
    "Lefèvre",
    "Ström",
    "Haddad",
    "Tamm",
    "Kowalczyk",
    "Silva",
    "Παπαδόπουλος",
    "Lovelace",
];

const NAME_EMOJI: &[&str] = &["🚀", "🌱", "☕", "🎧", "🦊"];
const GROUP_WORDS: &[&str] = &[
    "Équipe",
    "Design",
    "Backend",
    "Support",
    "Ventas",
    "Qualität",
    "Growth",
    "Финансы",
    "開発",
    "Ops",
];
const GROUP_PLACES: &[&str] = &[
    "Nord",
    "Süd",
    "Tallinn",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Remote",
    "東京",
];
const GROUP_EMOJI: &[&str] = &["🚀", "🎨", "🛠️", "📞", "💶", "🧪", "🌍", "🐙", "⚡", "🧭"];
const WORKSPACE_NAMES: &[&str] = &[
    "Hauptsitz",
    "Agência Criativa",
    "Nordic Ops",
    "Zürich Lab",
    "東京 Studio",
    "Client Work ✨",
];
const TAGS: &[(&str, &str)] = &[
    ("contractor", "#e57373"),
    ("part-time", "#64b5f6"),
    ("Führungskraft", "#81c784"),
    ("on-call 📟", "#ffb74d"),
    ("mentor", "#ba68c8"),
    ("nouveau", "#4db6ac"),
    ("remote", "#a1887f"),
    ("intern", "#90a4ae"),
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP"];
const WORKING_HOURS: &[f64] = &[20.0, 30.0, 32.0, 37.5, 40.0];
const PRODUCTS: &[&str] = &["focus", "track", "work"];
/// The first tag id.
const FIRST_TAG_ID: i64 = 40_001;

/// What the generator and the control surface need to know about the login.
#[derive(Debug, Clone)]
pub struct GenParams {
    pub users: usize,
    pub seed: u64,
    pub organization_id: i64,
    pub workspace_id: i64,
    pub owner_email: String,
}

impl FakeOrg {
    /// Generates the organization for `(users, seed)`; `users` is at least 1 (the owner).
    pub fn generate(p: &GenParams) -> FakeOrg {
        let mut rng = SplitMix64::new(p.seed ^ 0x6F72_676D_6972_726F);
        let now = epoch();
        let user_count = p.users.max(1);
        let ws_count = (user_count / 500).max(2);
        let workspaces: Vec<FakeWorkspace> = (0..ws_count)
            .map(|i| FakeWorkspace {
                id: p.workspace_id + i as i64,
                name: if i < WORKSPACE_NAMES.len() {
                    WORKSPACE_NAMES[i].to_string()
                } else {
                    format!("{} {}", WORKSPACE_NAMES[i % WORKSPACE_NAMES.len()], i + 1)
                },
            })
            .collect();
        let mut org = FakeOrg {
            organization_id: p.organization_id,
            workspaces,
            users: Vec::with_capacity(user_count),
            groups: BTreeMap::new(),
            roles: generate_roles(&mut rng),
            custom_fields: Vec::new(),
            now,
            extra: BTreeMap::new(),
            next_user_id: FIRST_USER_ID,
            next_group_id: FIRST_GROUP_ID,
            next_id: 1_000_001,
            next_permission_id: 0,
        };
        org.next_permission_id = org
            .roles
            .iter()
            .flat_map(|r| r.permissions.iter().map(|x| x.permission_id))
            .max()
            .unwrap_or(0)
            + 1;
        let role_ids: Vec<i64> = org.roles.iter().map(|r| r.role_id).collect();

        for i in 0..user_count {
            let id = org.next_user_id;
            org.next_user_id += 1;
            let created_at = now - TimeDelta::seconds(3600 + rng.below(900 * 86_400) as i64);
            let updated_at = created_at + TimeDelta::seconds(rng.below(30 * 86_400) as i64);
            let (first, slug) = *rng.pick(FIRST_NAMES);
            let last = *rng.pick(LAST_NAMES);
            let owner = i == 0;
            let (name, email) = if owner {
                ("Demo Owner".to_string(), p.owner_email.clone())
            } else {
                let mut name = format!("{first} {last}");
                if rng.chance(5) {
                    name.push(' ');
                    let emoji = *rng.pick(NAME_EMOJI);
                    name.push_str(emoji);
                }
                (name, format!("{slug}.{id}@example.com"))
            };
            // Owner in every workspace; others in 1–3 distinct ones.
            let mut ws_ids: Vec<i64> = if owner {
                org.workspaces.iter().map(|w| w.id).collect()
            } else {
                let k = 1 + rng.below(3.min(org.workspaces.len()) as u64) as usize;
                let mut chosen = Vec::with_capacity(k);
                while chosen.len() < k {
                    let w = rng.pick(&org.workspaces).id;
                    if !chosen.contains(&w) {
                        chosen.push(w);
                    }
                }
                chosen
            };
            ws_ids.sort_unstable();
            let mut workspaces = Vec::with_capacity(ws_ids.len());
            for w in ws_ids {
                let mut products: Vec<String> = PRODUCTS
                    .iter()
                    .filter(|_| rng.chance(60))
                    .map(|s| s.to_string())
                    .collect();
                if products.is_empty() {
                    products.push(PRODUCTS[0].to_string());
                }
                let wuid = org.fresh_id();
                workspaces.push(FakeUserWorkspace {
                    workspace_id: w,
                    workspace_user_id: wuid,
                    focus_role_id: *rng.pick(&role_ids),
                    track_role_id: *rng.pick(&role_ids),
                    work_role_id: *rng.pick(&role_ids),
                    toggl_products: products,
                });
            }
            let mut tags: Vec<FakeTag> = Vec::new();
            for _ in 0..rng.below(4) {
                let t = rng.below(TAGS.len() as u64) as usize;
                let tag = FakeTag {
                    id: FIRST_TAG_ID + t as i64,
                    label: TAGS[t].0.to_string(),
                    color: TAGS[t].1.to_string(),
                };
                if !tags.iter().any(|x| x.id == tag.id) {
                    tags.push(tag);
                }
            }
            tags.sort_by_key(|t| t.id);
            let rate = if rng.chance(85) {
                let first_ws = workspaces.first().map(|w| w.workspace_id);
                Some(FakeRate {
                    hourly_rate: (2000 + rng.below(16_000)) as f64 / 100.0,
                    currency: rng.pick(CURRENCIES).to_string(),
                    start_at: created_at + TimeDelta::seconds(rng.below(86_400) as i64),
                    workspace_id: first_ws.unwrap_or(p.workspace_id),
                    workspace_rate_id: 60_000 + first_ws.unwrap_or(p.workspace_id),
                    workspace_user_rate_id: org.fresh_id(),
                })
            } else {
                None
            };
            let working_hours = if rng.chance(90) {
                Some(*rng.pick(WORKING_HOURS))
            } else {
                None
            };
            let active = owner || !rng.chance(8);
            let joined = owner || !rng.chance(5);
            org.users.push(FakeUser {
                id,
                // Strictly increasing with a random step: unique without a lookup.
                user_account_id: 3_000_000 + (i as i64) * 3 + rng.below(3) as i64,
                user_id: format!("{:016x}", rng.next_u64()),
                name,
                email,
                active,
                admin: owner || rng.chance(7),
                owner,
                joined,
                invite_sent: !joined || rng.chance(50),
                two_fa_enabled: rng.chance(30),
                can_edit_personal_details: rng.chance(80),
                account_locked_at: if !owner && rng.chance(1) {
                    Some(updated_at)
                } else {
                    None
                },
                created_at,
                updated_at,
                workspaces,
                tags,
                rate,
                working_hours,
                groups: BTreeSet::new(),
                custom_values: BTreeMap::new(),
            });
        }

        let group_count = (user_count / 10).max(3);
        for g in 0..group_count {
            let id = org.next_group_id;
            org.next_group_id += 1;
            let created_at = now - TimeDelta::seconds(3600 + rng.below(600 * 86_400) as i64);
            let updated_at = created_at + TimeDelta::seconds(rng.below(10 * 86_400) as i64);
            let name = format!(
                "{} {} {}",
                rng.pick(GROUP_WORDS),
                rng.pick(GROUP_PLACES),
                g + 1
            );
            let emoji = if rng.chance(90) {
                Some(rng.pick(GROUP_EMOJI).to_string())
            } else {
                None
            };
            let mut ws: Vec<i64> = vec![rng.pick(&org.workspaces).id];
            if rng.chance(30) {
                let w = rng.pick(&org.workspaces).id;
                if !ws.contains(&w) {
                    ws.push(w);
                }
            }
            ws.sort_unstable();
            let mut workspaces = Vec::new();
            for w in ws {
                let wgid = org.fresh_id();
                workspaces.push(FakeGroupWorkspace {
                    workspace_id: w,
                    workspace_group_id: wgid,
                    created_at,
                    updated_at: created_at,
                });
            }
            let ghosts = (0..rng.below(3))
                .map(|k| {
                    (
                        9_000_000 + id * 10 + k as i64,
                        format!("Ghost {} 👻", k + 1),
                    )
                })
                .collect();
            org.groups.insert(
                id,
                FakeGroup {
                    id,
                    name,
                    emoji,
                    created_at,
                    updated_at,
                    members: BTreeMap::new(),
                    workspaces,
                    ghosts,
                    departed: BTreeMap::new(),
                },
            );
            // The owner is in the first two groups so "my groups" is never empty.
            let mut wanted: Vec<i64> = Vec::new();
            if g < 2 {
                wanted.push(FIRST_USER_ID);
            }
            let n = rng.below(31);
            for _ in 0..n {
                let uid = FIRST_USER_ID + rng.below(user_count as u64) as i64;
                if !wanted.contains(&uid) {
                    wanted.push(uid);
                }
            }
            for uid in wanted {
                org.add_member(id, uid, created_at);
            }
        }
        // Their own generator: the rest of the organization is what it was before they existed.
        org.generate_custom_fields(&mut SplitMix64::new(p.seed ^ 0x6375_7374_6f6d_6669));
        org
    }

    /// A few custom fields of each type in the first workspace, with values for most of its
    /// members: a deleted option some still have selected, text, a number, a date.
    fn generate_custom_fields(&mut self, rng: &mut SplitMix64) {
        let Some(ws) = self.workspaces.first().map(|w| w.id) else {
            return;
        };
        let option = |id: i64, name: &str, deleted: bool| FakeCustomFieldOption {
            id,
            name: name.to_string(),
            deleted,
        };
        let field = |id: i64, name: &str, field_type: &str, options| FakeCustomField {
            id,
            workspace_id: ws,
            name: name.to_string(),
            field_type: field_type.to_string(),
            options,
        };
        self.custom_fields = vec![
            field(
                FIRST_CUSTOM_FIELD_ID,
                "Department",
                "select",
                vec![
                    option(8101, "Sales", false),
                    option(8102, "Support", false),
                    option(8103, "Engineering", false),
                    option(8104, "Finanzen", false),
                    option(8105, "Legacy Ops", true),
                ],
            ),
            field(8002, "Cost centre", "text", Vec::new()),
            field(
                8003,
                "Contract type",
                "select",
                vec![
                    option(8111, "Permanent", false),
                    option(8112, "Fixed-term", false),
                    option(8113, "Contractor", false),
                ],
            ),
            field(
                8004,
                "Skills",
                "multi_select",
                vec![
                    option(8121, "Rust", false),
                    option(8122, "SQL", false),
                    option(8123, "Design", false),
                    option(8124, "Négociation", false),
                ],
            ),
            field(8005, "Weekly target", "number", Vec::new()),
            field(8006, "Start date", "date", Vec::new()),
        ];
        let fields = self.custom_fields.clone();
        for user in self.users.iter_mut() {
            if !user.workspaces.iter().any(|w| w.workspace_id == ws) {
                continue;
            }
            for f in &fields {
                if !rng.chance(75) {
                    continue;
                }
                let value = match f.field_type.as_str() {
                    "select" => {
                        let o = rng.pick(&f.options).id;
                        FakeCustomValue {
                            value: Value::from(o),
                            option_ids: vec![o],
                        }
                    }
                    "multi_select" => {
                        let mut ids: Vec<i64> = f
                            .options
                            .iter()
                            .filter(|_| rng.chance(40))
                            .map(|o| o.id)
                            .collect();
                        if ids.is_empty() {
                            ids.push(rng.pick(&f.options).id);
                        }
                        FakeCustomValue {
                            value: Value::from(ids.clone()),
                            option_ids: ids,
                        }
                    }
                    "number" => FakeCustomValue {
                        value: Value::from(*rng.pick(WORKING_HOURS)),
                        option_ids: Vec::new(),
                    },
                    "date" => FakeCustomValue {
                        value: Value::from(
                            (user.created_at.date_naive())
                                .format("%Y-%m-%d")
                                .to_string(),
                        ),
                        option_ids: Vec::new(),
                    },
                    _ => FakeCustomValue {
                        value: Value::from(format!("CC-{}", 1000 + rng.below(40))),
                        option_ids: Vec::new(),
                    },
                };
                user.custom_values.insert(f.id, value);
            }
        }
    }

    /// Applies `f` to a user's custom field values; the user's `updated_at` stays (the values
    /// are not part of the user's record). False when the user is unknown.
    pub fn edit_custom_values(
        &mut self,
        user_id: i64,
        f: impl FnOnce(&mut BTreeMap<i64, FakeCustomValue>),
    ) -> bool {
        match self.user_mut(user_id) {
            Some(u) => {
                f(&mut u.custom_values);
                true
            }
            None => false,
        }
    }

    /// A custom field by id.
    pub fn custom_field_mut(&mut self, id: i64) -> Option<&mut FakeCustomField> {
        self.custom_fields.iter_mut().find(|f| f.id == id)
    }

    /// A member's values of the custom fields of `workspace`, as the users list renders them.
    fn render_custom_values(&self, u: &FakeUser, workspace: i64) -> Vec<CustomFieldValue> {
        self.custom_fields
            .iter()
            .filter(|f| f.workspace_id == workspace)
            .filter_map(|f| {
                let v = u.custom_values.get(&f.id)?;
                let selected_options = v
                    .option_ids
                    .iter()
                    .filter_map(|id| f.options.iter().find(|o| o.id == *id))
                    .map(|o| SelectedOption {
                        is_deleted: o.deleted,
                        option_id: o.id,
                        option_name: o.name.clone(),
                    })
                    .collect();
                Some(CustomFieldValue {
                    custom_field_id: f.id,
                    custom_field_name: f.name.clone(),
                    field_type: f.field_type.clone(),
                    selected_options,
                    value: v.value.clone(),
                })
            })
            .collect()
    }

    /// A new id for records without an id range of their own (links, memberships, rates).
    pub(crate) fn fresh_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Index of a user in the sorted `users`.
    pub fn user_index(&self, id: i64) -> Option<usize> {
        self.users.binary_search_by_key(&id, |u| u.id).ok()
    }

    /// The user with this id.
    pub fn user(&self, id: i64) -> Option<&FakeUser> {
        self.user_index(id).map(|i| &self.users[i])
    }

    fn user_mut(&mut self, id: i64) -> Option<&mut FakeUser> {
        self.user_index(id).map(move |i| &mut self.users[i])
    }

    /// Adds `user_id` to `group_id` on both sides; false when either is unknown or already joined.
    pub fn add_member(&mut self, group_id: i64, user_id: i64, at: DateTime<Utc>) -> bool {
        if self.user_index(user_id).is_none() {
            return false;
        }
        let ugid = self.fresh_id();
        let Some(group) = self.groups.get_mut(&group_id) else {
            return false;
        };
        if group.members.contains_key(&user_id) {
            return false;
        }
        group.departed.remove(&user_id);
        group.members.insert(
            user_id,
            FakeMember {
                user_group_id: ugid,
                created_at: at,
                updated_at: at,
            },
        );
        if let Some(u) = self.user_mut(user_id) {
            u.groups.insert(group_id);
        }
        true
    }

    /// Removes `user_id` from `group_id` softly: the teams list goes on listing the
    /// membership, with `deleted_at` set to `at`.
    pub fn soft_remove_member(&mut self, group_id: i64, user_id: i64, at: DateTime<Utc>) -> bool {
        let Some(member) = self
            .groups
            .get(&group_id)
            .and_then(|g| g.members.get(&user_id))
            .cloned()
        else {
            return false;
        };
        self.remove_member(group_id, user_id);
        if let Some(g) = self.groups.get_mut(&group_id) {
            g.departed.insert(user_id, (member, at));
        }
        true
    }

    /// Removes `user_id` from `group_id` on both sides.
    pub fn remove_member(&mut self, group_id: i64, user_id: i64) -> bool {
        let removed = self
            .groups
            .get_mut(&group_id)
            .map(|g| g.members.remove(&user_id).is_some())
            .unwrap_or(false);
        if let Some(u) = self.user_mut(user_id) {
            u.groups.remove(&group_id);
        }
        removed
    }

    /// Adds a user with default settings in the first workspace; returns its id.
    pub fn add_user(&mut self, name: &str, email: &str) -> i64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        let now = self.now;
        let ws = self.workspaces.first().map(|w| w.id).unwrap_or(0);
        let role = self.roles.last().map(|r| r.role_id).unwrap_or(0);
        let wuid = self.fresh_id();
        let account = self
            .users
            .last()
            .map(|u| u.user_account_id)
            .unwrap_or(3_000_000)
            + 1;
        self.users.push(FakeUser {
            id,
            user_account_id: account,
            user_id: format!("{:016x}", id as u64 ^ 0x5EED),
            name: name.to_string(),
            email: email.to_string(),
            active: true,
            admin: false,
            owner: false,
            joined: true,
            invite_sent: true,
            two_fa_enabled: false,
            can_edit_personal_details: true,
            account_locked_at: None,
            created_at: now,
            updated_at: now,
            workspaces: vec![FakeUserWorkspace {
                workspace_id: ws,
                workspace_user_id: wuid,
                focus_role_id: role,
                track_role_id: role,
                work_role_id: role,
                toggl_products: vec!["focus".to_string()],
            }],
            tags: Vec::new(),
            rate: None,
            working_hours: None,
            groups: BTreeSet::new(),
            custom_values: BTreeMap::new(),
        });
        id
    }

    /// Removes a user and all their memberships.
    pub fn remove_user(&mut self, id: i64) -> bool {
        let Some(i) = self.user_index(id) else {
            return false;
        };
        let user = self.users.remove(i);
        for g in user.groups {
            if let Some(group) = self.groups.get_mut(&g) {
                group.members.remove(&id);
            }
        }
        true
    }

    /// Applies `f` to a user and bumps its `updated_at`.
    pub fn edit_user(&mut self, id: i64, f: impl FnOnce(&mut FakeUser, DateTime<Utc>)) -> bool {
        let now = self.now;
        match self.user_mut(id) {
            Some(u) => {
                f(u, now);
                u.updated_at = now;
                true
            }
            None => false,
        }
    }

    /// Creates a group; returns its id. Unknown user or workspace ids are the caller's to check.
    pub fn create_group(
        &mut self,
        name: &str,
        emoji: Option<&str>,
        members: &[i64],
        workspaces: &[i64],
    ) -> i64 {
        let id = self.next_group_id;
        self.next_group_id += 1;
        let now = self.now;
        self.groups.insert(
            id,
            FakeGroup {
                id,
                name: name.to_string(),
                emoji: emoji.map(str::to_string),
                created_at: now,
                updated_at: now,
                members: BTreeMap::new(),
                workspaces: Vec::new(),
                ghosts: Vec::new(),
                departed: BTreeMap::new(),
            },
        );
        self.set_group_workspaces(id, workspaces);
        for &m in members {
            self.add_member(id, m, now);
        }
        id
    }

    /// Replaces a group's workspace set, keeping the links that stay.
    pub fn set_group_workspaces(&mut self, group_id: i64, workspaces: &[i64]) {
        let now = self.now;
        let mut wanted: Vec<i64> = workspaces.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut fresh: Vec<i64> = Vec::new();
        for _ in &wanted {
            fresh.push(self.fresh_id());
        }
        if let Some(g) = self.groups.get_mut(&group_id) {
            let old = std::mem::take(&mut g.workspaces);
            for (w, new_id) in wanted.into_iter().zip(fresh) {
                match old.iter().find(|x| x.workspace_id == w) {
                    Some(link) => g.workspaces.push(link.clone()),
                    None => g.workspaces.push(FakeGroupWorkspace {
                        workspace_id: w,
                        workspace_group_id: new_id,
                        created_at: now,
                        updated_at: now,
                    }),
                }
            }
        }
    }

    /// Replaces a group's member set, keeping the memberships that stay.
    pub fn set_group_members(&mut self, group_id: i64, members: &[i64]) {
        let now = self.now;
        let current: Vec<i64> = match self.groups.get(&group_id) {
            Some(g) => g.members.keys().copied().collect(),
            None => return,
        };
        for uid in &current {
            if !members.contains(uid) {
                self.remove_member(group_id, *uid);
            }
        }
        for &uid in members {
            self.add_member(group_id, uid, now);
        }
    }

    /// Removes a group and every membership of it.
    pub fn remove_group(&mut self, id: i64) -> bool {
        let Some(group) = self.groups.remove(&id) else {
            return false;
        };
        for uid in group.members.keys() {
            if let Some(u) = self.user_mut(*uid) {
                u.groups.remove(&id);
            }
        }
        true
    }

    /// Adds a permission to a role; returns its id.
    pub fn add_role_permission(&mut self, role_id: i64, name: &str) -> Option<i64> {
        let pid = self.next_permission_id;
        let role = self.roles.iter_mut().find(|r| r.role_id == role_id)?;
        self.next_permission_id += 1;
        let (category_id, category_name) = permission_category(name);
        role.permissions.push(FakePermission {
            permission_id: pid,
            name: name.to_string(),
            entity: role.entity.clone(),
            condition: None,
            description: format!("Allows {name}"),
            category_id,
            category_name: category_name.to_string(),
        });
        Some(pid)
    }

    /// The workspace's name, when it exists.
    pub fn workspace_name(&self, id: i64) -> Option<&str> {
        self.workspaces
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name.as_str())
    }

    /// The extra fields configured for an entity (empty when none).
    pub fn extra_for(&self, entity: &str) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.extra
            .get(entity)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    // ----- rendering into the wire models -----

    /// A user as `GET …/users` lists it; with `custom_fields`, their values of that
    /// workspace's custom fields (`include_custom_fields=true`).
    pub fn render_user(
        &self,
        u: &FakeUser,
        include_rates: bool,
        include_working_hours: bool,
        custom_fields: Option<i64>,
        offset: Option<FixedOffset>,
    ) -> OrganizationUser {
        let t = |at: DateTime<Utc>| Some(render_time(at, offset));
        let groups: Vec<&FakeGroup> = u.groups.iter().filter_map(|g| self.groups.get(g)).collect();
        OrganizationUser {
            two_fa_enabled: Some(u.two_fa_enabled),
            account_locked_at: u.account_locked_at.and_then(t),
            active: Some(u.active),
            admin: Some(u.admin),
            can_edit_personal_details: Some(u.can_edit_personal_details),
            created_at: t(u.created_at),
            custom_field_values: custom_fields.map(|ws| self.render_custom_values(u, ws)),
            deleted_at: None,
            email: Some(u.email.clone()),
            groups: groups
                .iter()
                .map(|g| UserGroup {
                    emoji: g.emoji.clone(),
                    id: Some(g.id),
                    name: Some(g.name.clone()),
                    workspace_ids: g.workspaces.iter().map(|w| w.workspace_id).collect(),
                })
                .collect(),
            id: Some(u.id),
            invite_sent: Some(u.invite_sent),
            joined: Some(u.joined),
            name: Some(u.name.clone()),
            organization_id: Some(self.organization_id),
            owner: Some(u.owner),
            permissions: Some(user_permissions(u)),
            rate: if include_rates {
                u.rate.as_ref().map(|r| Rate {
                    currency: Some(r.currency.clone()),
                    end_at: None,
                    hourly_rate: Some(r.hourly_rate),
                    start_at: t(r.start_at),
                    workspace_id: Some(r.workspace_id),
                    workspace_rate_id: Some(r.workspace_rate_id),
                    workspace_user_rate_id: Some(r.workspace_user_rate_id),
                })
            } else {
                None
            },
            tags: u
                .tags
                .iter()
                .map(|x| Tag {
                    color: Some(x.color.clone()),
                    id: Some(x.id),
                    label: Some(x.label.clone()),
                })
                .collect(),
            updated_at: t(u.updated_at),
            user_account_id: Some(u.user_account_id),
            user_id: Some(u.user_id.clone()),
            working_hours: if include_working_hours {
                u.working_hours
            } else {
                None
            },
            workspaces: u
                .workspaces
                .iter()
                .map(|w| UserWorkspace {
                    focus_role_id: Some(w.focus_role_id),
                    groups: groups
                        .iter()
                        .filter(|g| {
                            g.workspaces
                                .iter()
                                .any(|x| x.workspace_id == w.workspace_id)
                        })
                        .map(|g| GroupRef {
                            emoji: g.emoji.clone(),
                            id: Some(g.id),
                            name: Some(g.name.clone()),
                        })
                        .collect(),
                    id: Some(w.workspace_id),
                    name: self.workspace_name(w.workspace_id).map(str::to_string),
                    toggl_products: w.toggl_products.clone(),
                    track_role_id: Some(w.track_role_id),
                    work_role_id: Some(w.work_role_id),
                    workspace_user_id: Some(w.workspace_user_id),
                })
                .collect(),
        }
    }

    fn render_group_users(&self, g: &FakeGroup, offset: Option<FixedOffset>) -> Vec<GroupUser> {
        let departed = g.departed.iter().map(|(uid, (m, at))| (uid, m, Some(*at)));
        g.members
            .iter()
            .map(|(uid, m)| (uid, m, None))
            .chain(departed)
            .filter_map(|(uid, m, deleted_at)| {
                let u = self.user(*uid)?;
                // The role ids of the user in the group's workspace, else their first one.
                let uw = u
                    .workspaces
                    .iter()
                    .find(|w| {
                        g.workspaces
                            .iter()
                            .any(|x| x.workspace_id == w.workspace_id)
                    })
                    .or_else(|| u.workspaces.first());
                Some(GroupUser {
                    created_at: Some(render_time(m.created_at, offset)),
                    deleted_at: deleted_at.map(|at| render_time(at, offset)),
                    display_name: Some(u.name.clone()),
                    focus_role_id: uw.map(|w| w.focus_role_id),
                    organization_user_id: Some(u.id),
                    track_role_id: uw.map(|w| w.track_role_id),
                    updated_at: Some(render_time(m.updated_at, offset)),
                    user_account_id: Some(u.user_account_id),
                    user_group_id: Some(m.user_group_id),
                    work_role_id: uw.map(|w| w.work_role_id),
                })
            })
            .collect()
    }

    fn render_group_workspaces(
        &self,
        g: &FakeGroup,
        offset: Option<FixedOffset>,
    ) -> Vec<GroupWorkspace> {
        g.workspaces
            .iter()
            .map(|w| GroupWorkspace {
                created_at: Some(render_time(w.created_at, offset)),
                deleted_at: None,
                name: self.workspace_name(w.workspace_id).map(str::to_string),
                updated_at: Some(render_time(w.updated_at, offset)),
                workspace_group_id: Some(w.workspace_group_id),
                workspace_id: Some(w.workspace_id),
            })
            .collect()
    }

    /// A group as the create and update responses return it.
    pub fn render_group(&self, g: &FakeGroup, offset: Option<FixedOffset>) -> Group {
        Group {
            created_at: Some(render_time(g.created_at, offset)),
            deleted_at: None,
            emoji: g.emoji.clone(),
            id: Some(g.id),
            name: Some(g.name.clone()),
            organization_id: Some(self.organization_id),
            updated_at: Some(render_time(g.updated_at, offset)),
            users: self.render_group_users(g, offset),
            workspaces: self.render_group_workspaces(g, offset),
        }
    }

    /// A group as the teams list returns it (with its ghosts on the seed profile only).
    pub fn render_team(
        &self,
        g: &FakeGroup,
        offset: Option<FixedOffset>,
        profile: FakeProfile,
    ) -> Team {
        let ghosts = g
            .ghosts
            .iter()
            .map(|(id, name)| Ghost {
                id: Some(*id),
                name: Some(name.clone()),
            })
            .collect();
        Team {
            created_at: Some(render_time(g.created_at, offset)),
            deleted_at: None,
            emoji: g.emoji.clone(),
            ghosts: (profile == FakeProfile::Seed).then_some(ghosts),
            id: Some(g.id),
            name: Some(g.name.clone()),
            organization_id: Some(self.organization_id),
            updated_at: Some(render_time(g.updated_at, offset)),
            users: self.render_group_users(g, offset),
            workspaces: self.render_group_workspaces(g, offset),
        }
    }

    /// A role as `GET …/roles` lists it (the published spec's fields on the focus profile only).
    pub fn render_role(&self, r: &FakeRole, profile: FakeProfile) -> Role {
        let published = profile == FakeProfile::Focus;
        Role {
            code: Some(r.code.clone()),
            default_for_levels: published.then(|| r.default_for_levels.clone()),
            description: Some(r.description.clone()),
            entity: Some(r.entity.clone()),
            name: Some(r.name.clone()),
            organization_id: Some(self.organization_id),
            permissions: r
                .permissions
                .iter()
                .map(|p| Permission {
                    category_id: published.then_some(p.category_id),
                    category_name: published.then(|| p.category_name.clone()),
                    condition: p.condition.clone(),
                    description: Some(p.description.clone()),
                    entity: Some(p.entity.clone()),
                    name: Some(p.name.clone()),
                    permission_id: Some(p.permission_id),
                })
                .collect(),
            privilege_level: Some(r.privilege_level),
            require_group: published.then_some(r.require_group),
            role_id: Some(r.role_id),
            kind: Some(r.kind.clone()),
        }
    }
}

/// The category of a permission, from its name (the published spec's `category_*`).
fn permission_category(name: &str) -> (i64, &'static str) {
    match name {
        "view_users" | "manage_users" => (1, "People"),
        "view_user_groups" | "manage_user_groups" => (2, "Groups"),
        "view_rates" | "edit_rates" | "manage_billing" => (3, "Rates & billing"),
        "view_reports" => (4, "Reports"),
        "track_time" | "plan_work" => (5, "Time & planning"),
        _ => (9, "Other"),
    }
}

/// The seed types `permissions` as a bare object; this shape is ours.
fn user_permissions(u: &FakeUser) -> Value {
    let mut m = Map::new();
    m.insert("manage_users".into(), Value::Bool(u.admin || u.owner));
    m.insert("manage_groups".into(), Value::Bool(u.admin || u.owner));
    m.insert("view_rates".into(), Value::Bool(u.admin || u.owner));
    Value::Object(m)
}

fn generate_roles(rng: &mut SplitMix64) -> Vec<FakeRole> {
    const CATALOG: &[(&str, &str, Option<&str>)] = &[
        ("view_users", "organization", None),
        ("manage_users", "organization", None),
        ("view_user_groups", "workspace", None),
        ("manage_user_groups", "workspace", Some("own_groups")),
        ("view_rates", "workspace", None),
        ("edit_rates", "workspace", Some("same_workspace")),
        ("manage_billing", "organization", None),
        ("view_reports", "workspace", None),
        ("track_time", "workspace", Some("own_entries")),
        ("plan_work", "workspace", None),
    ];
    // (code, name, type, level, entity, only through a group, the default at).
    type RoleRow = (
        &'static str,
        &'static str,
        &'static str,
        i64,
        &'static str,
        bool,
        Option<&'static str>,
    );
    const ROLES: &[RoleRow] = &[
        (
            "org_owner",
            "Owner",
            "owner",
            100,
            "organization",
            false,
            None,
        ),
        (
            "org_admin",
            "Administrator",
            "admin",
            90,
            "organization",
            false,
            None,
        ),
        (
            "ws_manager",
            "Team Lead 🧭",
            "manager",
            60,
            "group",
            true,
            None,
        ),
        (
            "ws_member",
            "Member",
            "manager",
            30,
            "workspace",
            false,
            Some("workspace"),
        ),
        ("ws_reviewer", "Prüfer", "guest", 20, "project", false, None),
        (
            "ws_guest",
            "Guest",
            "guest",
            10,
            "workspace",
            false,
            Some("project"),
        ),
    ];
    let mut next_pid = 701;
    ROLES
        .iter()
        .enumerate()
        .map(
            |(i, (code, name, kind, level, entity, require_group, default))| {
                // Higher privilege: more of the catalog; always at least two permissions.
                let n = 2 + (*level as usize * (CATALOG.len() - 2)) / 100;
                let start = rng.below(CATALOG.len() as u64) as usize;
                let mut permissions: Vec<FakePermission> = (0..n)
                    .map(|k| {
                        let (pname, pentity, cond) = CATALOG[(start + k) % CATALOG.len()];
                        let pid = next_pid;
                        next_pid += 1;
                        let (category_id, category_name) = permission_category(pname);
                        FakePermission {
                            permission_id: pid,
                            name: pname.to_string(),
                            entity: pentity.to_string(),
                            condition: cond.map(str::to_string),
                            description: format!("Allows {}", pname.replace('_', " ")),
                            category_id,
                            category_name: category_name.to_string(),
                        }
                    })
                    .collect();
                permissions.sort_by_key(|p| p.permission_id);
                FakeRole {
                    role_id: 11 + i as i64,
                    code: code.to_string(),
                    name: name.to_string(),
                    kind: kind.to_string(),
                    privilege_level: *level,
                    entity: entity.to_string(),
                    description: format!("{name}: built-in {kind} role"),
                    permissions,
                    require_group: *require_group,
                    default_for_levels: default.map(|level| vec![level.to_string()]),
                }
            },
        )
        .collect()
}

/// Serializes a record with extra top-level fields appended (the flatten keeps the bytes
/// identical to the plain model when `extra` is empty).
#[derive(Serialize)]
pub(crate) struct WithExtra<'a, T: Serialize> {
    #[serde(flatten)]
    pub inner: T,
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}
