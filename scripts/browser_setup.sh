#!/usr/bin/env bash
# Install what tests/test_browser.py needs: Debian's `chromium` package and the `playwright`
# Python package in the venv, which drives that chromium through its executable path
# (`playwright install`, a browser download, is never run). Idempotent; run by `make browser`,
# which `make test` depends on.
#
# Where the OS package cannot be installed (no apt-get, not root and no sudo, no network), this
# says why and exits 0: the browser test then skips with the same reason, and the rest runs.
# LABKIT_CHROMIUM=/path/to/chromium (or Chrome) uses a browser installed some other way.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VENV:-.venv}
py="$VENV/bin/python"
say() { printf 'labkit browser: %s\n' "$*"; }

if ! "$py" -c 'import playwright' 2>/dev/null; then
  say "installing playwright into $VENV"
  "$py" -m pip install --disable-pip-version-check -q "playwright>=1.45" \
    || say "could not install playwright: the browser test will skip"
fi

found() {
  [ -n "${LABKIT_CHROMIUM:-}" ] && [ -x "$LABKIT_CHROMIUM" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1
}

if found; then
  say "chromium is installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get here: install Chromium or Chrome yourself (or set LABKIT_CHROMIUM); the browser test skips until then"
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    say "installing chromium needs root: run \`sudo apt-get install -y chromium\`; the browser test skips until then"
    exit 0
  fi
fi
say "installing Debian's chromium package (apt-get, once per machine)"
if "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  "${sudo[@]}" apt-get install -y -qq chromium >/dev/null; then
  say "chromium $(chromium --version 2>/dev/null | awk '{print $2}') installed"
else
  say "apt-get could not install chromium: the browser test skips until it is installed"
fi
exit 0
