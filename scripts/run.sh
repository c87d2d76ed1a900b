#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is missing, builds the example
# handlers and the host, and checks the `gain` handler.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd examples-guests && cargo build --release --quiet --target wasm32-wasip2)
exec cargo run --release --quiet -p wasmrtc -- check "${1:-examples-guests/target/wasm32-wasip2/release/gain.wasm}"
