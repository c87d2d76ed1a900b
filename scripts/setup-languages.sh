#!/usr/bin/env bash
# Installs the toolchains that build the Python, JavaScript and C example handlers
# (examples-guests/{python,js,c}, built by examples-guests/build-languages.sh).
# Idempotent: every step checks first and does nothing when already done.
#
#   Python  componentize-py (PyPI, pinned in examples-guests/python/requirements.txt)
#           into the venv examples-guests/python/.venv
#   JS      componentize-js (npm, pinned in examples-guests/js/package.json and
#           package-lock.json) into examples-guests/js/node_modules, by `npm ci`
#   C       Debian's clang, lld, wasi-libc and wasm32 compiler-rt (apt);
#           wit-bindgen-cli and wasm-tools (crates.io, pinned in
#           examples-guests/c/tools.env) into examples-guests/c/.tools;
#           the WASI preview1 reactor adapter from the crates.io crate
#           wasi-preview1-component-adapter-provider, written to
#           examples-guests/c/.tools/wasi_snapshot_preview1.reactor.wasm
#           (WASMRTC_TOOLS_DIR=DIR puts these elsewhere, e.g. a directory that
#           outlives the clone, so that a fresh checkout does not spend ~15 min
#           of a 2-core machine compiling them again; build.sh honours it too)
#
# Needs: a Rust toolchain, python3 (with venv), node and npm, apt.
# Only crates.io, PyPI, npm and Debian's archive are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
guests=examples-guests

say() { echo "setup-languages: $*"; }

# --- apt: C toolchain for wasm32-wasi ----------------------------------------
apt_packages=(clang lld wasi-libc libclang-rt-dev-wasm32)
# Debian's python3 needs python3-venv for `python3 -m venv` (a pyenv Python does not).
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python: componentize-py in a project-local venv -------------------------
py="$guests/python"
want_py="$(sed -n 's/^componentize-py==//p' "$py/requirements.txt")"
if [[ "$("$py/.venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $want_py" ]]; then
  say "componentize-py $want_py into $py/.venv"
  [[ -x "$py/.venv/bin/pip" ]] || python3 -m venv "$py/.venv"
  "$py/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$py/requirements.txt"
fi

# --- JavaScript: componentize-js from the lock file --------------------------
js="$guests/js"
if ! node "$js/check-install.mjs" 2>/dev/null; then
  say "componentize-js (package-lock.json) into $js/node_modules"
  (cd "$js" && npm ci --no-audit --no-fund --silent)
fi

# --- C: wit-bindgen, wasm-tools and the preview1 adapter ---------------------
c="$guests/c"
# shellcheck source=../examples-guests/c/tools.env
source "$c/tools.env"
tools="${WASMRTC_TOOLS_DIR:-$c/.tools}"
if [[ "$("$tools/bin/wasm-tools" --version 2>/dev/null)" != "wasm-tools $WASM_TOOLS_VERSION"* ]]; then
  say "wasm-tools $WASM_TOOLS_VERSION into $tools (cargo install, a few minutes)"
  cargo install --quiet --locked --force --root "$tools" "wasm-tools@$WASM_TOOLS_VERSION" \
    --no-default-features --features component,validate,print,parse,wit-component
fi
if [[ "$("$tools/bin/wit-bindgen" --version 2>/dev/null)" != "wit-bindgen-cli $WIT_BINDGEN_VERSION"* ]]; then
  say "wit-bindgen-cli $WIT_BINDGEN_VERSION into $tools (cargo install, a few minutes)"
  cargo install --quiet --locked --force --root "$tools" "wit-bindgen-cli@$WIT_BINDGEN_VERSION" \
    --no-default-features --features c
fi
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
stamp="$tools/adapter.version"
if [[ ! -s "$adapter" || "$(cat "$stamp" 2>/dev/null)" != "$ADAPTER_VERSION" ]]; then
  say "preview1 reactor adapter $ADAPTER_VERSION into $adapter"
  grep -q "\"=$ADAPTER_VERSION\"" "$c/adapter/Cargo.toml" || {
    echo "setup-languages: $c/adapter/Cargo.toml does not pin =$ADAPTER_VERSION (tools.env)" >&2
    exit 1
  }
  cargo run --quiet --release --locked --manifest-path "$c/adapter/Cargo.toml" \
    --target-dir "$tools/adapter-target" -- "$adapter"
  echo "$ADAPTER_VERSION" > "$stamp"
fi

say "ready (build with $guests/build-languages.sh)"
