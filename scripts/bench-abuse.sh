#!/usr/bin/env bash
# The resource-abuse benchmark of the gateway (issue 10), bounded to a few minutes.
#
# Starts `kiosk-gateway serve` (release build, pinned to core 0, soft RLIMIT_NOFILE 1,024 as
# on a default system: a gateway that does not raise it keeps it), then runs at once:
#   - a well-behaved terminal (seven/131016-0042/k1): `kiosk-terminal load`, open loop at
#     BENCH_ABUSE_RATE issuances/s for the whole run, on connections made before the abuse;
#   - the same terminal again a third into the abuse, on new connections, at 2/s;
#   (the idle and half-open connections start a sixth into the run, after the unread streams:
#   on a gateway whose descriptors run out, they would otherwise keep the streams from
#   connecting at all)
#   - `kiosk-abuse` (tests/src/bin/kiosk-abuse.rs) as other callers: idle anonymous HTTP/2
#     connections and TLS connections that never send the HTTP/2 preface from 8 loopback
#     addresses, unread retries of a 50-document order and loops of 50-document issuances
#     with the terminal certificate seven/131016-0042/k2, and an OpenSession flood with it.
# It samples the gateway's resident memory and open descriptors every half second and reports
# the peak (VmHWM, most descriptors), the memory 20 s after the abuse ended, and the
# well-behaved terminal's issuances and errors.
#
# Usage: bash scripts/bench-abuse.sh
#   BENCH_ABUSE_SECONDS   abuse duration (default 60)
#   BENCH_ABUSE_RATE      the well-behaved terminal's issuances per second (default 4)
#   BENCH_GATEWAY_BIN     another kiosk-gateway binary (e.g. a build of main) to measure
#   BENCH_BIN_DIR         already-built kiosk-gateway, kiosk-terminal and kiosk-abuse
#   BENCH_OVERLOAD=3      instead: capacity with a closed loop (32 terminals), then an open
#                         loop offering 3x it; reports achieved rate, OVERLOADED refusals and
#                         the admitted issuances' p99 next to the p99 at capacity
# Only loopback addresses are used; every loop is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_ABUSE_SECONDS:-60}
rate=${BENCH_ABUSE_RATE:-4}
overload=${BENCH_OVERLOAD:-}
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$BENCH_BIN_DIR
else
  cargo build --release -q -p kiosk-gateway -p kiosk-terminal -p kiosk-tests --bin kiosk-gateway \
    --bin kiosk-terminal --bin kiosk-abuse
  bin=target/release
fi
gateway=${BENCH_GATEWAY_BIN:-$bin/kiosk-gateway}
port=17700
data=$(mktemp -d)
# The next weekday's 10:00 JST, inside service hours (as in bench-load.sh).
day=1
while [ "$(TZ=Asia/Tokyo date -d "+$day day" +%u)" -gt 5 ]; do day=$((day + 1)); done
clock="$(TZ=Asia/Tokyo date -d "+$day day" +%Y-%m-%d)T10:00:00+09:00"

(
  ulimit -Sn 1024
  KIOSK_DATA_DIR=$data KIOSK_LISTEN=127.0.0.1:$port KIOSK_SYNTHETIC_RESIDENTS=300 \
    KIOSK_REHEARSAL_CLOCK_START=$clock RUST_LOG=warn \
    exec taskset -c 0 "$gateway" serve
) >"$data/serve.out" 2>"$data/serve.err" &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 240); do grep -q listening "$data/serve.out" 2>/dev/null && break; sleep 0.5; done
grep -q listening "$data/serve.out" || { cat "$data/serve.err"; exit 1; }
url=https://127.0.0.1:$port
terminal=(taskset -c 1 "$bin/kiosk-terminal" --gateway "$url" --pki "$data/pki"
  --terminal terminal-seven-131016-0042-k1)
cards=(--cards "$data/cards" --bindings "$data/bindings-131016.jsonl")

kib() { awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }'; }
status() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }

if [ -n "$overload" ]; then
  echo "=== capacity: closed loop, 32 terminals"
  "${terminal[@]}" load "${cards[@]}" --concurrency 32 --issuances 1500 | tee "$data/capacity.out"
  capacity=$(awk '/issuances\/s/ { print $(NF - 1) }' "$data/capacity.out")
  offered=$(awk -v c="$capacity" -v x="$overload" 'BEGIN { printf "%.0f", c * x }')
  echo "=== open loop at ${overload}x capacity: $offered/s for 20 s, 1024 workers"
  "${terminal[@]}" load "${cards[@]}" --concurrency 1024 --issuances $((offered * 20)) \
    --rate "$offered" | tee "$data/overload.out"
  kill -0 "$pid" && echo "gateway still running; peak resident $(kib "$(status "$pid" VmHWM)")"
  exit 0
fi

# Samples: time, open descriptors, resident KiB.
(
  while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s) $(ls "/proc/$pid/fd" 2>/dev/null | wc -l) $(status "$pid" VmRSS)"
    sleep 0.5
  done
) >"$data/samples" &
sampler=$!
start_rss=$(status "$pid" VmRSS)

"${terminal[@]}" load "${cards[@]}" --concurrency 8 --issuances $((seconds * rate)) \
  --rate "$rate" >"$data/load.out" 2>&1 &
load=$!
(
  sleep $((seconds / 3))
  exec "${terminal[@]}" load "${cards[@]}" --concurrency 4 --issuances $((seconds / 3 * 2)) --rate 2
) >"$data/late.out" 2>&1 &
late=$!
taskset -c 1 "$bin/kiosk-abuse" --gateway "$url" --pki "$data/pki" "${cards[@]}" \
  --seconds "$seconds" --idle 600 --half-open 600 --sources 8 \
  --connections-after $((seconds / 6)) --unread 100 \
  --session-flood 8 --large 2 >"$data/abuse.out" 2>&1 || true
load_status=0 late_status=0
wait "$load" || load_status=$?
wait "$late" || late_status=$?
peak_rss=$(status "$pid" VmHWM)
sleep 20
after_rss=$(status "$pid" VmRSS)
after_fds=$(ls "/proc/$pid/fd" | wc -l)
kill "$sampler" 2>/dev/null || true

echo "=== gateway $("$gateway" --version) under abuse for $seconds s"
cat "$data/abuse.out"
echo "--- well-behaved terminal (open loop at $rate/s, exit status $load_status)"
grep -E "completed|errors|error " "$data/load.out" || tail -5 "$data/load.out"
echo "--- the same terminal connecting a third into the abuse (2/s, exit status $late_status)"
grep -E "completed|errors|error " "$data/late.out" || tail -5 "$data/late.out"
echo "--- gateway"
echo "resident at start:          $(kib "$start_rss")"
echo "peak resident (VmHWM):      $(kib "$peak_rss")"
echo "most open descriptors:      $(awk 'max < $2 { max = $2 } END { print max }' "$data/samples")"
echo "resident 20 s after abuse:  $(kib "$after_rss"), $after_fds descriptors open"
kill -0 "$pid" 2>/dev/null || { echo "GATEWAY DIED"; tail -20 "$data/serve.err"; }
