//! The generated history before the fake starts ([`crate::AuditBacklog`]): events spread
//! evenly over the span, each one computed from its index, so a page of it costs no more
//! than the events it holds.

use super::*;

const TIME_ENTRY_BASE: i64 = 70_000_000;
const PROJECT_BASE: i64 = 30_000;
const CLIENT_BASE: i64 = 20_000;
const GENERATED_ID_BASE: i64 = 80_000_000;

impl Backlog {
    pub(super) fn time(&self, i: usize) -> DateTime<Utc> {
        let n = self.events.max(1) as i128;
        let offset = i128::from(self.span_us) * (i as i128 + 1) / n;
        self.start + TimeDelta::microseconds(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// The first index whose time is at or after `t` (`events` when none).
    pub(super) fn first_at_or_after(&self, t: DateTime<Utc>) -> usize {
        let (mut lo, mut hi) = (0, self.events);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first index whose time is after `t`.
    pub(super) fn first_at_or_after_next(&self, t: DateTime<Utc>) -> usize {
        self.first_at_or_after(t + TimeDelta::microseconds(1))
    }

    pub(super) fn event(&self, i: usize) -> FakeAuditEvent {
        let mut rng = SplitMix64::new(self.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        let pick = |rng: &mut SplitMix64, from: &[i64]| -> i64 {
            if from.is_empty() {
                0
            } else {
                from[rng.below(from.len() as u64) as usize]
            }
        };
        let actor = pick(&mut rng, &self.actors);
        let workspace = pick(&mut rng, &self.workspaces);
        let generated_id = GENERATED_ID_BASE + i as i64;
        let mut e = FakeAuditEvent {
            created_at: self.time(i),
            entity_type: String::new(),
            entity_id: 0,
            action: "update".to_string(),
            user_id: actor,
            workspace_id: workspace,
            project_id: 0,
            old_value: Map::new(),
            new_value: Map::new(),
            meta_data: BTreeMap::new(),
        };
        let roll = rng.below(100);
        match roll {
            0..30 => {
                e.entity_type = "time_entry".to_string();
                e.entity_id = TIME_ENTRY_BASE + rng.below(5_000_000) as i64;
                e.project_id = PROJECT_BASE + rng.below(200) as i64;
                e.old_value = object(json!({ "duration": 900 * (1 + rng.below(16)) }));
                e.new_value = object(json!({ "duration": 900 * (1 + rng.below(16)) }));
            }
            30..42 => {
                let project = PROJECT_BASE + rng.below(200) as i64;
                e.entity_type = "project".to_string();
                e.entity_id = project;
                e.project_id = project;
                e.action = if rng.below(4) == 0 {
                    "create"
                } else {
                    "update"
                }
                .to_string();
                e.new_value =
                    object(json!({ "name": format!("Project {}", project - PROJECT_BASE) }));
            }
            42..47 => {
                e.entity_type = "client".to_string();
                e.entity_id = CLIENT_BASE + rng.below(50) as i64;
                e.action = "create".to_string();
                e.new_value =
                    object(json!({ "name": format!("Client {}", e.entity_id - CLIENT_BASE) }));
            }
            47..65 => {
                let user = pick(&mut rng, &self.users);
                e.entity_type = "organization_user".to_string();
                e.entity_id = user;
                e.workspace_id = 0;
                e.old_value = object(json!({ "working_hours": 32.0 }));
                e.new_value = object(json!({ "working_hours": 40.0 }));
            }
            65..80 => {
                let user = pick(&mut rng, &self.users);
                let group = pick(&mut rng, &self.groups);
                let fields = object(json!({ "group_id": group, "organization_user_id": user }));
                e.entity_type = "group_user".to_string();
                e.entity_id = generated_id;
                e.workspace_id = 0;
                if rng.below(2) == 0 {
                    e.action = "create".to_string();
                    e.new_value = fields;
                } else {
                    e.action = "delete".to_string();
                    e.old_value = fields;
                }
                e.meta_data = meta(&[("group_id", group), ("organization_user_id", user)]);
            }
            80..92 => {
                let user = pick(&mut rng, &self.users);
                e.entity_type = "workspace_user_rate".to_string();
                e.entity_id = generated_id;
                e.old_value =
                    object(json!({ "hourly_rate": (2000 + rng.below(16_000)) as f64 / 100.0 }));
                e.new_value =
                    object(json!({ "hourly_rate": (2000 + rng.below(16_000)) as f64 / 100.0 }));
                e.meta_data = meta(&[("organization_user_id", user)]);
            }
            _ => {
                let group = pick(&mut rng, &self.groups);
                e.entity_type = "group".to_string();
                e.entity_id = group;
                e.workspace_id = 0;
                e.old_value = object(json!({ "emoji": "🚀" }));
                e.new_value = object(json!({ "emoji": "🎨" }));
                e.meta_data = meta(&[("group_id", group)]);
            }
        }
        e
    }
}
