#!/usr/bin/env bash
# Builds the JavaScript example handlers into components with componentize-js:
#   examples-guests/target/lang/js-gain.wasm
#   examples-guests/target/lang/js-brightness.wasm
#   examples-guests/target/lang/js-parrot.wasm
# Usage: examples-guests/js/build.sh [example…]   (default: every example)
# The toolchain (componentize-js, pinned in package.json / package-lock.json, in
# ./node_modules) comes from scripts/setup-languages.sh (`npm ci` here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! node "$here/check-install.mjs"; then
  echo "error: the JavaScript toolchain is missing; run scripts/setup-languages.sh" >&2
  exit 2
fi

exec node "$here/build.mjs" "$@"
