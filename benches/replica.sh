#!/usr/bin/env bash
# The PostgreSQL replica's benchmark (`orgmirror-bench --postgres URL`) against a throwaway
# PostgreSQL cluster with default durability settings, started here and removed afterwards.
#   benches/replica.sh [SIZES]        # default 10000,100000; needs Debian's postgresql package
# Writes bench-results/replica.json (or $BENCH_OUT) and prints a table: a first sync's
# replication against the sync's own time, a churn run's replication, and a bootstrap's rows
# per second. With $ORGMIRROR set to a built orgmirror binary, that one is measured (by the
# orgmirror-bench beside it) instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-10000,100000}"
bin_dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$bin_dir/initdb" ] || { echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2; exit 2; }
dir=$(mktemp -d /tmp/orgmirror-bench-pg.XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then chown nobody "$dir"; as=(runuser -u nobody --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=bench-password
echo "$password" > "$dir/pw" && [ "${#as[@]}" = 0 ] || chown nobody "$dir/pw"
"${as[@]}" "$bin_dir/initdb" -D "$dir/data" -U orgmirror -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pw" >/dev/null
"${as[@]}" "$bin_dir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >/dev/null
trap '"${as[@]}" "$bin_dir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; rm -rf "$dir"' EXIT
orgmirror="${ORGMIRROR:-}"
if [ -z "$orgmirror" ]; then cargo build --release --quiet; orgmirror=target/release/orgmirror; fi
PGPASSWORD=$password "$(dirname "$orgmirror")/orgmirror-bench" --orgmirror "$orgmirror" \
  --postgres "postgres://orgmirror@127.0.0.1:$port/postgres" \
  --sizes "$sizes" --out "${BENCH_OUT:-bench-results/replica.json}"
