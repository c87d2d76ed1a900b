#!/usr/bin/env bash
# Installs everything wasmrtc needs beyond a Rust toolchain, Python and Node:
# the wasm32-wasip2 target, the C libraries and tools the codecs build against,
# espeak-ng (the turn-taking tests speak synthesized sentences), and, with --all (what the test suite needs), Chromium, coturn and
# playwright-core for the browser tests and the Python, JavaScript and C handler toolchains.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null

apt_packages=(cmake pkg-config libvpx-dev nasm clang espeak-ng)
if [[ "${1:-}" == "--all" || "${1:-}" == "--browser" ]]; then
  # coturn: the TURN relay the browser tests connect through; iproute2: their network namespaces.
  apt_packages+=(chromium coturn iproute2)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--all" || "${1:-}" == "--browser" ]] && [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
fi

if [[ "${1:-}" == "--all" ]]; then
  bash scripts/setup-languages.sh
fi
