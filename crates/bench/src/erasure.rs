//! Forgetting, on the query scenario's mirror (a year of weekly churn): `orgmirror erase`
//! of the leaver with the most versions (the command's wall time, and the time its byte
//! search of the database file and WAL took), then two runs with `[retention] history`
//! on copies made before it: one that drops a year of versions (`1d`: everything that
//! ended before yesterday) and a steady-state one that drops one week's (`51w`); last, the
//! first erasure in a mirror written before `secure_delete` (flagged so on a copy), which
//! vacuums the file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::child::run_child;
use crate::queries::QueryMeasurement;
use crate::{sql, Binaries};

/// Runs the three measurements on `db` (the server behind `config` still up).
pub fn measure(
    binaries: &Binaries,
    size: usize,
    dir: &Path,
    db: &Path,
    config: &Path,
) -> Result<Vec<QueryMeasurement>, String> {
    let config_text =
        std::fs::read_to_string(config).map_err(|e| format!("cannot read the config: {e}"))?;
    let mut out = Vec::new();
    // Copies for the retention runs, before the erasure changes the mirror.
    let mut copies = Vec::new();
    for (name, history) in [("a year of versions", "1d"), ("one week's expiry", "51w")] {
        let copy = dir.join(format!("retention-{history}.sqlite"));
        std::fs::copy(db, &copy).map_err(|e| format!("cannot copy the mirror: {e}"))?;
        let cfg = dir.join(format!("retention-{history}.toml"));
        let text = config_text
            .replace(
                &format!("{:?}", db.display().to_string()),
                &format!("{:?}", copy.display().to_string()),
            )
            .replace(
                "level = \"warn\"",
                "level = \"warn,orgmirror::store::write=info\"",
            );
        std::fs::write(
            &cfg,
            format!("{text}\n[retention]\nhistory = \"{history}\"\n"),
        )
        .map_err(|e| format!("cannot write a config: {e}"))?;
        copies.push((name, cfg, copy));
    }

    let conn = sql::read(db).map_err(|e| e.to_string())?;
    let leaver: i64 = conn
        .query_row(
            "SELECT id FROM entity_history WHERE entity = 'user' GROUP BY id
             HAVING count(valid_to) = count(*) ORDER BY count(*) DESC, id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("no leaver to erase: {e}"))?;
    drop(conn);
    let mut cmd = Command::new(&binaries.orgmirror);
    cmd.arg("--config").arg(config).args([
        "erase",
        "--user",
        &leaver.to_string(),
        "--reason",
        "bench",
    ]);
    let cost = run_child(&binaries.bench, cmd, dir, "erase")?;
    let said = std::fs::read_to_string(dir.join("erase.stdout")).unwrap_or_default();
    if said.contains("vacuumed") {
        orgmirror::errln!("  {size:>7} erase     vacuumed (its time is in the erase's)");
    }
    out.push(command(
        "erase one leaver (command)",
        size,
        cost.wall,
        cost.peak_rss_kib,
    ));
    let check = said
        .split(" read in ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("erase did not report its byte search: {said}"))?;
    out.push(command(
        "erase: bytes-gone check",
        size,
        Duration::from_secs_f64(check),
        cost.peak_rss_kib,
    ));

    // The first erasure of a mirror an older orgmirror wrote: what `VACUUM` adds.
    let old = dir.join("older.sqlite");
    std::fs::copy(db, &old).map_err(|e| format!("cannot copy the mirror: {e}"))?;
    let old_cfg = dir.join("older.toml");
    std::fs::write(
        &old_cfg,
        config_text.replace(
            &format!("{:?}", db.display().to_string()),
            &format!("{:?}", old.display().to_string()),
        ),
    )
    .map_err(|e| format!("cannot write a config: {e}"))?;
    let second: i64 = rusqlite::Connection::open(&old)
        .and_then(|conn| {
            conn.execute("UPDATE free_space SET may_hold_old_bytes = 1", [])?;
            let second: i64 = conn.query_row(
                "SELECT id FROM entity_history WHERE entity = 'user' AND id <> ?1 GROUP BY id
                 HAVING count(valid_to) = count(*) ORDER BY count(*) DESC, id LIMIT 1",
                [leaver],
                |r| r.get(0),
            )?;
            Ok(second)
        })
        .map_err(|e| format!("cannot flag the copy: {e}"))?;
    let mut cmd = Command::new(&binaries.orgmirror);
    cmd.arg("--config").arg(&old_cfg).args([
        "erase",
        "--user",
        &second.to_string(),
        "--reason",
        "bench",
    ]);
    let cost = run_child(&binaries.bench, cmd, dir, "erase-older")?;
    let said = std::fs::read_to_string(dir.join("erase-older.stdout")).unwrap_or_default();
    if !said.contains("vacuumed") {
        return Err(format!("the older mirror's erasure did not vacuum: {said}"));
    }
    out.push(command(
        "erase, older mirror (VACUUM)",
        size,
        cost.wall,
        cost.peak_rss_kib,
    ));
    std::fs::remove_file(&old).map_err(|e| format!("cannot remove the copy: {e}"))?;

    for (name, cfg, _copy) in &copies {
        let mut cmd = Command::new(&binaries.orgmirror);
        cmd.arg("--config")
            .arg(cfg)
            .arg("sync")
            .env("TOGGL_API_TOKEN", "demo-token");
        let cost = run_child(&binaries.bench, cmd, dir, "retention")?;
        let log = std::fs::read_to_string(dir.join("retention.stderr")).unwrap_or_default();
        let line = log
            .lines()
            .find(|l| l.contains("retention: dropped"))
            .ok_or_else(|| format!("the run logged no retention pass: {log}"))?;
        let field = |key: &str| -> Option<u64> {
            line.split(&format!("{key}="))
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let ms = field("duration_ms").ok_or_else(|| format!("no duration in: {line}"))?;
        let versions = field("versions").unwrap_or(0);
        orgmirror::errln!(
            "  {size:>7} retention {name}: {versions} versions, {} erased, in {ms} ms",
            field("erased").unwrap_or(0)
        );
        let mut m = command(
            &format!("retention pass: {name}"),
            size,
            Duration::from_millis(ms),
            cost.peak_rss_kib,
        );
        m.rows = usize::try_from(versions).unwrap_or(usize::MAX);
        out.push(m);
    }
    Ok(out)
}

fn command(name: &str, size: usize, wall: Duration, peak_rss_kib: i64) -> QueryMeasurement {
    QueryMeasurement {
        size,
        query: name.to_string(),
        median: wall,
        fastest: wall,
        rows: 1,
        plan: None,
        peak_rss_kib: Some(peak_rss_kib),
    }
}
