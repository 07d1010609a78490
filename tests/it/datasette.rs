//! Datasette out of the box: the real Datasette (PyPI, pinned in .ci/run) serves a mirror
//! with `datasette/metadata.yml` while orgmirror syncs into it, every canned query answers,
//! and a real browser (Debian's chromium, headless) shows the rows.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{rows, text, Mirror};

/// The canned queries of the metadata, with the parameters each needs (`{group}`,
/// `{day}`, `{person}` filled in from the mirror).
const CANNED: [(&str, &str); 8] = [
    ("is_this_data_current", ""),
    ("members_on_a_date", "group={group}&day={day}"),
    ("rate_history_of_a_person", "person={person}"),
    ("changes_of_the_last_run", ""),
    ("headcount_per_month", ""),
    ("new_admins_last_90_days", ""),
    ("people_in_no_group", ""),
    ("who_changed_what_last_30_days", ""),
];

/// The views the metadata must describe: the contract's (as `export --csv` writes them), the
/// headcount view and the freshness view (not in the CSV set: its age is computed when read).
fn described_views() -> impl Iterator<Item = &'static str> {
    orgmirror::CSV_VIEWS
        .iter()
        .copied()
        .chain(["group_headcount_daily", "mirror_freshness"])
}

fn metadata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasette/metadata.yml")
}

/// Whether `tool` runs; in CI (which installs it) a missing tool fails the test.
fn have(tool: &str, probe: &mut Command) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing in CI (.ci/run installs it)"
        );
        println!("SKIPPED: {tool} is missing (.ci/run installs it)");
    }
    ok
}

fn have_datasette() -> bool {
    have(
        "datasette (pip install datasette==0.65.5)",
        Command::new("python3").args(["-m", "datasette", "--version"]),
    )
}

/// `datasette serve` on 127.0.0.1, a port of its choosing; killed when dropped.
struct Datasette {
    child: Child,
    base: String,
}

impl Datasette {
    fn serve(args: &[&str], db: &Path) -> Datasette {
        let mut child = Command::new("python3")
            .args(["-m", "datasette", "serve", "-h", "127.0.0.1", "-p", "0"])
            .arg("--metadata")
            .arg(metadata())
            .args(args)
            .arg(db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("datasette starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let url: String = line[at..].split_whitespace().next().unwrap_or("").into();
                    let _ = tx.send(url);
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("datasette did not say where it listens");
            }
        };
        Datasette { child, base }
    }

    /// GET `path` (`/org/…`) as JSON.
    fn json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", &url])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{url}: {e}: {}", text(&out.stdout)))
    }
}

impl Drop for Datasette {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mirror with two runs of history that gives every canned query rows: someone became
/// an admin, a rate changed, people moved between groups.
fn mirror_with_history() -> Mirror {
    let m = Mirror::new(60);
    m.sync_ok();
    std::thread::sleep(Duration::from_millis(1100));
    let org = m.fake.handle();
    let users = org.user_ids();
    let promoted = users
        .iter()
        .copied()
        .skip(1)
        .find(|&u| org.user_record(u).is_some_and(|r| !r.admin))
        .expect("someone who is not an admin");
    org.set_admin(promoted, true);
    org.set_rate(users[2], Some(95.0), "EUR");
    let group = org.group_ids()[0];
    org.rename_group(group, "Platform");
    if let Some(outsider) = users
        .iter()
        .copied()
        .find(|u| !org.group_members(group).contains(u))
    {
        org.join_group(group, outsider);
    }
    m.sync_ok();
    m
}

/// `(group, day, person)` for the parameterised queries: the busiest group now, today,
/// the person whose rate changed.
fn parameters(m: &Mirror) -> (String, String, String) {
    let conn = m.conn();
    let group = rows(
        &conn,
        "SELECT group_id FROM group_members_current GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )[0][0]
        .clone();
    let person = rows(
        &conn,
        "SELECT organization_user_id FROM rate_history ORDER BY valid_from DESC LIMIT 1",
    )[0][0]
        .clone();
    let day = orgmirror::now_utc()[..10].to_string();
    (group, day, person)
}

fn query_path(name: &str, params: &str, (group, day, person): &(String, String, String)) -> String {
    let params = params
        .replace("{group}", group)
        .replace("{day}", day)
        .replace("{person}", person);
    format!("/org/{name}.json?_shape=objects&{params}")
}

#[test]
fn datasette_serves_the_mirror_while_orgmirror_syncs() {
    if !have_datasette() {
        return;
    }
    let m = mirror_with_history();
    let params = parameters(&m);
    let ds = Datasette::serve(&[], &m.db);

    // Every contract view and every one of its columns is described.
    let meta = ds.json("/-/metadata.json");
    let tables = &meta["databases"]["org"]["tables"];
    let conn = m.conn();
    for view in described_views() {
        assert!(
            tables[view]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{view} has no description"
        );
        for column in rows(
            &conn,
            &format!("SELECT name FROM pragma_table_info('{view}')"),
        ) {
            assert!(
                tables[view]["columns"][&column[0]].as_str().is_some(),
                "{view}.{} has no description",
                column[0]
            );
        }
        let page = ds.json(&format!("/org/{view}.json?_size=1"));
        assert!(page["error"].is_null(), "{view}: {page}");
    }

    // The page leads with what a reader should use: the freshness check first, the canned
    // queries and every view with a line each; the tables behind the views are hidden.
    let database = &meta["databases"]["org"];
    let description = database["description_html"]
        .as_str()
        .expect("a description");
    let first = |needle: &str| description.find(needle).unwrap_or(usize::MAX);
    assert!(
        first("Is this data current?") < first("<li>"),
        "the freshness check comes first: {description}"
    );
    for view in described_views().filter(|v| *v != "sync_runs") {
        assert!(
            description.contains(&format!("<code>{view}</code>")),
            "the description lacks {view}"
        );
    }
    for (name, _) in CANNED {
        let title = database["queries"][name]["title"]
            .as_str()
            .expect("a title");
        let title = title.split(',').next().unwrap_or(title);
        assert!(
            description.contains(title),
            "the description lacks {title:?}"
        );
    }
    for table in rows(
        &conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> 'sync_runs'",
    ) {
        assert_eq!(
            tables[&table[0]]["hidden"], true,
            "{} is not hidden",
            table[0]
        );
    }
    let page = ds.json("/org.json");
    let listed: Vec<&str> = page["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(listed.first(), Some(&"is_this_data_current"), "{listed:?}");
    let shown: Vec<&str> = page["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["hidden"] == false)
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(shown, ["sync_runs"]);

    // Is this data current? Yes: the last sync succeeded just now.
    let fresh = ds.json("/org/is_this_data_current.json?_shape=objects");
    let row = &fresh["rows"][0];
    assert_eq!(row["current"], "yes", "{fresh}");
    assert_eq!(row["consecutive_failures"], 0);
    let last: Vec<Vec<String>> = rows(
        &conn,
        "SELECT finished_at FROM sync_runs WHERE status = 'succeeded' ORDER BY sync_run_id DESC LIMIT 1",
    );
    assert_eq!(row["last_success_at"], last[0][0]);

    // The canned queries are the ones bench times, word for word.
    let queries = &meta["databases"]["org"]["queries"];
    for (name, sql) in crate::canned::CANNED_QUERIES {
        assert_eq!(queries[name]["sql"].as_str(), Some(*sql), "{name}");
    }
    assert_eq!(
        queries.as_object().map(|q| q.len()),
        Some(CANNED.len()),
        "{queries}"
    );
    assert_eq!(
        CANNED.map(|(name, _)| name).to_vec(),
        crate::canned::CANNED_QUERIES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
    );

    // Queries answer while a sync writes (changes upstream, so the run commits some).
    let org = m.fake.handle();
    for user in org.user_ids().into_iter().skip(5).take(20) {
        org.set_rate(user, Some(123.0), "EUR");
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut sync = Command::new(crate::support::bin())
        .arg("--config")
        .arg(&m.config)
        .arg("sync")
        .env("TOGGL_API_TOKEN", "demo-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sync starts");
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        for (name, query) in CANNED {
            let answer = ds.json(&query_path(name, query, &params));
            assert_eq!(answer["ok"], true, "{name}: {answer}");
            assert!(answer["error"].is_null(), "{name}: {answer}");
            assert!(
                answer["rows"].as_array().is_some_and(|r| !r.is_empty()),
                "{name} answered no rows: {answer}"
            );
        }
        rounds += 1;
        if sync.try_wait().expect("wait").is_some() || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    assert!(sync.wait().expect("sync ends").success());
    assert!(rounds >= 1);
    // The live file is read as it is now: the run just committed is the last run.
    let last = ds.json(&query_path("changes_of_the_last_run", "", &params));
    assert!(
        last["rows"].as_array().is_some_and(|r| r
            .iter()
            .all(|e| e["entity"] == "user_rate" || e["entity"] == "user")
            && r.iter().any(|e| e["entity"] == "user_rate")),
        "{last}"
    );

    browse(&ds, &m);
}

/// Chromium, headless, renders the database page and one canned query's page; the DOM
/// shows the rows, and a screenshot of each is kept under target/test-artifacts/.
fn browse(ds: &Datasette, m: &Mirror) {
    if !have(
        "chromium (apt-get install chromium)",
        Command::new("chromium").arg("--version"),
    ) {
        return;
    }
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let profile = tempfile::tempdir().expect("tempdir");
    let chromium = |args: &[&str], url: &str| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=1280,1600", "--virtual-time-budget=5000"])
            .args(args)
            .arg(url)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium {url}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let conn = m.conn();

    let database = format!("{}/org", ds.base);
    let dom = chromium(&["--dump-dom"], &database);
    for shown in [
        "users_current",
        "group_headcount_daily",
        "People in no group",
    ] {
        assert!(
            dom.contains(shown),
            "the database page lacks {shown}:\n{dom}"
        );
    }
    // It opens on the freshness check, and its SQL box on the table of runs, not on an
    // internal table.
    let at = |needle: &str| dom.find(needle).unwrap_or(usize::MAX);
    assert!(
        at("Is this data current?") < at("Custom SQL query"),
        "the description leads:\n{dom}"
    );
    assert!(dom.contains("select * from sync_runs</textarea>"), "{dom}");
    assert!(!dom.contains("select * from alert_outbox"), "{dom}");
    let queries = &dom[at("id=\"queries\"").min(dom.len())..];
    assert!(
        queries.find("Is this data current?") < queries.find("Members of a group on a date"),
        "the freshness check is the first query:\n{dom}"
    );
    let shot = artifacts.join("datasette-database.png");
    chromium(&[&format!("--screenshot={}", shot.display())], &database);
    assert!(std::fs::metadata(&shot).is_ok_and(|s| s.len() > 1000));

    let page = format!("{}/org/is_this_data_current", ds.base);
    let dom = chromium(&["--dump-dom"], &page);
    assert!(dom.contains("<td class=\"col-current\">yes</td>"), "{dom}");
    let shot = artifacts.join("datasette-is_this_data_current.png");
    chromium(&[&format!("--screenshot={}", shot.display())], &page);
    assert!(std::fs::metadata(&shot).is_ok_and(|s| s.len() > 1000));

    let page = format!("{}/org/people_in_no_group", ds.base);
    let dom = chromium(&["--dump-dom"], &page);
    let people = rows(
        &conn,
        "SELECT u.email FROM users_current u WHERE NOT EXISTS
             (SELECT 1 FROM group_members_current m WHERE m.organization_user_id = u.organization_user_id)",
    );
    assert!(!people.is_empty());
    for email in &people {
        assert!(
            dom.contains(&email[0]),
            "{} is not on the page:\n{dom}",
            email[0]
        );
    }
    assert!(dom.matches("<tr").count() > people.len(), "{dom}");
    let shot = artifacts.join("datasette-people_in_no_group.png");
    chromium(&[&format!("--screenshot={}", shot.display())], &page);
    assert!(std::fs::metadata(&shot).is_ok_and(|s| s.len() > 1000));
}

/// Why the README serves with Datasette's default (`?mode=ro`) and not `--immutable`: an
/// immutable database is read without its `-wal`, so what orgmirror committed and could
/// not yet checkpoint (a reader held an old snapshot) is missing from its answers.
#[test]
fn datasette_immutable_misses_what_orgmirror_commits() {
    if !have_datasette() {
        return;
    }
    let m = Mirror::new(20);
    m.sync_ok();
    // Let the sync's checkpoint give up on the reader below soon.
    let mut config = std::fs::read_to_string(&m.config).expect("config");
    config.push_str("busy_timeout = \"500ms\"\n");
    std::fs::write(&m.config, config).expect("config");
    let live = Datasette::serve(&[], &m.db);
    let immutable = Datasette::serve(&["--immutable"], &m.db);
    let runs = |ds: &Datasette| {
        ds.json("/org.json?sql=SELECT+count(*)+AS+n+FROM+sync_runs&_shape=array")[0]["n"]
            .as_i64()
            .unwrap_or(-1)
    };
    assert_eq!((runs(&live), runs(&immutable)), (1, 1));
    // A BI reader in the middle of a long query: the WAL cannot be folded back meanwhile.
    let reader = m.conn();
    reader.execute_batch("BEGIN").expect("begin");
    let _: i64 = reader
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .expect("read");
    m.sync_ok();
    assert_eq!(
        runs(&live),
        2,
        "the default (?mode=ro) reads what was committed"
    );
    assert_eq!(runs(&immutable), 1, "--immutable ignores the -wal");
    reader.execute_batch("COMMIT").expect("end read");
}
