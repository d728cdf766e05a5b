#!/usr/bin/env bash
# Idempotent set-up: Debian packages (when root), the venv, CPU torch where there is no GPU,
# and the project with its test extras. Re-running does nothing once everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBS="libchromaprint1 libchromaprint-tools"
# Only the tests need a PostgreSQL server (the Dagster instance on Postgres); they skip without it.
OPTIONAL_DEBS="postgresql"

missing_debs() {
  local missing=""
  for p in ${1:-$DEBS}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  echo "$missing"
}

missing=$(missing_debs)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "linernotes: installing Debian packages:$missing"
    (apt-get install -y -qq $missing >/dev/null 2>&1) || { apt-get update -qq && apt-get install -y -qq $missing; }
  else
    echo "linernotes: missing Debian packages:$missing" >&2
    echo "linernotes: run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

missing=$(missing_debs "$OPTIONAL_DEBS")
if [ -n "$missing" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "linernotes: installing Debian packages:$missing"
    (apt-get install -y -qq $missing >/dev/null 2>&1) || { apt-get update -qq && apt-get install -y -qq $missing; } \
      || echo "linernotes: could not install$missing; the PostgreSQL instance test will be skipped" >&2
  else
    echo "linernotes: optional Debian packages missing:$missing (the PostgreSQL instance test will be skipped)" >&2
    echo "linernotes: to run it: sudo apt-get install -y$missing" >&2
  fi
fi

# The web app's browser tests drive Debian's chromium through Playwright; a browser is never downloaded.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
missing=$(missing_debs "chromium")
if [ -n "$missing" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "linernotes: installing Debian packages:$missing (for the web app's browser tests)"
    (apt-get install -y -qq $missing >/dev/null 2>&1) || { apt-get update -qq && apt-get install -y -qq $missing; } \
      || echo "linernotes: could not install$missing; tests/web/test_browser.py will fail until it is" >&2
  else
    echo "linernotes: Debian package chromium is missing: the web app's browser tests (tests/web/test_browser.py)" >&2
    echo "linernotes: need /usr/bin/chromium; run: sudo apt-get install -y chromium" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.linernotes-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/bootstrap.sh ]; then
  exit 0
fi

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q torch==2.13.0
  elif ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q torch==2.13.0
  else
    # No GPU: never fall through to PyPI's multi-GB CUDA build.
    "$VENV/bin/pip" install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"$VENV/bin/pip" install -q -e '.[test]'
touch "$stamp"
