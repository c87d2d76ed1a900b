#!/usr/bin/env bash
# Builds the Python example handlers into components with componentize-py:
#   examples-guests/target/lang/python-gain.wasm
#   examples-guests/target/lang/python-brightness.wasm
#   examples-guests/target/lang/python-parrot.wasm
# An example whose app.py assigns `Turns` at module level (`Turns = export_turns(…)`)
# is built against the `turn-taking-component` world, the others against
# `handler-component`.
# Usage: examples-guests/python/build.sh [example…]   (default: every example)
# The toolchain (componentize-py, pinned in requirements.txt, in ./.venv) comes
# from scripts/setup-languages.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/examples-guests/target/lang"

cpy="$here/.venv/bin/componentize-py"
want="$(sed -n 's/^componentize-py==//p' "$here/requirements.txt")"
if ! have="$("$cpy" --version 2>/dev/null)" || [[ "$have" != "componentize-py $want" ]]; then
  echo "error: componentize-py $want is not installed in $here/.venv" >&2
  echo "       run scripts/setup-languages.sh" >&2
  exit 2
fi

examples=("$@")
((${#examples[@]})) || examples=(gain brightness parrot)
mkdir -p "$out"
for ex in "${examples[@]}"; do
  world=handler-component
  if grep -Eq '^Turns[[:space:]]*=' "$here/$ex/app.py"; then
    world=turn-taking-component
  fi
  # -p: the example's folder (its `app` module), then this folder (wasmrtc_handler.py).
  "$cpy" -q -d "$root/wit" -w "$world" componentize app \
    -p "$here/$ex" -p "$here" -o "$out/python-$ex.wasm.tmp"
  mv "$out/python-$ex.wasm.tmp" "$out/python-$ex.wasm"
  echo "built $out/python-$ex.wasm ($world, $(stat -c %s "$out/python-$ex.wasm") bytes)"
done
