//! The fetch-and-parse floor: the pages a sync fetches, typed into the client's models by
//! a bare client, with nothing else.

use serde_json::json;

use orgmirror::{OrganizationUser, Role, Team, TeamsPage};

use crate::{failed, BenchError, PER_PAGE};

/// The floor: the same pages with a bare typed client. Prints one JSON line of counts.
pub async fn fetch_and_parse(base_url: &str, org: i64, workspace: i64) -> Result<(), BenchError> {
    let http = reqwest::Client::new();
    let base = format!("{}/organizations/{org}", base_url.trim_end_matches('/'));
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http
                .get(&path)
                .basic_auth("demo-token", Some("api_token"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| failed(format!("floor: GET {path}: {e}")))?;
            resp.bytes()
                .await
                .map_err(|e| failed(format!("floor: GET {path}: {e}")))
        }
    };
    let parse_error =
        |what: &str, e: serde_json::Error| failed(format!("floor: cannot parse {what}: {e}"));
    let mut requests = 0u32;

    let body = get(format!("{base}/roles")).await?;
    requests += 1;
    // The default profile answers bare arrays, but for teams (`data` with a `total`).
    let roles: Vec<Role> = serde_json::from_slice(&body).map_err(|e| parse_error("roles", e))?;

    let mut teams = 0usize;
    for page in 1.. {
        let body = get(format!(
            "{base}/teams?workspace_id={workspace}&page={page}&per_page={PER_PAGE}"
        ))
        .await?;
        requests += 1;
        let parsed: TeamsPage<Team> =
            serde_json::from_slice(&body).map_err(|e| parse_error("teams", e))?;
        teams += parsed.data.len();
        let total = parsed.total.and_then(|t| usize::try_from(t).ok());
        if parsed.data.is_empty() || total.is_some_and(|t| teams >= t) {
            break;
        }
    }

    // No total for users: a page shorter than the largest one, or an empty one, ends it.
    let (mut users, mut largest) = (0usize, 0usize);
    for page in 1.. {
        let body = get(format!(
            "{base}/users?page={page}&per_page={PER_PAGE}&include_rates=true&include_working_hours=true"
        ))
        .await?;
        requests += 1;
        let parsed: Vec<OrganizationUser> =
            serde_json::from_slice(&body).map_err(|e| parse_error("users", e))?;
        let n = parsed.len();
        users += n;
        if n == 0 || n < largest {
            break;
        }
        largest = largest.max(n);
    }
    orgmirror::outln!(
        "{}",
        json!({"requests": requests, "roles": roles.len(), "teams": teams, "users": users})
    );
    Ok(())
}
