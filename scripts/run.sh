#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is missing, builds the example
# handlers and the host, and serves one handler (default: echo) on 127.0.0.1:8000.
#   scripts/run.sh [HANDLER.wasm] [wasmrtc serve options…]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd examples-guests && cargo build --release --quiet --target wasm32-wasip2)
handler="${1:-examples-guests/target/wasm32-wasip2/release/echo.wasm}"
shift || true
cargo build --release --quiet -p wasmrtc --bin wasmrtc
./target/release/wasmrtc check "$handler"
exec ./target/release/wasmrtc serve "$handler" --listen 127.0.0.1:8000 "$@"
