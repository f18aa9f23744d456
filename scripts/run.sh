#!/usr/bin/env bash
# Set up, then serve the site on http://127.0.0.1:8000 on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/secret_key.sh
# Build the local model's fast-loading copy now, not on the first message.
.venv/bin/python manage.py prepare_models
# uvicorn, as in production: faster than runserver's Daphne under load (README, Benchmarks).
# The server loads the model again as it starts, in the background (CHAT_LOCAL_PRELOAD).
address=${ADDRESS:-127.0.0.1:8000}
exec .venv/bin/python -m uvicorn chatsite.asgi:application \
  --host "${address%:*}" --port "${address##*:}" \
  --lifespan off --no-access-log --timeout-graceful-shutdown 5
