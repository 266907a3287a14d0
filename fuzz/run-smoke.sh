#!/usr/bin/env bash
# Short smoke run of every fuzz target (stable toolchain, so no sanitizer). Installs
# cargo-fuzz from crates.io when missing. FUZZ_SECONDS sets the time per target (default 20).
# A crash fails the run; the crashing input is left in fuzz/artifacts/<target>/. Every target
# listed by `cargo fuzz list` runs; fuzz/README.md says what each covers and records the longer
# runs.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "run-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
for target in $(cargo fuzz list); do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "corpus/$target"
  # The first directory collects new inputs (ignored by git); seeds/<target>/, when present,
  # holds committed starting points.
  dirs=("corpus/$target")
  if [ -d "seeds/$target" ]; then dirs+=("seeds/$target"); fi
  cargo fuzz run "$target" --sanitizer none -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    "${dirs[@]}"
done
