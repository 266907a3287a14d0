#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine of this project's kind: installs what the
# tests need (Debian and Python packages), makes sure PostgreSQL answers on 127.0.0.1:5432, then
# runs the whole suite — SQLite and PostgreSQL, the real PC/SC stack, poppler and pyHanko as
# outside judges, and the Python contract check — then the time-dependent tests again under a
# faked clock at a weekend night and a weekday night.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/ensure-postgres.sh

export KIOSK_TEST_POSTGRES_URL="${KIOSK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
# --all-features turns on the PC/SC transport, whose tests start their own pcscd.
cargo test --workspace --all-features --all-targets
cargo test --workspace --all-features --doc
# The time-dependent tests again at a weekend night and a weekday night (faked clock).
bash scripts/test-at-night.sh
if [ -x fuzz/run-smoke.sh ]; then
  bash fuzz/run-smoke.sh
fi
