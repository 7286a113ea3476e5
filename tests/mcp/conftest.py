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
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _new_key(env: dict[str, str], *args: str) -> str:
    return SHOWN_ONCE.search(_manage(env, *args)).group(1)


@contextmanager
def throwaway_database(url: str):
    """A fresh PostgreSQL database on the server `url` names, dropped afterwards; yields its URL."""
    name = f"broker_live_{uuid.uuid4().hex[:12]}"
    admin_url = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

    port = _free_port()
    log_path = var_dir / "daphne.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                   "broker_site.asgi:application"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
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
