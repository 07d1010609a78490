//! `orgmirror check`: is everything in place for a sync, and how does this API answer?
//! The config is valid, the database can be written, the credentials are there and
//! accepted, the organization is readable, the groups can be listed through
//! `api.workspace_id` and the users list answers; then a compatibility report
//! ([`compat`]) of what the answers showed. At most five requests, nothing written.
//!
//! Each wrong value gets one verdict, from the step that proves it: a refused credential at
//! the first request, a workspace refused once the organization has answered. Config and
//! credential problems, and what the API refuses, exit 2; the others 1.

pub mod compat;

use std::fs::OpenOptions;
use std::path::Path;

use serde::Serialize;

use crate::alerts::AlertsError;
use crate::api::capture::Recorder;
use crate::api::probe::PagedList;
use crate::api::{ApiError, Client};
use crate::commands::{load_config, CommandError, Exit};
use crate::config::{Config, Credentials, Seconds};

/// Attempts per request: one. `check` answers in seconds and spends at most five
/// requests; a server that is down is reported, not waited for.
pub const CHECK_MAX_ATTEMPTS: u32 = 1;

/// What `check --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    /// `all good`, or the one problem found.
    verdict: String,
    exit: u8,
    /// The checks that passed, in order.
    passed: Vec<String>,
    /// Present once a request was answered.
    compatibility: Option<compat::Compatibility>,
}

/// Prints each passed check as it passes (text), or keeps it for the JSON document.
struct Progress {
    json: bool,
    passed: Vec<String>,
}

impl Progress {
    fn ok(&mut self, line: String) {
        if !self.json {
            crate::outln!("ok: {line}");
        }
        self.passed.push(line);
    }
}

/// `orgmirror check [--json]`.
pub async fn run(config_path: Option<&Path>, json: bool) -> Result<Exit, CommandError> {
    let mut progress = Progress {
        json,
        passed: Vec::new(),
    };
    let mut compatibility = None;
    let outcome = checks(config_path, &mut progress, &mut compatibility).await;
    if json {
        let (verdict, exit) = match &outcome {
            Ok(()) => ("all good".to_string(), Exit::Ok),
            Err(e) => (e.to_string(), crate::exit::command(e)),
        };
        let report = Report {
            ok: outcome.is_ok(),
            verdict,
            exit: exit as u8,
            passed: std::mem::take(&mut progress.passed),
            compatibility,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => crate::outln!("{text}"),
            Err(e) => {
                return Err(CommandError::failed(format!(
                    "check: cannot write JSON: {e}"
                )))
            }
        }
    } else if let (Ok(()), Some(report)) = (&outcome, &compatibility) {
        crate::outln!();
        for line in report.lines() {
            crate::outln!("{line}");
        }
        crate::outln!("all good");
    }
    outcome.map(|()| Exit::Ok)
}

async fn checks(
    config_path: Option<&Path>,
    progress: &mut Progress,
    compatibility: &mut Option<compat::Compatibility>,
) -> Result<(), CommandError> {
    let (path, config) = load_config(config_path)
        .map_err(|e| CommandError::usage(format!("check failed: the config is not valid: {e}")))?;
    progress.ok(format!("config {} is valid", path.display()));

    let (database, page_sizes) = check_database(&config)?;
    progress.ok(database);
    if let Some(line) = check_integrity(&config)? {
        progress.ok(line);
    }

    let credentials = Credentials::load(&config.api)
        .map_err(|e| CommandError::usage(format!("check failed: credentials: {e}")))?;
    let credential = match credentials {
        Credentials::Token(_) => "API token",
        Credentials::Login { .. } => "e-mail and password",
    };
    let scheme = credentials.sent_as(config.api.auth_scheme).to_string();
    progress.ok(format!(
        "credentials found ({credential}, sent as {scheme})"
    ));
    let rules = crate::alerts::deliver::find_secrets(&config).map_err(|e| match e {
        AlertsError::Config(e) => CommandError::usage(format!("check failed: {e}")),
        e => e.into(),
    })?;
    if rules > 0 {
        progress.ok(format!(
            "{rules} alert rules, their secrets found (`orgmirror alerts test NAME` sends a sample)"
        ));
    }

    let mut api = config.api.clone();
    api.max_attempts = api.max_attempts.min(CHECK_MAX_ATTEMPTS);
    api.max_retry_time = Seconds(api.max_retry_time.0.min(10.0));
    // A spent quota is reported, not waited out (its window may be an hour).
    api.max_quota_wait = Seconds(0.0);
    let mut client = Client::new(&api, &credentials)
        .map_err(|e| CommandError::usage(format!("check failed: {e}")))?;
    let recorder = Recorder::in_memory();
    client.record_with(recorder.clone());
    // The report says which sizes were refused; check remembers none of them.
    client.reports_page_sizes_itself();
    client.start_run();
    // A size the API refused before is not asked again, as a sync would not.
    for (list, size) in &page_sizes {
        client.remember_page_size(list, *size);
    }
    let ctx = Context {
        base_url: &api.base_url,
        organization_id: config.api.organization_id,
        workspace_id: config.api.workspace_id,
        credential,
    };

    let result = api_checks(&client, &config, &ctx, progress).await;
    let exchanges = recorder.exchanges();
    if !exchanges.is_empty() {
        *compatibility = Some(compat::analyse(
            &exchanges,
            &scheme,
            credential,
            config.api.per_page,
        ));
    }
    result
}

/// What a verdict names.
struct Context<'a> {
    base_url: &'a str,
    organization_id: i64,
    workspace_id: i64,
    credential: &'static str,
}

/// The step a request proves, which decides what a refusal means.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The first request: are the credentials accepted, is the organization there?
    Credentials,
    /// The roles: may this user read the organization?
    Organization,
    /// The teams list: is `api.workspace_id` a workspace the user may list groups through?
    Workspace,
    /// The users list.
    Users,
}

async fn api_checks(
    client: &Client,
    config: &Config,
    ctx: &Context<'_>,
    progress: &mut Progress,
) -> Result<(), CommandError> {
    let groups = client
        .my_groups()
        .await
        .map_err(|e| verdict(Step::Credentials, ctx, e))?;
    progress.ok(format!(
        "{} accepted the credentials (the user is in {} groups)",
        ctx.base_url,
        groups.len()
    ));
    let roles = client
        .roles()
        .await
        .map_err(|e| verdict(Step::Organization, ctx, e))?;
    progress.ok(format!(
        "organization {} is readable ({} roles)",
        ctx.organization_id,
        roles.len()
    ));
    let users = client
        .first_page(PagedList::Users {
            include_rates: config.sync.include_rates,
            include_working_hours: config.sync.include_working_hours,
        })
        .await
        .map_err(|e| verdict(Step::Users, ctx, e))?;
    let workspaces = users
        .workspaces
        .iter()
        .map(|(id, name)| format!("{id} {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    progress.ok(format!(
        "the users are listed ({} on the first page; their workspaces: {})",
        users.rows,
        if workspaces.is_empty() {
            "none"
        } else {
            &workspaces
        }
    ));
    // The page size is the API's, not a list's: what the users list accepted is asked of
    // the teams at once, so that a refused size costs one request, not two.
    for (_, size) in client.page_sizes() {
        client.remember_page_size("teams", size);
    }
    let teams = client.first_page(PagedList::Teams).await.map_err(|e| {
        let mut problem = verdict(Step::Workspace, ctx, e);
        if let (CommandError::Usage(message), false) = (&mut problem, workspaces.is_empty()) {
            *message = format!("{message}; the users' workspaces are {workspaces}");
        }
        problem
    })?;
    progress.ok(format!(
        "the groups are listed through workspace {} ({} on the first page)",
        ctx.workspace_id, teams.rows
    ));
    Ok(())
}

/// The one verdict for a failed request at `step`.
fn verdict(step: Step, ctx: &Context<'_>, e: ApiError) -> CommandError {
    let base_url = ctx.base_url;
    let org = ctx.organization_id;
    let config = |message: String| CommandError::usage(format!("check failed: {message}"));
    let failed = |message: String| CommandError::failed(format!("check failed: {message}"));
    match (&e, step) {
        // The refusal names the server's reason and what to do (an expired key: make one).
        (ApiError::Auth { status: 401, .. }, _) => config(format!(
            "the API at {base_url} refused the credentials: {e}"
        )),
        (ApiError::Auth { status, body, .. }, Step::Credentials) => config(format!(
            "the API at {base_url} refused the credentials for organization {org} (HTTP {status}): \
             check the {}, api.organization_id (the web app shows it) and that the user may see \
             that organization{}",
            ctx.credential,
            said(body)
        )),
        (ApiError::Auth { status, body, .. }, Step::Organization) => config(format!(
            "the credentials were accepted, but their user may not read organization {org}'s \
             roles (HTTP {status}): orgmirror needs a user who may administer the organization{}",
            said(body)
        )),
        (ApiError::Auth { status, body, .. }, Step::Workspace)
        | (
            ApiError::Status {
                status: status @ 404,
                body,
                ..
            },
            Step::Workspace,
        ) => config(format!(
            "api.workspace_id = {}: the API refused to list the groups through it (HTTP {status}): \
             give a workspace of organization {org} that this user may see (the web app shows \
             its id){}",
            ctx.workspace_id,
            said(body)
        )),
        (ApiError::Auth { status, body, .. }, Step::Users) => config(format!(
            "the credentials were accepted, but their user may not list organization {org}'s \
             users (HTTP {status}){}",
            said(body)
        )),
        (
            ApiError::Status {
                status: 404, body, ..
            },
            _,
        ) => config(format!(
            "the API at {base_url} does not know organization {org} (HTTP 404): check \
             api.organization_id, and that api.base_url ends in /api{}",
            said(body)
        )),
        (ApiError::Redirect { .. }, _) => config(format!(
            "the API at {base_url} redirects; set api.base_url to the final address: {e}"
        )),
        (ApiError::Transport { .. } | ApiError::Timeout { .. } | ApiError::GaveUp { .. }, _) => {
            failed(format!(
                "cannot reach the API at {base_url} (check api.base_url, DNS, proxies and \
                 firewalls): {e}"
            ))
        }
        (ApiError::QuotaExhausted { resets_in, .. }, _) => failed(format!(
            "the request quota is spent; it resets in {} s: try again then",
            resets_in.as_secs()
        )),
        _ => failed(format!(
            "the API at {base_url} did not give a usable answer: {e}"
        )),
    }
}

/// `: <what the server said>`, when it said something.
fn said(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(" (the server said: {body})")
    }
}

/// The database file (or, before the first run, its directory) must be writable.
/// With the page sizes an existing mirror remembers the API to have accepted.
fn check_database(config: &Config) -> Result<(String, Vec<(String, u32)>), CommandError> {
    let path = &config.database.path;
    let problem =
        |message: String| CommandError::failed(format!("check failed: database: {message}"));
    let lock = crate::store::lock_path(path);
    if lock.exists() && !lock.is_file() {
        return Err(problem(format!(
            "{} (the writer lock) is not a file",
            lock.display()
        )));
    }
    if path.exists() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| problem(format!("{} is not writable: {e}", path.display())))?;
        // An empty file is a mirror to be; anything else must be one.
        let mut page_sizes = Vec::new();
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            let store =
                crate::store::Store::open_read_only(path).map_err(|e| problem(e.to_string()))?;
            // A mirror from before page sizes were remembered has none to give.
            page_sizes = store.page_sizes().unwrap_or_default();
        }
        return Ok((
            format!("database {} is writable", path.display()),
            page_sizes,
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(problem(format!(
            "the directory {} of database.path does not exist",
            dir.display()
        )));
    }
    tempfile::tempfile_in(&dir).map_err(|e| {
        problem(format!(
            "cannot create files in {} (database.path's directory): {e}",
            dir.display()
        ))
    })?;
    Ok((
        format!(
            "database directory {} is writable ({} will be created by the first run)",
            dir.display(),
            path.display()
        ),
        Vec::new(),
    ))
}

/// SQLite's full `integrity_check` of an existing mirror: every b-tree, and every index
/// against its table. Damage is a person's to repair (exit 2), and the message says how.
/// The line to report when there is a mirror and it passes.
fn check_integrity(config: &Config) -> Result<Option<String>, CommandError> {
    let path = &config.database.path;
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(None);
    }
    let damaged = |problems: String| {
        CommandError::usage(format!(
            "check failed: database {} is damaged: {problems}; {}",
            path.display(),
            crate::store::RECOVERY
        ))
    };
    let store = crate::store::Store::open_read_only(path).map_err(|e| damaged(e.to_string()))?;
    let problems = store
        .integrity_problems(true)
        .map_err(|e| damaged(e.to_string()))?;
    if !problems.is_empty() {
        return Err(damaged(problems.join("; ")));
    }
    Ok(Some(format!(
        "database {} passes SQLite's integrity_check",
        path.display()
    )))
}
