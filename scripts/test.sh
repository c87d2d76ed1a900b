#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, checks
# formatting and lints, then runs every test in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
