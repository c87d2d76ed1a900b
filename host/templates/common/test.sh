#!/usr/bin/env bash
# Builds {{name}} with `wasmrtc build`, then runs it offline with `wasmrtc run` over a
# generated input and checks what it produces.
# Usage: ./test.sh      (WASMRTC=/path/to/wasmrtc to use another binary than the one on PATH)
set -euo pipefail
cd "$(dirname "$0")"
wasmrtc="${WASMRTC:-wasmrtc}"
handler=target/wasmrtc/{{name}}.wasm
work=target/test
mkdir -p "$work"

"$wasmrtc" build
{{test}}
echo "test.sh: passed"
