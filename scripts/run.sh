#!/usr/bin/env bash
# Set up, then serve the site on http://127.0.0.1:8000 on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/secret_key.sh
# Build the local model's fast-loading copy now, not on the first message.
.venv/bin/python manage.py prepare_models
exec .venv/bin/python manage.py runserver "${ADDRESS:-127.0.0.1:8000}"
