#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, checks
# formatting and lints, then runs every test in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --workspace 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
