#!/usr/bin/env bash
# Import rate of `issuer import` (release build) at N residents (default 1,000,000), each
# figure next to its floor measured in the same run: reading the file, and storing its lines
# as one text column by the database's bulk path (SQLite: one prepared INSERT per line in
# one transaction, WAL and synchronous=FULL as the register; PostgreSQL: \copy). Needs the
# PostgreSQL of scripts/ensure-postgres.sh. Usage: scripts/bench-import.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-/tmp/bench-import}; mkdir -p "$dir"; cd "$dir"
BIN=$root/target/release/issuer
FILE=register-${1:-1000000}.jsonl
MUNI=$root/docs/municipality.example.json
N=${1:-1000000}
[ -f "$FILE" ] || python3 "$root/scripts/gen-register-import.py" "$N" 131016 > "$FILE"
cargo build --release -p issuer --bin issuer --manifest-path "$root/Cargo.toml"
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(echo "$(date +%s.%N) - $s" | bc)"; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "floor read: $(t cat $FILE)"
rm -f reg.db reg.db-wal reg.db-shm floor.db
$BIN municipality apply --db sqlite://reg.db --file $MUNI --reason "import benchmark" >/dev/null
echo "sqlite import: $(t $BIN import --db sqlite://reg.db $FILE)"
echo "sqlite floor: $(t python3 -c "
import sqlite3,sys
c=sqlite3.connect('floor.db'); c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA synchronous=FULL')
c.execute('CREATE TABLE t(line TEXT)')
with open('$FILE') as f:
    c.executemany('INSERT INTO t VALUES (?)', ((l,) for l in f))
c.commit()")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS bench_import WITH (FORCE)" -c "CREATE DATABASE bench_import" 2>/dev/null
PG=postgres://postgres@127.0.0.1:5432/bench_import
$BIN municipality apply --db $PG --file $MUNI --reason "import benchmark" >/dev/null
echo "postgres import: $(t $BIN import --db $PG $FILE)"
echo "postgres floor: $(t psql -h 127.0.0.1 -U postgres -d bench_import -qc "CREATE TABLE floor(line text)" -c "\\copy floor FROM '$FILE' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")"
psql -h 127.0.0.1 -U postgres -d bench_import -tAc "SELECT (SELECT count(*) FROM residents), (SELECT count(*) FROM floor)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS bench_import WITH (FORCE)"
