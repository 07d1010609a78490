//! The `orgmirror` command: parse arguments, call the command's module, print an error once
//! and exit with the status `exit::status` gives it. It lives in the library so that the
//! binary (`src/main.rs`) crosses the crate boundary through [`main`] alone and every module
//! stays private to the crate.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::{self, CommandError, Exit};
use crate::exit::{self, Error};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

/// Mirrors a Toggl Focus organization into SQLite and keeps the history of every change.
#[derive(Parser)]
#[command(name = "orgmirror", version, about)]
struct Cli {
    /// The config file (default: $ORGMIRROR_CONFIG, ./orgmirror.toml, /etc/orgmirror/orgmirror.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One complete pull, diff and commit, then exit.
    Sync {
        /// Accept a pull that would delete more than sync.max_delete_fraction of users or groups.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Also record every answer the API gives (never the credentials) into this new or
        /// empty directory, for a bug report or `fake-api --replay`.
        #[arg(long, value_name = "DIR")]
        capture: Option<PathBuf>,
    },
    /// The daemon: syncs on schedule.cron until SIGTERM/SIGINT (exit 0 after a clean stop;
    /// a second signal abandons a run in progress and exits 1).
    Run,
    /// Is the data current (the first line), then the last runs, what they changed, the quota
    /// seen, the database size, the next scheduled run.
    Status {
        /// One JSON document for scripts.
        #[arg(long, conflicts_with = "check")]
        json: bool,
        /// A monitoring probe: print only the verdict; exit 0 fresh, 1 failing or stale,
        /// 2 when the mirror cannot be read.
        #[arg(long)]
        check: bool,
    },
    /// A consistent, self-contained copy of the database for BI tools, written atomically.
    Export {
        /// Where to write the copy (optional with --csv).
        #[arg(long, value_name = "PATH", required_unless_present = "csv")]
        out: Option<PathBuf>,
        /// Also write one CSV file per contract view into this directory.
        #[arg(long, value_name = "DIR")]
        csv: Option<PathBuf>,
        /// Replace PATH (and the CSV files) if they exist.
        #[arg(long)]
        force: bool,
    },
    /// The organization as it stood at TIME, from the history: the six current views as
    /// tables of a self-contained SQLite file, written atomically.
    Asof {
        /// RFC 3339 (2026-03-01T09:00:00Z), a date (2026-03-01: its start in UTC), or a span
        /// back from now (7d, 12h, 2w).
        #[arg(value_parser = crate::clock::parse_moment)]
        time: DateTime<Utc>,
        /// Where to write the file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write one CSV file per table into this directory.
        #[arg(long, value_name = "DIR")]
        csv: Option<PathBuf>,
        /// Replace FILE (and the CSV files) if they exist.
        #[arg(long)]
        force: bool,
    },
    /// The change feed as sentences, grouped by run, newest last (paged on a terminal).
    Changes {
        /// From a span back from now (7d, 12h, 2w) or a time (RFC 3339, or a date).
        #[arg(long, value_name = "7d|TIME", value_parser = crate::clock::parse_moment)]
        since: Option<DateTime<Utc>>,
        /// Up to (not including) this time (RFC 3339, a date, or a span back from now).
        #[arg(long, value_name = "TIME", value_parser = crate::clock::parse_moment)]
        until: Option<DateTime<Utc>>,
        /// Only these entities: user, group, group_membership, user_rate, user_custom_field, role.
        #[arg(long, value_delimiter = ',', value_name = "ENTITY,...")]
        entity: Vec<String>,
        /// Only changes this person made, by the audit log (a part of their name, or their e-mail).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// One JSON object per event (with the resolved names) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Validates the config, reaches the API, confirms credentials and organization access,
    /// and reports how the API answers (at most eight requests).
    Check {
        /// One JSON document (the same report) for scripts and bug reports.
        #[arg(long)]
        json: bool,
    },
    /// The whole job end to end with no account: a built-in fake organization, two syncs, what changed.
    Demo {
        /// Where to write the demo database (replaced if it exists).
        #[arg(long, default_value = "orgmirror-demo.sqlite")]
        db: PathBuf,
        /// Users in the fake organization (10 to 1,000,000).
        #[arg(long, default_value_t = 200, value_parser = users_between::<{ crate::demo::MIN_USERS }>)]
        users: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Serve the built-in fake Focus API (for tests, demos and benchmarks).
    FakeApi {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Users in the fake organization (1 to 1,000,000).
        #[arg(long, default_value_t = 500, value_parser = users_between::<1>)]
        users: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The most rows the server returns per page, whatever per_page asks.
        #[arg(long, default_value_t = 200)]
        per_page_cap: usize,
        /// focus: as the real Focus API is reported to answer (Bearer toggl_sk_ keys, at most
        /// 100 per page, `data` envelopes, JSON errors); seed: exactly as the reference page shows.
        #[arg(long, default_value = "focus")]
        profile: orgmirror_fake::FakeProfile,
        /// The key (API key and token) expires after N requests, or Ns seconds: then 401
        /// "API key expired".
        #[arg(long, value_name = "N|Ns")]
        key_expires_after: Option<orgmirror_fake::KeyExpiry>,
        /// Features the organization's plan lacks (rates,working_hours,custom_fields):
        /// asking for one gets 402.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        plan_lacks: Vec<orgmirror_fake::PlanFeature>,
        /// The audit log endpoint: on (the log), off (404), forbidden (403: no
        /// view_audit_log), unavailable (503).
        #[arg(long, value_name = "MODE", default_value = "on")]
        audit_log: orgmirror_fake::AuditLogMode,
        /// A generated audit history before the fake starts: N events over 90 days, or N:Dd.
        #[arg(long, value_name = "N[:Dd]")]
        audit_backlog: Option<orgmirror_fake::AuditBacklog>,
        /// Serve a recording made by `sync --capture DIR` instead of a fake organization.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["users", "seed", "per_page_cap", "profile", "key_expires_after", "plan_lacks", "audit_log", "audit_backlog"])]
        replay: Option<PathBuf>,
    },
    /// Create, update or delete a group upstream (then refresh the mirror), or list your groups.
    #[command(subcommand)]
    Group(crate::groups::GroupCmd),
    /// Groups as code: plan, apply or export a TOML file of the organization's groups.
    #[command(subcommand)]
    Groups(crate::groups::file::GroupsCmd),
    /// Alert rules: send a sample event, or queue past events for a rule.
    #[command(subcommand)]
    Alerts(crate::alerts::AlertsCmd),
    /// Replicate the committed runs the PostgreSQL replica ([replica.postgres]) lacks.
    Replicate {
        /// Then compare every contract view between the mirror and the replica.
        #[arg(long)]
        verify: bool,
    },
    /// Forget one person's personal data everywhere the mirror holds it (their versions
    /// become tombstones: ids and intervals stay).
    Erase {
        /// Their organization_user_id.
        #[arg(long, value_name = "ID")]
        user: i64,
        /// Why (kept in the receipt; never their name or e-mail address).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Erase every version but the current one (for a person still in the organization).
        #[arg(long)]
        history_only: bool,
        /// Say what would change, by table, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs the command the arguments name and gives its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CommandError::Runtime(e).into()),
    };
    let config = cli.config.as_deref();
    let result: Result<Exit, Error> = runtime.block_on(async {
        Ok(match cli.command {
            Command::Sync {
                allow_mass_delete,
                capture,
            } => {
                commands::sync(config, allow_mass_delete, capture.as_deref(), exit::of_run).await?
            }
            Command::Run => crate::daemon::run(config, exit::of_run).await?,
            Command::Status { json, check } => crate::status::run(config, json, check)?,
            Command::Export { out, csv, force } => {
                crate::export::run(config, out.as_deref(), csv.as_deref(), force)?
            }
            Command::Asof {
                time,
                out,
                csv,
                force,
            } => crate::asof::run(config, time, &out, csv.as_deref(), force)?,
            Command::Changes {
                since,
                until,
                entity,
                actor,
                json,
            } => crate::changes::run(config, since, until, &entity, actor.as_deref(), json)?,
            Command::Check { json } => crate::check::run(config, json, exit::check).await?,
            Command::Group(cmd) => crate::groups::run(config, cmd).await?,
            Command::Groups(cmd) => crate::groups::file::run(config, cmd).await?,
            Command::Alerts(cmd) => {
                let (_, config) = commands::load_config(config)?;
                crate::alerts::cli::run(&config, cmd).await?;
                Exit::Ok
            }
            Command::Replicate { verify } => {
                let (_, config) = commands::load_config(config)?;
                crate::replica::run(&config, verify).await?;
                Exit::Ok
            }
            Command::Erase {
                user,
                reason,
                history_only,
                dry_run,
            } => {
                let args = crate::erase::EraseArgs {
                    user,
                    reason: &reason,
                    history_only,
                    dry_run,
                };
                crate::erase::run(config, &args).await?
            }
            Command::Demo { db, users, seed } => crate::demo::run(&db, users, seed).await?,
            Command::FakeApi {
                listen,
                replay: Some(dir),
                ..
            } => {
                let recording =
                    crate::api::replay::Recording::read(&dir).map_err(CommandError::Replay)?;
                crate::api::replay::serve_cli(listen, recording)
                    .await
                    .map_err(|e| CommandError::FakeApi(e.into()))?;
                Exit::Ok
            }
            Command::FakeApi {
                listen,
                users,
                seed,
                per_page_cap,
                profile,
                key_expires_after,
                plan_lacks,
                audit_log,
                audit_backlog,
                replay: None,
            } => {
                let opts = orgmirror_fake::FakeOptions {
                    users,
                    seed,
                    per_page_cap,
                    profile,
                    key_expires_after,
                    plan_lacks,
                    audit_log,
                    audit_backlog,
                    ..Default::default()
                };
                orgmirror_fake::serve_cli(listen, opts)
                    .await
                    .map_err(|e| CommandError::FakeApi(e.into()))?;
                Exit::Ok
            }
        })
    });
    match result {
        Ok(exit) => exit.into(),
        Err(e) => fail(&e),
    }
}

/// The one place an error is printed (once) and given its exit status.
fn fail(e: &Error) -> ExitCode {
    crate::errln!("orgmirror: {e}");
    exit::status(e).into()
}

/// Why `--users` is not a number of fake users.
#[derive(Debug, thiserror::Error)]
enum UsersError {
    #[error("`{0}` is not a number of users")]
    NotANumber(String),
    #[error("{n} users: give {min} to {max}")]
    OutOfRange { n: usize, min: usize, max: usize },
}

/// A number of fake users from `MIN` to [`orgmirror_fake::MAX_USERS`] (more would not fit
/// in memory: the fake holds its organization whole).
fn users_between<const MIN: usize>(text: &str) -> Result<usize, UsersError> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| UsersError::NotANumber(text.to_string()))?;
    let max = orgmirror_fake::MAX_USERS;
    if (MIN..=max).contains(&n) {
        Ok(n)
    } else {
        Err(UsersError::OutOfRange { n, min: MIN, max })
    }
}
