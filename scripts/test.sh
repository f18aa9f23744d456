#!/usr/bin/env bash
# Set up, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The browser tests (tests/browser) drive Debian's chromium through Playwright; Playwright's
# own browser downloads are never used. Install it where we can: CI runs as root.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing chromium for the browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: /usr/bin/chromium is missing and this is not root, so the browser tests" \
      "will be skipped; install it with: sudo apt-get install chromium" >&2
  fi
fi

exec .venv/bin/python -m pytest "$@"
