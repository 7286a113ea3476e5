#!/usr/bin/env bash
# Run the broker on the embedded default: SQLite file in ./var, in-memory channel layer,
# one daphne process on 127.0.0.1:8000. Installs, migrates and bootstraps as needed.
# HOST and PORT move it; DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_python requirements.txt

mkdir -p var
if [ -z "${SECRET_KEY:-}" ]; then
  # A per-checkout secret, made once and kept out of git (var/ is ignored).
  if [ ! -s var/secret_key ]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key)
  fi
  SECRET_KEY=$(cat var/secret_key)
  export SECRET_KEY
fi
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
export BROKER_PUBLIC_URL="${BROKER_PUBLIC_URL:-http://$HOST:$PORT}"

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py broker_bootstrap
cat <<INFO

MCP Broker on $BROKER_PUBLIC_URL
  REST API    $BROKER_PUBLIC_URL/api/v1/    (docs: $BROKER_PUBLIC_URL/api/docs/, schema: /api/schema/)
  MCP         $BROKER_PUBLIC_URL/mcp
  WebSocket   ${BROKER_PUBLIC_URL/http/ws}/ws/sessions/    (frames: README, "WebSockets")
  Admin       $BROKER_PUBLIC_URL/admin/     (make a login: $PY manage.py createsuperuser)
  Health      $BROKER_PUBLIC_URL/healthz and /readyz
Send the key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'. Ctrl-C stops the broker.

INFO
exec "$PY" -m daphne -b "$HOST" -p "$PORT" broker_site.asgi:application
