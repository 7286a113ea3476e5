#!/usr/bin/env bash
# Run the whole test suite. Installs the dev requirements into .venv when needed.
# With DATABASE_URL / REDIS_URL set, the same suite runs against PostgreSQL / Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_python requirements-dev.txt
exec "$PY" -m pytest "$@"
