//! `orgmirror check`: is everything in place for a sync, and how does this API answer?
//! The config is valid, the database can be written, the credentials are there and
//! accepted, the organization is readable, the users list answers as a sync asks it (so
//! the plan includes the rates and working hours asked for: its 402 is a verdict naming the
//! setting), the groups can be listed through `api.workspace_id`, and one user asked for by
//! id shows which form of the id filter the API honours; then a compatibility report
//! ([`compat`]) of what the answers showed, and whether the audit log answers (a refusal is
//! a note, not a failure). At most eight requests (the id filter's second only when the
//! published form is ignored, the users page's second only when its size is refused),
//! nothing written.
//!
//! Each wrong value gets one verdict, from the step that proves it: a refused credential at
//! the first request, a workspace refused once the organization has answered. Config and
//! credential problems, and what the API refuses, exit 2; the others 1.

pub mod compat;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::alerts::AlertsError;
use crate::api::capture::Recorder;
use crate::api::probe::PagedList;
use crate::api::{ApiError, ByIds, Client, IdFilter};
use crate::commands::{load_config, CommandError, Exit};
use crate::config::{Config, ConfigError, Credentials, Seconds};
use crate::store::StoreError;

/// Attempts per request: one. `check` answers in seconds and spends at most seven
/// requests; a server that is down is reported, not waited for.
pub const CHECK_MAX_ATTEMPTS: u32 = 1;

/// The one problem `check` found, from the step that proves it (each message begins
/// `check failed:`). Config, credential and database problems, and what the API refuses,
/// are a person's to fix; a server that cannot be reached or a spent quota may pass.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A layer's error outside the checks' own verdicts (an alert rule that cannot be
    /// delivered, say).
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("check failed: the config is not valid: {0}")]
    Config(#[source] ConfigError),
    #[error("check failed: credentials: {0}")]
    Credentials(#[source] ConfigError),
    /// An alert rule's secret is missing.
    #[error("check failed: {0}")]
    AlertSecret(#[source] ConfigError),
    /// The client cannot be built from the config.
    #[error("check failed: {0}")]
    Client(#[source] ApiError),
    #[error("check failed: database: {} (the writer lock) is not a file", .lock.display())]
    LockNotAFile { lock: PathBuf },
    #[error("check failed: database: {} is not writable: {source}", .path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file at `database.path` that cannot be opened as a mirror.
    #[error("check failed: database: {0}")]
    NotAMirror(#[source] StoreError),
    #[error("check failed: database: the directory {} of database.path does not exist", .dir.display())]
    NoDirectory { dir: PathBuf },
    #[error(
        "check failed: database: cannot create files in {} (database.path's directory): {source}",
        .dir.display()
    )]
    DirectoryNotWritable {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// SQLite's `integrity_check` found damage (or could not run).
    #[error("check failed: database {} is damaged: {}; {}", .path.display(), .problems.join("; "), crate::store::RECOVERY)]
    Damaged {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// 401: the server's reason says what to do (an expired key: make one).
    #[error("check failed: the API at {base_url} refused the credentials: {error}")]
    CredentialsRefused {
        base_url: String,
        error: Box<ApiError>,
    },
    #[error(
        "check failed: the API at {base_url} refused the credentials for organization {organization} \
         (HTTP {status}): check the {credential}, api.organization_id (the web app shows it) and \
         that the user may see that organization{}",
        said(.body)
    )]
    OrganizationRefused {
        base_url: String,
        organization: i64,
        status: u16,
        credential: &'static str,
        body: String,
    },
    #[error(
        "check failed: the credentials were accepted, but their user may not read organization \
         {organization}'s roles (HTTP {status}): orgmirror needs a user who may administer the \
         organization{}",
        said(.body)
    )]
    RolesRefused {
        organization: i64,
        status: u16,
        body: String,
    },
    #[error(
        "check failed: api.workspace_id = {workspace}: the API refused to list the groups through \
         it (HTTP {status}): give a workspace of organization {organization} that this user may \
         see (the web app shows its id){}{}",
        said(.body),
        .users_workspaces.as_deref().map(|w| format!("; the users' workspaces are {w}")).unwrap_or_default()
    )]
    WorkspaceRefused {
        workspace: i64,
        organization: i64,
        status: u16,
        body: String,
        /// The workspaces the users list showed (`2001 Main, 2002 Other`).
        users_workspaces: Option<String>,
    },
    #[error(
        "check failed: the credentials were accepted, but their user may not list organization \
         {organization}'s users (HTTP {status}){}",
        said(.body)
    )]
    UsersRefused {
        organization: i64,
        status: u16,
        body: String,
    },
    #[error(
        "check failed: the API at {base_url} does not know organization {organization} (HTTP \
         404): check api.organization_id, and that api.base_url ends in /api{}",
        said(.body)
    )]
    UnknownOrganization {
        base_url: String,
        organization: i64,
        body: String,
    },
    #[error("check failed: the API at {base_url} redirects; set api.base_url to the final address: {error}")]
    Redirects {
        base_url: String,
        error: Box<ApiError>,
    },
    #[error("check failed: the API at {base_url} answered 402, not the quota: {error}")]
    PlanLacks {
        base_url: String,
        error: Box<ApiError>,
    },
    #[error(
        "check failed: cannot reach the API at {base_url} (check api.base_url, DNS, proxies and \
         firewalls): {error}"
    )]
    Unreachable {
        base_url: String,
        error: Box<ApiError>,
    },
    #[error("check failed: the request quota is spent; it resets in {} s: try again then", .resets_in.as_secs())]
    QuotaSpent { resets_in: std::time::Duration },
    #[error("check failed: the API at {base_url} did not give a usable answer: {error}")]
    Unusable {
        base_url: String,
        error: Box<ApiError>,
    },
}

crate::commands::from_layers!(CheckError: crate::alerts::AlertsError);

/// The exit status of a check's error, for `check --json` (`exit`'s mapping, which this
/// module cannot name: `main` hands it over).
pub type ExitStatusOf = fn(&CheckError) -> Exit;

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
pub async fn run(
    config_path: Option<&Path>,
    json: bool,
    exit_status: ExitStatusOf,
) -> Result<Exit, CheckError> {
    let mut progress = Progress {
        json,
        passed: Vec::new(),
    };
    let mut compatibility = None;
    let outcome = checks(config_path, &mut progress, &mut compatibility).await;
    if json {
        let (verdict, exit) = match &outcome {
            Ok(()) => ("all good".to_string(), Exit::Ok),
            Err(e) => (e.to_string(), exit_status(e)),
        };
        let report = Report {
            ok: outcome.is_ok(),
            verdict,
            exit: exit as u8,
            passed: std::mem::take(&mut progress.passed),
            compatibility,
        };
        let text = serde_json::to_string_pretty(&report).map_err(|source| CommandError::Json {
            what: "the check report",
            source,
        })?;
        crate::outln!("{text}");
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
) -> Result<(), CheckError> {
    let (path, config) = load_config(config_path).map_err(CheckError::Config)?;
    progress.ok(format!("config {} is valid", path.display()));

    let (database, page_sizes) = check_database(&config)?;
    progress.ok(database);
    if let Some(line) = check_integrity(&config)? {
        progress.ok(line);
    }

    let credentials = Credentials::load(&config.api).map_err(CheckError::Credentials)?;
    let credential = match credentials {
        Credentials::Token(_) => "API token",
        Credentials::Login { .. } => "e-mail and password",
    };
    let scheme = credentials.sent_as(config.api.auth_scheme).to_string();
    progress.ok(format!(
        "credentials found ({credential}, sent as {scheme})"
    ));
    let rules = crate::alerts::deliver::find_secrets(&config).map_err(|e| match e {
        AlertsError::Config(e) => CheckError::AlertSecret(e),
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
    let mut client = Client::new(&api, &credentials).map_err(CheckError::Client)?;
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
) -> Result<(), CheckError> {
    let groups = client
        .my_groups()
        .await
        .map_err(|e| verdict(Step::Credentials, ctx, e, None))?;
    progress.ok(format!(
        "{} accepted the credentials (the user is in {} groups)",
        ctx.base_url,
        groups.len()
    ));
    let roles = client
        .roles()
        .await
        .map_err(|e| verdict(Step::Organization, ctx, e, None))?;
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
        .map_err(|e| verdict(Step::Users, ctx, e, None))?;
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
    let users_workspaces = (!workspaces.is_empty()).then_some(workspaces.as_str());
    let teams = client
        .first_page(PagedList::Teams)
        .await
        .map_err(|e| verdict(Step::Workspace, ctx, e, users_workspaces))?;
    progress.ok(format!(
        "the groups are listed through workspace {} ({} on the first page)",
        ctx.workspace_id, teams.rows
    ));
    if let Some(line) = plan_line(config) {
        progress.ok(line);
    }
    if let Some(id) = users.first_id {
        let read = client
            .users_by_ids(&[id], false, false)
            .await
            .map_err(|e| verdict(Step::Users, ctx, e, None))?;
        progress.ok(id_filter_line(&read, client.filter_form("users")));
    }
    if config.sync.audit_log {
        progress.ok(audit_line(client).await);
    }
    Ok(())
}

/// Whether the audit log answers (the last five minutes of it). A refusal is no failed
/// check: runs go on without who made each change, and this line says why.
async fn audit_line(client: &Client) -> String {
    let now = chrono::Utc::now();
    match client
        .audit_page(now - chrono::Duration::minutes(5), now, 1)
        .await
    {
        Ok(page) => format!(
            "the audit log is readable ({} events in the last 5 minutes)",
            page.received
        ),
        Err(ApiError::Auth { status: 403, .. }) => "note: the audit log is refused (HTTP 403): the API key's user lacks the view_audit_log permission on the organization, so runs record changes without who made them; grant it, or set sync.audit_log = false".to_string(),
        Err(ApiError::Status { status: 404, .. }) => "note: the API has no audit log for this organization (HTTP 404): runs record changes without who made them; set sync.audit_log = false to stop asking".to_string(),
        Err(e) => format!("note: the audit log did not answer ({e}); runs go on without it and ask again"),
    }
}

/// What the users page, asked as a sync asks it, showed of the plan.
fn plan_line(config: &Config) -> Option<String> {
    let asked: Vec<&str> = [
        (config.sync.include_rates, "rates"),
        (config.sync.include_working_hours, "working hours"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    (!asked.is_empty()).then(|| {
        format!(
            "the organization's plan includes the {} a sync asks for",
            asked.join(" and ")
        )
    })
}

/// Which form of the id filter the API honours, as one user asked for by id showed.
fn id_filter_line(
    read: &ByIds<crate::api::models::OrganizationUser>,
    form: Option<IdFilter>,
) -> String {
    match (read, form) {
        (ByIds::Unfiltered, _) | (_, Some(IdFilter::Neither)) => {
            "the API honours the id filter in neither form (org_user_ids=1,2 nor org_user_ids[]=1): \
             a user or group missing from a complete pull is confirmed gone by the next one, one run later"
                .to_string()
        }
        (_, Some(IdFilter::Brackets)) => {
            "users are asked for by id as org_user_ids[]=1&org_user_ids[]=2 (the reference page's form; \
             the published org_user_ids=1,2 is ignored): a sync asks the other form once, then remembers"
                .to_string()
        }
        _ => "users are asked for by id as org_user_ids=1,2 (the published form): a departure is \
              confirmed in the run that misses it"
            .to_string(),
    }
}

/// The one verdict for a failed request at `step` (`users_workspaces`: what the users
/// list showed, for a workspace refused).
fn verdict(
    step: Step,
    ctx: &Context<'_>,
    e: ApiError,
    users_workspaces: Option<&str>,
) -> CheckError {
    let base_url = ctx.base_url.to_string();
    let organization = ctx.organization_id;
    match (&e, step) {
        (ApiError::Auth { status: 401, .. }, _) => CheckError::CredentialsRefused {
            base_url,
            error: Box::new(e),
        },
        (ApiError::Auth { status, body, .. }, Step::Credentials) => {
            CheckError::OrganizationRefused {
                base_url,
                organization,
                status: *status,
                credential: ctx.credential,
                body: body.clone(),
            }
        }
        (ApiError::Auth { status, body, .. }, Step::Organization) => CheckError::RolesRefused {
            organization,
            status: *status,
            body: body.clone(),
        },
        (ApiError::Auth { status, body, .. }, Step::Workspace)
        | (
            ApiError::Status {
                status: status @ 404,
                body,
                ..
            },
            Step::Workspace,
        ) => CheckError::WorkspaceRefused {
            workspace: ctx.workspace_id,
            organization,
            status: *status,
            body: body.clone(),
            users_workspaces: users_workspaces.map(str::to_string),
        },
        (ApiError::Auth { status, body, .. }, Step::Users) => CheckError::UsersRefused {
            organization,
            status: *status,
            body: body.clone(),
        },
        (
            ApiError::Status {
                status: 404, body, ..
            },
            _,
        ) => CheckError::UnknownOrganization {
            base_url,
            organization,
            body: body.clone(),
        },
        (ApiError::Redirect { .. }, _) => CheckError::Redirects {
            base_url,
            error: Box::new(e),
        },
        (ApiError::Transport { .. } | ApiError::Timeout { .. } | ApiError::GaveUp { .. }, _) => {
            CheckError::Unreachable {
                base_url,
                error: Box::new(e),
            }
        }
        (ApiError::PlanLacks { .. }, _) => CheckError::PlanLacks {
            base_url,
            error: Box::new(e),
        },
        (ApiError::QuotaExhausted { resets_in, .. }, _) => CheckError::QuotaSpent {
            resets_in: *resets_in,
        },
        _ => CheckError::Unusable {
            base_url,
            error: Box::new(e),
        },
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
fn check_database(config: &Config) -> Result<(String, Vec<(String, u32)>), CheckError> {
    let path = &config.database.path;
    let lock = crate::store::lock_path(path);
    if lock.exists() && !lock.is_file() {
        return Err(CheckError::LockNotAFile { lock });
    }
    if path.exists() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| CheckError::NotWritable {
                path: path.clone(),
                source,
            })?;
        // An empty file is a mirror to be; anything else must be one.
        let mut page_sizes = Vec::new();
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            let store =
                crate::store::Store::open_read_only(path).map_err(CheckError::NotAMirror)?;
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
        return Err(CheckError::NoDirectory { dir });
    }
    if let Err(source) = tempfile::tempfile_in(&dir) {
        return Err(CheckError::DirectoryNotWritable { dir, source });
    }
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
fn check_integrity(config: &Config) -> Result<Option<String>, CheckError> {
    let path = &config.database.path;
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(None);
    }
    let damaged = |problems: Vec<String>| CheckError::Damaged {
        path: path.clone(),
        problems,
    };
    let store =
        crate::store::Store::open_read_only(path).map_err(|e| damaged(vec![e.to_string()]))?;
    let problems = store
        .integrity_problems(true)
        .map_err(|e| damaged(vec![e.to_string()]))?;
    if !problems.is_empty() {
        return Err(damaged(problems));
    }
    Ok(Some(format!(
        "database {} passes SQLite's integrity_check",
        path.display()
    )))
}
