#!/usr/bin/env bash
# Builds the C example handlers into components:
#   examples-guests/target/lang/c-flip.wasm
# Usage: examples-guests/c/build.sh [example…]   (default: every example)
#
#   1. wit-bindgen c    wit/handler.wit -> handler_component.{h,c} + the component-type object
#   2. clang            wasm32-wasi core module (Debian's clang, lld and wasi-libc), reactor
#   3. wasm-tools       component new, adapting wasi_snapshot_preview1 to WASI 0.2
# The toolchain (versions in tools.env, installed into ./.tools, or into
# $WASMRTC_TOOLS_DIR if set) comes from scripts/setup-languages.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/examples-guests/target/lang"
source "$here/tools.env"
tools="${WASMRTC_TOOLS_DIR:-$here/.tools}"
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
CC="${CC_WASM:-clang}"

missing() {
  echo "error: $1 is not installed" >&2
  echo "       run scripts/setup-languages.sh" >&2
  exit 2
}
[[ "$("$tools/bin/wit-bindgen" --version 2>/dev/null)" == "wit-bindgen-cli $WIT_BINDGEN_VERSION"* ]] \
  || missing "wit-bindgen-cli $WIT_BINDGEN_VERSION (in $tools)"
[[ "$("$tools/bin/wasm-tools" --version 2>/dev/null)" == "wasm-tools $WASM_TOOLS_VERSION"* ]] \
  || missing "wasm-tools $WASM_TOOLS_VERSION (in $tools)"
[[ -s "$adapter" ]] || missing "the preview1 reactor adapter ($adapter)"
command -v "$CC" >/dev/null || missing "clang"
command -v wasm-ld >/dev/null || missing "lld (wasm-ld)"
[[ -e /usr/lib/wasm32-wasi/libc.a ]] || missing "wasi-libc"

examples=("$@")
((${#examples[@]})) || examples=(flip)
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$tools/bin/wit-bindgen" c --out-dir "$work/gen" --world handler-component "$root/wit" >"$work/wit-bindgen.log" 2>&1 \
  || { cat "$work/wit-bindgen.log" >&2; exit 1; }
for ex in "${examples[@]}"; do
  # -mexec-model=reactor: no main(); the host calls the exports after _initialize.
  "$CC" --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
    -Wall -Wextra -Werror -Wno-unused-parameter \
    -I"$work/gen" \
    "$here/$ex/$ex.c" "$work/gen/handler_component.c" \
    "$work/gen/handler_component_component_type.o" \
    -Wl,--strip-all -o "$work/$ex.core.wasm"
  "$tools/bin/wasm-tools" component new "$work/$ex.core.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$work/$ex.wasm"
  "$tools/bin/wasm-tools" validate "$work/$ex.wasm"
  mv "$work/$ex.wasm" "$out/c-$ex.wasm"
  echo "built $out/c-$ex.wasm ($(stat -c %s "$out/c-$ex.wasm") bytes)"
done
