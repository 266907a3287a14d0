#!/usr/bin/env bash
# Runs the time-dependent tests again with the machine's clock faked (libfaketime) to a
# weekend night and a weekday night in Japan, so a test that passes only at some hours cannot
# land. The gateway's rehearsal clock jumps furthest from the wall clock at a weekend night
# (Saturday 01:00 JST to Monday 10:00 JST is 57 hours); a weekday night jumps a few hours.
#
# The fake instants are the next such nights after now (never the past: certificates the tests
# mint are valid from the fake now). The test binaries run directly, not through cargo, so
# cargo never sees faked file times; the processes they spawn (kiosk-gateway serve, issuer
# serve) inherit the fake clock. Monotonic time stays real: timeouts behave.
#
# Usage: bash scripts/test-at-night.sh            (after `cargo test` built the test binaries)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v faketime >/dev/null || { echo "test-at-night: faketime missing (scripts/install-deps.sh)"; exit 1; }

# Packages and test targets that depend on the hour: every gateway spawned by a test runs on
# a clock moved into office hours, and the fixtures it judges (CRLs, deadlines) follow it.
targets=(
  "kiosk-gateway:revocation_reload"
  "kiosk-gateway:two_process"
  "kiosk-gateway:openssl_pki"
  "kiosk-gateway:demo_cli"
  "kiosk-gateway:admin_cli"
  "kiosk-terminal:issue_cli"
  "kiosk-tests:transport"
  "kiosk-tests:issuance"
  "kiosk-tests:operations"
  "kiosk-tests:incidents"
)

# The next Saturday 01:00 JST and the next Wednesday 02:30 JST after now, in UTC.
read -r weekend weekday < <(python3 - <<'EOF'
import datetime as dt
jst = dt.timezone(dt.timedelta(hours=9))
now = dt.datetime.now(jst)
def next_at(weekday, hour, minute):
    day = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    day += dt.timedelta(days=(weekday - now.weekday()) % 7)
    if day <= now:
        day += dt.timedelta(days=7)
    return day.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
print(next_at(5, 1, 0), next_at(2, 2, 30))
EOF
)

binaries=()
for target in "${targets[@]}"; do
  package="${target%%:*}"; test_name="${target##*:}"
  binary=$(cargo test -p "$package" --all-features --test "$test_name" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
  [ -n "$binary" ] || { echo "test-at-night: no test binary for $target"; exit 1; }
  binaries+=("$package:$binary")
done

for instant in "$weekend" "$weekday"; do
  # An offset rather than an absolute start: every process (the test and the servers it
  # spawns later) then reads the same moving clock, as on a real machine.
  offset=$(( $(date -u -d "${instant}Z" +%s) - $(date -u +%s) ))
  echo "== time-dependent tests at $instant UTC ($(TZ=Asia/Tokyo date -d "${instant}Z" '+%a %H:%M JST'))"
  for entry in "${binaries[@]}"; do
    package="${entry%%:*}"; binary="${entry#*:}"
    # Test binaries expect to run from their package directory, as cargo runs them.
    dir=$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys
m = json.load(sys.stdin)
print([p['manifest_path'] for p in m['packages'] if p['name'] == '$package'][0].rsplit('/', 1)[0])")
    echo "-- $(basename "$binary")"
    (cd "$dir" && FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 TZ=UTC \
      faketime -f "+${offset}s" "$binary" --quiet)
  done
done
