//! The deterministic generator of a fake organization: users with their workspaces,
//! roles, tags, rates and working hours, groups with their members, roles with their
//! permissions, custom fields with their values.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use serde_json::Value;

use super::{
    FakeCustomField, FakeCustomFieldOption, FakeCustomValue, FakeGroup, FakeGroupWorkspace,
    FakeOrg, FakePermission, FakeRate, FakeRole, FakeTag, FakeUser, FakeUserWorkspace,
    FakeWorkspace, FIRST_CUSTOM_FIELD_ID, FIRST_GROUP_ID, FIRST_USER_ID,
};

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

/// The instant the fake clock starts at.
pub fn epoch() -> DateTime<Utc> {
    // A fixed, valid instant: `single()` cannot fail for it, the fallback is never used.
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
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
            audit: Default::default(),
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
}

/// The category of a permission, from its name (the published spec's `category_*`).
pub(super) fn permission_category(name: &str) -> (i64, &'static str) {
    match name {
        "view_users" | "manage_users" => (1, "People"),
        "view_user_groups" | "manage_user_groups" => (2, "Groups"),
        "view_rates" | "edit_rates" | "manage_billing" => (3, "Rates & billing"),
        "view_reports" => (4, "Reports"),
        "track_time" | "plan_work" => (5, "Time & planning"),
        _ => (9, "Other"),
    }
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
