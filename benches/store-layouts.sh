#!/usr/bin/env bash
# What SQLite alone needs to store a first sync's rows under other layouts: the data behind the
# "what it would take" part of docs/performance.md. Not run by CI (it needs the sqlite3 shell and a
# large mirror).
#
#   benches/store-layouts.sh MIRROR [RUNS]
#
# MIRROR is a database a first sync made, e.g. 100k users:
#   target/release/orgmirror fake-api --listen 127.0.0.1:18080 --users 100000 &
#   (config with base_url = "http://127.0.0.1:18080/api", organization_id = 1001,
#    workspace_id = 2001, database.path = MIRROR; TOGGL_API_TOKEN=demo-token) orgmirror sync
#
# Each layout copies rows from MIRROR into a new database made from schema.sql, one row at a
# time (`INSERT … SELECT … WHERE true` defeats SQLite's transfer optimisation), in one
# transaction, then checkpoints, with the sync's settings (synchronous=FULL, 16 MiB cache,
# foreign keys off). The layouts run interleaved, RUNS times (default 3); it prints each wall
# time in seconds and the median per layout.
set -euo pipefail
mirror=${1:?usage: benches/store-layouts.sh MIRROR [RUNS]}
runs=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
schema="$here/schema.sql"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 shell" >&2; exit 2; }

tables=$(sqlite3 "file:$mirror?mode=ro" \
  "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name" |
  tr '\n' ' ')
without() { for t in $tables; do [ "$t" = "$1" ] || printf '%s ' "$t"; done; }

# layout name | journal mode | tables copied
layouts=(
  "as-built|WAL|$tables"
  "rollback-journal|DELETE|$tables"
  "no-change_log|WAL|$(without change_log)"
  "history-only|WAL|entity_history sync_runs"
)

copy() { # journal tables... -> wall seconds
  local journal=$1; shift
  local db="$work/copy.sqlite"
  rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
  sqlite3 "$db" "PRAGMA journal_mode=$journal;" >/dev/null
  sqlite3 "$db" < "$schema"
  {
    echo "PRAGMA synchronous=FULL; PRAGMA cache_size=-16384; PRAGMA foreign_keys=OFF;"
    echo "ATTACH 'file:$mirror?mode=ro' AS src;"
    echo "BEGIN IMMEDIATE;"
    for t in "$@"; do echo "INSERT INTO main.\"$t\" SELECT * FROM src.\"$t\" WHERE true;"; done
    echo "COMMIT;"
    [ "$journal" = WAL ] && echo "PRAGMA wal_checkpoint(TRUNCATE);"
  } > "$work/copy.sql"
  local start end
  start=$(date +%s.%N)
  sqlite3 "$db" < "$work/copy.sql" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

declare -A times
for ((i = 1; i <= runs; i++)); do
  for l in "${layouts[@]}"; do
    IFS='|' read -r name journal list <<<"$l"
    # shellcheck disable=SC2086 # the table list is meant to split
    t=$(copy "$journal" $list)
    times[$name]+="$t "
    printf '%-18s run %d: %6.2f s\n' "$name" "$i" "$t"
  done
done
echo
for l in "${layouts[@]}"; do
  name=${l%%|*}
  median=$(tr ' ' '\n' <<<"${times[$name]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-18s median %6.2f s\n' "$name" "$median"
done
