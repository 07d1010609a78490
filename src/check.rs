//! `orgmirror check`: is everything in place for a sync? The config is valid, the
//! database can be written, the credentials are there and accepted, the organization is
//! readable, the groups can be listed through `api.workspace_id`. Each kind of problem gets
//! its own message (config and credential problems, and credentials or ids the API refuses,
//! exit 2; the others 1); nothing is written anywhere.

use std::fs::OpenOptions;
use std::path::Path;

use crate::api::{ApiError, Client};
use crate::commands::{load_config, CommandError, Exit};
use crate::config::{Config, Credentials, Seconds};

/// The attempts per request `check` allows itself at most: it should answer in seconds,
/// not wait out a long retry budget against a host that is down.
pub const CHECK_MAX_ATTEMPTS: u32 = 2;

/// `orgmirror check`.
pub async fn run(config_path: Option<&Path>) -> Result<Exit, CommandError> {
    let (path, config) = load_config(config_path).map_err(|e| CommandError {
        exit: e.exit,
        message: format!("check failed: the config is not valid: {}", e.message),
    })?;
    crate::outln!("ok: config {} is valid", path.display());

    check_database(&config)?;
    check_integrity(&config)?;

    let credentials = Credentials::from_env().map_err(|e| CommandError {
        exit: Exit::Config,
        message: format!("check failed: credentials: {e}"),
    })?;
    crate::outln!("ok: credentials found");
    if !config.alert.is_empty() {
        let http = crate::alerts::deliver::http_client()?;
        for rule in &config.alert {
            crate::alerts::deliver::Target::new(rule, http.clone()).map_err(|e| CommandError {
                exit: Exit::Config,
                message: format!("check failed: {e}"),
            })?;
        }
        crate::outln!(
            "ok: {} alert rules, their secrets found (`orgmirror alerts test NAME` sends a sample)",
            config.alert.len()
        );
    }

    let mut api = config.api.clone();
    api.max_attempts = api.max_attempts.min(CHECK_MAX_ATTEMPTS);
    api.max_retry_time = Seconds(api.max_retry_time.0.min(10.0));
    let base_url = api.base_url.clone();
    let client = Client::new(&api, &credentials)
        .map_err(|e| api_problem(&base_url, config.api.organization_id, e))?;
    client.start_run();

    let groups = client
        .my_groups()
        .await
        .map_err(|e| api_problem(&base_url, config.api.organization_id, e))?;
    crate::outln!(
        "ok: {base_url} accepted the credentials (the user is in {} groups)",
        groups.len()
    );
    let roles = client
        .roles()
        .await
        .map_err(|e| api_problem(&base_url, config.api.organization_id, e))?;
    crate::outln!(
        "ok: organization {} is readable ({} roles)",
        config.api.organization_id,
        roles.len()
    );
    let total = client.teams_probe().await.map_err(|e| {
        let mut problem = api_problem(&base_url, config.api.organization_id, e);
        problem.message = format!(
            "{} (the groups are listed through api.workspace_id = {}: is it a workspace of the organization this user may see?)",
            problem.message, config.api.workspace_id
        );
        problem
    })?;
    crate::outln!(
        "ok: the groups are listed through workspace {}{}",
        config.api.workspace_id,
        total.map(|t| format!(" ({t} groups)")).unwrap_or_default()
    );
    print_quota(&client);
    crate::outln!("all good");
    Ok(Exit::Ok)
}

/// The database file (or, before the first run, its directory) must be writable.
fn check_database(config: &Config) -> Result<(), CommandError> {
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
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            crate::store::Store::open_read_only(path).map_err(|e| problem(e.to_string()))?;
        }
        crate::outln!("ok: database {} is writable", path.display());
        return Ok(());
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
    crate::outln!(
        "ok: database directory {} is writable ({} will be created by the first run)",
        dir.display(),
        path.display()
    );
    Ok(())
}

/// SQLite's full `integrity_check` of an existing mirror: every b-tree, and every index
/// against its table. Damage is a person's to repair (exit 2), and the message says how.
fn check_integrity(config: &Config) -> Result<(), CommandError> {
    let path = &config.database.path;
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let damaged = |problems: String| CommandError {
        exit: Exit::Config,
        message: format!(
            "check failed: database {} is damaged: {problems}; {}",
            path.display(),
            crate::store::RECOVERY
        ),
    };
    let store = crate::store::Store::open_read_only(path).map_err(|e| damaged(e.to_string()))?;
    let problems = store
        .integrity_problems(true)
        .map_err(|e| damaged(e.to_string()))?;
    if !problems.is_empty() {
        return Err(damaged(problems.join("; ")));
    }
    crate::outln!(
        "ok: database {} passes SQLite's integrity_check",
        path.display()
    );
    Ok(())
}

/// One distinct message per kind of API problem.
fn api_problem(base_url: &str, organization_id: i64, e: ApiError) -> CommandError {
    let message = match &e {
        ApiError::Auth { status, .. } => format!(
            "check failed: the API at {base_url} refused the credentials (HTTP {status}): check the \
             token (or e-mail and password) and that the user may see organization {organization_id}: {e}"
        ),
        ApiError::Transport { .. } | ApiError::Timeout { .. } | ApiError::GaveUp { .. } => {
            format!("check failed: cannot reach the API at {base_url} (check api.base_url, DNS, proxies and firewalls): {e}")
        }
        ApiError::Status { status: 404, .. } => format!(
            "check failed: the API at {base_url} does not know organization {organization_id} or this \
             endpoint (HTTP 404; check api.organization_id and api.base_url): {e}"
        ),
        ApiError::Redirect { .. } => {
            format!("check failed: the API at {base_url} redirects; set api.base_url to the final address: {e}")
        }
        ApiError::QuotaExhausted { .. } => {
            format!("check failed: the request quota is spent; try again after it resets: {e}")
        }
        _ => format!("check failed: the API at {base_url} did not give a usable answer: {e}"),
    };
    CommandError {
        exit: crate::commands::exit_for(&e),
        message,
    }
}

fn print_quota(client: &Client) {
    match client.stats().quota {
        Some(q) => {
            let remaining = q
                .remaining
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".to_string());
            let resets = q
                .resets_at_unix
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| format!(", resets at {}", crate::snapshot::format_utc(t)))
                .unwrap_or_default();
            crate::outln!("quota: {remaining} requests left{resets}");
        }
        None => crate::outln!("quota: the API sent no quota headers"),
    }
}
