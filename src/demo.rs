//! `orgmirror demo`: the whole job with no account. Starts the built-in fake
//! organization, syncs into a fresh database, changes the organization the way real
//! ones change, syncs again, and shows what the mirror recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::api::Client;
use crate::commands::{print_report, CommandError, Exit};
use crate::config::{Config, Credentials, LogFormat};
use crate::store::{demo_questions, DemoQuestion, Field, QueryError, Store, StoreOptions};
use crate::sync::{self, SyncOptions};
use orgmirror_fake::{FakeOptions, FakeServer};

/// Why the demo could not be told.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The config, the client, the database, a run.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("--users {users}: the demo needs at least {MIN_USERS} users")]
    TooFewUsers { users: usize },
    #[error("cannot start the fake organization: {0}")]
    FakeStart(#[source] std::io::Error),
    /// `--db` names a file the demo does not replace.
    #[error("{} exists and is not an orgmirror database; choose another --db", .db.display())]
    NotADatabase { db: PathBuf },
    #[error("{} is the mirror of an organization, not a demo database; choose another --db", .db.display())]
    NotADemo { db: PathBuf },
    #[error("cannot remove {}: {source}", .path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    /// What the demo reads back from its database.
    #[error(transparent)]
    Query(#[from] QueryError),
}

crate::commands::from_layers!(DemoError);

/// The fewest users the demo's story can be told with.
pub const MIN_USERS: usize = 10;

/// Runs the demo into `db` (replaced if it exists) with a fake org of `users` users.
pub async fn run(db: &Path, users: usize, seed: u64) -> Result<Exit, DemoError> {
    crate::logging::init(LogFormat::Text, "warn");
    if users < MIN_USERS {
        return Err(DemoError::TooFewUsers { users });
    }
    remove_database(db)?;
    let options = FakeOptions {
        users,
        seed,
        ..Default::default()
    };
    let server = FakeServer::start(options.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .map_err(DemoError::FakeStart)?;
    let config = demo_config(&server.base_url(), &options, db)?;
    let client = Client::new(
        &config.api,
        &Credentials::Token(SecretString::from(options.token.clone())),
    )?;
    let mut store = Store::open(db, &StoreOptions::default())?;
    let sync_options = SyncOptions {
        prints_report: true,
        ..SyncOptions::default()
    };

    crate::outln!(
        "orgmirror demo: a fake organization of {users} users at {}",
        server.base_url()
    );
    crate::outln!("mirroring it into {}\n", db.display());
    crate::outln!("1. First sync (every entity is an insert):");
    let first = sync::run_once(&client, &mut store, &config, &sync_options)
        .await?
        .into_result()?;
    print_report(&first);
    let as_of_first = crate::clock::now_utc();

    let story = change_the_organization(&server);
    crate::outln!("\n2. Meanwhile in the organization:");
    for line in &story.lines {
        crate::outln!("   - {line}");
    }
    // Two runs in the same second would give zero-length history intervals; wait so the
    // example queries below show distinct times.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    crate::outln!("\n3. Second sync (only what changed):");
    let second = sync::run_once(&client, &mut store, &config, &sync_options)
        .await?
        .into_result()?;
    print_report(&second);
    crate::outln!(
        "\n   What the mirror recorded (change_events of run {}):",
        second.run_id
    );
    print_events(&store, second.run_id)?;

    crate::outln!(
        "\n4. Three questions answered offline with SQL (sqlite3 {}):",
        db.display()
    );
    for question in demo_questions(story.renamed_group, &as_of_first, story.rate_user) {
        print_query(&store, &question)?;
    }
    crate::outln!(
        "The database stays at {}; the README has more queries.",
        db.display()
    );
    Ok(Exit::Ok)
}

fn demo_config(base_url: &str, options: &FakeOptions, db: &Path) -> Result<Config, DemoError> {
    let text = format!(
        "[api]\nbase_url = {base_url:?}\norganization_id = {}\nworkspace_id = {}\nmax_requests_per_second = 0\nmax_attempts = 2\ninitial_backoff = \"100ms\"\n\
         [database]\npath = {:?}\n",
        options.organization_id,
        options.workspace_id,
        db.display().to_string()
    );
    Ok(Config::parse(&text)?)
}

fn remove_database(db: &Path) -> Result<(), DemoError> {
    if db.exists() {
        // Only ever replace a previous demo database, never some other file, nor the
        // mirror of a real organization (the fake's owner is the demo's mark).
        let store = Store::open_read_only(db).map_err(|_| DemoError::NotADatabase {
            db: db.to_path_buf(),
        })?;
        let demo =
            store.is_demo_database(orgmirror_fake::FIRST_USER_ID, orgmirror_fake::DEMO_EMAIL);
        if !demo.unwrap_or(false) {
            return Err(DemoError::NotADemo {
                db: db.to_path_buf(),
            });
        }
        drop(store);
    }
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DemoError::Remove {
                    path: PathBuf::from(p),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// What the demo changed, for the summary and the example queries.
struct Story {
    lines: Vec<String>,
    renamed_group: i64,
    rate_user: i64,
}

fn change_the_organization(server: &FakeServer) -> Story {
    let org = server.handle();
    let users = org.user_ids();
    let groups = org.group_ids();
    let mut lines = Vec::new();
    let name_of = |id: i64| org.user(id).map(|u| u.name).unwrap_or_default();

    // The busiest group gets renamed, gains a member and loses one.
    let busiest = groups
        .iter()
        .filter_map(|&g| org.group(g))
        .max_by_key(|g| g.members.len())
        .unwrap_or_default();
    let (group, old_name, members) = (busiest.id, busiest.name, busiest.members);
    org.rename_group(group, "Platform Team 🚀");
    lines.push(format!(
        "group {group} \"{old_name}\" was renamed to \"Platform Team 🚀\""
    ));
    if let Some(&leaver) = members.first() {
        org.leave_group(group, leaver);
        lines.push(format!("{} left it", name_of(leaver)));
    }
    if let Some(&joiner) = users.iter().find(|u| !members.contains(u)) {
        org.join_group(group, joiner);
        lines.push(format!("{} joined it", name_of(joiner)));
    }
    // A raise.
    let rate_user = users.get(users.len() / 2).copied().unwrap_or_default();
    org.set_rate(rate_user, Some(95.0), "EUR");
    lines.push(format!(
        "{}'s hourly rate became 95.00 EUR",
        name_of(rate_user)
    ));
    // Someone becomes an admin.
    let promoted = users
        .iter()
        .copied()
        .skip(1)
        .filter(|&u| u != rate_user && Some(&u) != users.last())
        .find(|&u| org.user(u).is_some_and(|r| !r.admin));
    if let Some(admin) = promoted {
        org.set_admin(admin, true);
        lines.push(format!("{} became an admin", name_of(admin)));
    }
    // Someone leaves the organization, someone new arrives.
    if let Some(&gone) = users.last() {
        lines.push(format!("{} left the organization", name_of(gone)));
        org.remove_user(gone);
    }
    let new_id = org.add_user("Zoë Quinn-O'Brien", "zoe.quinn@example.com");
    lines.push(format!(
        "Zoë Quinn-O'Brien (id {new_id}) joined the organization"
    ));
    Story {
        lines,
        renamed_group: group,
        rate_user,
    }
}

fn print_events(store: &Store, run_id: i64) -> Result<(), DemoError> {
    let rows = store.demo_events(run_id)?;
    for (entity, id, op, fields) in rows {
        let fields = fields.map(|f| format!(" {f}")).unwrap_or_default();
        crate::outln!("   {op:<6} {entity:<16} {id}{fields}");
    }
    Ok(())
}

/// Prints a query, then its answer as a small table.
fn print_query(store: &Store, question: &DemoQuestion) -> Result<(), DemoError> {
    crate::outln!("\n   -- {}", question.question);
    for line in question.sql().lines() {
        crate::outln!("   {}", line.trim());
    }
    let mut rows = store.answer(question)?;
    let names: Vec<String> = rows.columns().to_vec();
    let mut table = vec![names.clone()];
    rows.for_each(DemoError::Query, |row| {
        let mut cells = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            let cell = match row.get(i)? {
                Field::Null => "NULL".to_string(),
                Field::Integer(n) => n.to_string(),
                Field::Real(f) => format!("{f:.2}"),
                Field::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Field::Blob(b) => format!("<{} bytes>", b.len()),
            };
            cells.push(cell);
        }
        table.push(cells);
        Ok(())
    })?;
    let widths: Vec<usize> = (0..names.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    crate::outln!();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        crate::outln!("   | {} |", line.join(" | "));
    }
    if table.len() == 1 {
        crate::outln!("   (no rows)");
    }
    Ok(())
}
