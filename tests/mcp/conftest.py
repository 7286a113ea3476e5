"""A live broker under daphne, once per test module, driven over HTTP by the official MCP client.

On the default run the server uses the embedded default in a temporary directory (its own
SQLite file, the in-memory channel layer). When the run has DATABASE_URL (PostgreSQL) and
REDIS_URL, the server gets a throwaway PostgreSQL database of its own on that server, and
the real Redis, so the MCP tests cover both stacks. Keys come from the management commands,
as a newcomer would make them.
"""

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import free_port, throwaway_database, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
SHOWN_ONCE = re.compile(r"\(shown once\):\s+(\S+)")


@dataclass
class LiveBroker:
    url: str
    admin_key: str
    agent_key: str
    other_project_key: str
    operator_key: str

    @asynccontextmanager
    async def client(self, key: str | None = None, *, mode: str = "legacy", **headers: str) -> AsyncIterator[Client]:
        """An SDK client on /mcp: mode "legacy" is the session-based protocol, "auto" the current one."""
        headers = {"Authorization": f"Bearer {key or self.agent_key}", **headers}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
        async with http, Client(streamable_http_client(self.url, http_client=http), mode=mode) as client:
            yield client


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _new_key(env: dict[str, str], *args: str) -> str:
    return SHOWN_ONCE.search(_manage(env, *args)).group(1)


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory) -> LiveBroker:
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url) as url:
            yield from _serve(tmp_path_factory, {"DATABASE_URL": url, "REDIS_URL": os.environ.get("REDIS_URL", "")})
    else:
        yield from _serve(tmp_path_factory, {})


def _serve(tmp_path_factory, stack: dict[str, str]):
    var_dir = tmp_path_factory.mktemp("broker")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({k: v for k, v in stack.items() if v})
    env.update(DJANGO_SETTINGS_MODULE="broker_site.settings", SECRET_KEY="mcp-test-secret", BROKER_VAR_DIR=str(var_dir),
               LOG_LEVEL="WARNING")
    _manage(env, "migrate", "--noinput", "-v", "0")
    admin_key = _new_key(env, "broker_project", "create", "--id", "alpha", "--name", "Alpha")
    agent_key = _new_key(env, "broker_key", "create", "--project", "alpha", "--role", "agent")
    other_key = _new_key(env, "broker_project", "create", "--id", "beta", "--name", "Beta")
    _new_key(env, "broker_project", "create", "--id", "ops", "--name", "Ops")
    operator_key = _new_key(env, "broker_key", "create", "--project", "ops", "--role", "operator")

    port = free_port()
    log_path = var_dir / "daphne.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                   "broker_site.asgi:application"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(base, server)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(log_path.read_text()) from exc
        yield LiveBroker(f"{base}/mcp", admin_key, agent_key, other_key, operator_key)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    # Every failure the tests provoked was answered as a clear error, never as a crash.
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text[-5000:]
