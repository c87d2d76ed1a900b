#!/usr/bin/env bash
# Builds the Python, JavaScript and C example handlers into components:
#   examples-guests/target/lang/{python,js}-{gain,brightness,parrot}.wasm and c-flip.wasm
# A component newer than all of its sources (the WIT, the SDK, the example, the
# pinned tool versions, the build script) is left alone; `--force` rebuilds all.
# Exit status 2 means a toolchain is missing: run scripts/setup-languages.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/target/lang"
force=false
[[ "${1:-}" == "--force" ]] && force=true

# stale OUTPUT INPUT…: whether OUTPUT is missing or older than any INPUT file.
stale() {
  local target="$1"; shift
  $force || [[ ! -e "$target" ]] || [[ -n "$(find "$@" -newer "$target" -type f -not -path "*/__pycache__/*" -print -quit)" ]]
}

wit="$root/wit"
py="$here/python"
js="$here/js"
c="$here/c"

for ex in gain brightness parrot; do
  if stale "$out/python-$ex.wasm" "$wit" "$py/wasmrtc_handler.py" "$py/$ex" "$py/requirements.txt" "$py/build.sh"; then
    "$py/build.sh" "$ex"
  fi
done
for ex in gain brightness parrot; do
  if stale "$out/js-$ex.wasm" "$wit" "$js/wasmrtc-handler.js" "$js/$ex" "$js/package.json" "$js/package-lock.json" "$js/build.mjs" "$js/build.sh"; then
    "$js/build.sh" "$ex"
  fi
done
if stale "$out/c-flip.wasm" "$wit" "$c/flip" "$c/tools.env" "$c/build.sh"; then
  "$c/build.sh" flip
fi
ls -l "$out"/{python,js}-{gain,brightness,parrot}.wasm "$out"/c-flip.wasm
