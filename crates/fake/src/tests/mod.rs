//! Unit tests of the fake, against the real server on `127.0.0.1:0`: the seed profile as the
//! reference page shows it, the focus profile as the published spec says, the faults, the
//! organization's changes, and the server itself.

mod audit;
mod faults;
mod focus;
mod org;
mod seed;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::wire::{Group, GroupRef, OrganizationUser, Role, Team};
use super::*;
use crate::cli::serve_until;

/// The seed's `{"items": [...]}`, read back with the fake's own wire types (never the
/// client's models: the fake is the client's independent witness).
#[derive(Debug, serde::Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// The seed's teams page.
#[derive(Debug, serde::Deserialize)]
struct TeamsPage<T> {
    data: Vec<T>,
    total: Option<i64>,
}

const ANY_PORT: &str = "127.0.0.1:0";

/// The seed profile: most tests here hold the fake to the reference page; the focus
/// profile has tests of its own (`focus_*`).
fn opts(users: usize) -> FakeOptions {
    FakeOptions {
        users,
        profile: FakeProfile::Seed,
        ..FakeOptions::default()
    }
}

async fn start(opts: FakeOptions) -> FakeServer {
    let addr: SocketAddr = ANY_PORT.parse().expect("literal address");
    FakeServer::start(opts, addr).await.expect("fake starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }
}

enum Auth {
    Token,
    Login,
    Bearer,
    None,
    Raw(&'static str),
}

async fn call(
    server: &FakeServer,
    method: reqwest::Method,
    path_and_query: &str,
    auth: Auth,
    body: Option<&str>,
) -> Answer {
    let url = format!("{}{}", server.base_url(), path_and_query);
    let mut req = client().request(method, url);
    req = match auth {
        Auth::Token => req.basic_auth("demo-token", Some("api_token")),
        Auth::Login => req.basic_auth("demo@example.com", Some("demo-password")),
        Auth::Bearer => req.bearer_auth("demo-token"),
        Auth::None => req,
        Auth::Raw(v) => req.header("authorization", v),
    };
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body read");
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(server: &FakeServer, path_and_query: &str) -> Answer {
    call(
        server,
        reqwest::Method::GET,
        path_and_query,
        Auth::Token,
        None,
    )
    .await
}

const USERS: &str = "/organizations/1001/users";
const TEAMS: &str = "/organizations/1001/teams?workspace_id=2001";
const ROLES: &str = "/organizations/1001/roles";
const MY_GROUPS: &str = "/organizations/1001/groups/me";
const GROUPS: &str = "/organizations/1001/groups";

/// The ids of the `list` (`items` or `data`) that a GET answers with.
async fn list_ids(server: &FakeServer, path_and_query: &str, list: &str) -> Vec<i64> {
    ids(&get(server, path_and_query).await.json(), list)
}

fn ids(v: &Value, list: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Every record has every field, and there is at least one record (so the check bites).
fn assert_fields<'a>(records: impl IntoIterator<Item = &'a Value>, fields: &[&str], what: &str) {
    let mut seen = 0;
    for r in records {
        seen += 1;
        let obj = r
            .as_object()
            .unwrap_or_else(|| panic!("{what}: not an object: {r}"));
        for f in fields {
            assert!(obj.contains_key(*f), "{what}: field {f:?} missing in {r}");
        }
    }
    assert!(seen > 0, "{what}: no record to check");
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The records at `path` below `v`: `key` steps into a field (a null one is no record),
/// `key[]` into each element of a list (`[]` of `v` itself, a bare array); `""` is `v` itself.
fn records<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut at = vec![v];
    for step in path.split('.').filter(|s| !s.is_empty()) {
        at = match step.strip_suffix("[]") {
            Some("") => at.into_iter().flat_map(arr).collect(),
            Some(list) => at.into_iter().flat_map(|v| arr(&v[list])).collect(),
            None => at
                .into_iter()
                .map(|v| &v[step])
                .filter(|v| !v.is_null())
                .collect(),
        };
    }
    at
}
