#!/usr/bin/env bash
# The load benchmark of the gateway (issue 6): one-page issuances per second and the latency
# at 150 issuances/s, on SQLite and on PostgreSQL, each next to the floor measured in the same
# run (render + sign one page, card verification, one durable commit).
#
# The gateway runs on core 0 and the load generator on core 1 (taskset), both release builds,
# on loopback with mutual TLS. The gateway's clock is a rehearsal clock at a weekday 10:00 JST
# so that service hours never refuse the run. Usage:
#   bash scripts/bench-load.sh [ISSUANCES] [RATE]
# BENCH_TOPOLOGY=two-process runs the issuer as its own process (`issuer serve`, pinned to core
# 1 with the load generator, its register on the same backend, written by `kiosk-devkit
# generate`) and the gateway routes to it
# over mutual TLS ([[remote_issuers]]), as a municipality would deploy it; the default
# all-in-one runs the issuer inside the gateway.
# PostgreSQL is reached over its Unix socket when one is found (BENCH_PG_SOCKET_DIR, default
# /var/run/postgresql): sqlx does not set TCP_NODELAY, so over loopback TCP a statement sent in
# two writes waits ~40 ms for a delayed ACK. BENCH_PG_SOCKET_DIR= (empty) forces TCP.
set -euo pipefail
cd "$(dirname "$0")/.."
issuances=${1:-2000}
rate=${2:-150}
topology=${BENCH_TOPOLOGY:-all-in-one}
case $topology in all-in-one|two-process) ;; *) echo "BENCH_TOPOLOGY: all-in-one or two-process"; exit 64;; esac
# BENCH_BIN_DIR runs already-built binaries (kiosk-gateway, kiosk-terminal, examples/floor; for
# two-process also issuer and kiosk-devkit), e.g. two builds side by side in one session.
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$BENCH_BIN_DIR
else
  cargo build --release -q -p kiosk-gateway -p kiosk-terminal -p issuer -p kiosk-devkit --examples --bins
  bin=target/release
fi
pg_base=${KIOSK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
pg_server=${pg_base%/*}
pg_socket=${BENCH_PG_SOCKET_DIR-/var/run/postgresql}
# The next weekday's 10:00 JST: inside service hours, and after the development PKI (made at
# the gateway's first start, valid from then) became valid.
day=1
while [ "$(TZ=Asia/Tokyo date -d "+$day day" +%u)" -gt 5 ]; do day=$((day + 1)); done
clock="$(TZ=Asia/Tokyo date -d "+$day day" +%Y-%m-%d)T10:00:00+09:00"

# CPU time (user + system, clock ticks) of process $1 so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs the load command "$@" and says how much CPU the gateway ($pid) and the load generator
# spent per issuance: where the time goes, independent of how busy the machine was. The
# gateway's share includes the load's eligibility prepass (one login and menu per card).
measured() {
  local before after hz load_cpu TIMEFORMAT='%U %S'
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$pid")
  # bash's `time` reports to the group's stderr (the file); the command's own goes to fd 4.
  { time "$@" 2>&4; } 4>&2 2>"$data/time.txt"
  load_cpu=$(tail -1 "$data/time.txt")
  after=$(cpu_ticks "$pid")
  awk -v g=$((after - before)) -v hz="$hz" -v n="$issuances" -v l="$load_cpu" 'BEGIN {
    split(l, t, " ");
    printf "CPU per issuance: gateway %.2f ms, load generator %.2f ms\n",
      g / hz * 1000 / n, (t[1] + t[2]) * 1000 / n }'
}

run() {
  local backend=$1 data port=17600 pid
  data=$(mktemp -d)
  if [ "$backend" = postgres ]; then
    for db in bench_gw bench_reg; do
      psql "$pg_base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    done
    if [ -n "$pg_socket" ] && [ -S "$pg_socket/.s.PGSQL.5432" ]; then
      gw_url="postgres://postgres@localhost/bench_gw?host=$pg_socket"
      reg_url="postgres://postgres@localhost/bench_reg?host=$pg_socket"
    else
      gw_url="$pg_server/bench_gw" reg_url="$pg_server/bench_reg"
    fi
    export KIOSK_DATABASE_URL="$gw_url" KIOSK_REGISTER_URL="$reg_url"
    db_url="$gw_url"
    echo "postgres at $gw_url"
  else
    unset KIOSK_DATABASE_URL KIOSK_REGISTER_URL
    db_url="sqlite://$data/gateway.db"
  fi
  local config=() issuer_pid=
  if [ "$topology" = two-process ]; then
    local reg=${KIOSK_REGISTER_URL:-sqlite://$data/register.db}
    $bin/kiosk-devkit generate --seed 1 --residents 300 --municipality 131016 --name 千代田区 \
      --db "$reg" --bindings-out "$data/bindings-131016.jsonl" --pki "$data/pki" \
      --cards-out "$data/cards" --cards 300 >"$data/generate.out"
    RUST_LOG=warn taskset -c 1 $bin/issuer serve --db "$reg" --municipality 131016 \
      --listen 127.0.0.1:$((port + 1)) --pki "$data/pki" >"$data/issuer.out" 2>"$data/issuer.err" &
    issuer_pid=$!
    for _ in $(seq 1 240); do grep -q listening "$data/issuer.out" 2>/dev/null && break; sleep 0.5; done
    grep -q listening "$data/issuer.out" || { cat "$data/issuer.err"; exit 1; }
    printf '%s\n' 'profile = "dev"' 'municipalities = []' '[[remote_issuers]]' 'municipality = "131016"' \
      "endpoint = \"https://127.0.0.1:$((port + 1))\"" 'server_name = "localhost"' \
      "bindings = \"$data/bindings-131016.jsonl\"" >"$data/gateway.toml"
    config=(--config "$data/gateway.toml")
  fi
  # The load generator plays the whole fleet with one terminal certificate: the per-caller
  # bounds meant for one kiosk (calls in flight, open sessions) are lifted to a fleet's.
  KIOSK_DATA_DIR=$data KIOSK_LISTEN=127.0.0.1:$port KIOSK_SYNTHETIC_RESIDENTS=300 \
    KIOSK_REHEARSAL_CLOCK_START=$clock RUST_LOG=warn \
    KIOSK_MAX_CALLS_IN_FLIGHT_PER_CALLER=4096 KIOSK_MAX_OPEN_SESSIONS_PER_TERMINAL=100000 \
    taskset -c 0 $bin/kiosk-gateway serve "${config[@]}" >"$data/serve.out" 2>"$data/serve.err" &
  pid=$!
  for _ in $(seq 1 240); do grep -q listening "$data/serve.out" 2>/dev/null && break; sleep 0.5; done
  grep -q listening "$data/serve.out" || { cat "$data/serve.err"; exit 1; }
  echo "=== $backend ($topology)"
  taskset -c 1 $bin/examples/floor "$data/pki" "$db_url" 300
  local load=(taskset -c 1 $bin/kiosk-terminal --gateway https://127.0.0.1:$port --pki "$data/pki"
    load --cards "$data/cards" --bindings "$data/bindings-131016.jsonl" --type RESIDENT_RECORD_ITEMS)
  echo "--- closed loop, 32 terminals"
  measured "${load[@]}" --concurrency 32 --issuances "$issuances"
  echo "--- open loop at $rate/s"
  measured "${load[@]}" --concurrency 64 --issuances "$issuances" --rate "$rate"
  if [ -n "$issuer_pid" ]; then
    # The issuer's CPU per issuance, like the gateway's (it ran only for these two loads).
    awk -v t="$(cpu_ticks "$issuer_pid")" -v hz="$(getconf CLK_TCK)" -v n=$((2 * issuances)) \
      'BEGIN { printf "issuer process CPU per issuance (both loads): %.2f ms\n", t / hz * 1000 / n }'
    kill -TERM "$issuer_pid"; wait "$issuer_pid" || true
  fi
  kill -TERM $pid; wait $pid || true
  rm -rf "$data"
}

run sqlite
run postgres
