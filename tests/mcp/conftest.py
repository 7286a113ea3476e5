"""A live broker under daphne (or another ASGI server), once per test module, driven over HTTP by
the official MCP client.

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
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import free_port, throwaway_database, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
SHOWN_ONCE = re.compile(r"\(shown once\):\s+(\S+)")


ServerCommand = Callable[[int], list[str]]


def daphne_command(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "broker_site.asgi:application"]


@dataclass
class LiveBroker:
    url: str
    admin_key: str
    agent_key: str
    other_project_key: str
    operator_key: str
    server: subprocess.Popen
    log_path: Path
    env: dict[str, str]  # the server's environment: its database, Redis, settings

    @asynccontextmanager
    async def client(self, key: str | None = None, *, mode: str = "legacy", message_handler=None,
                     **headers: str) -> AsyncIterator[Client]:
        """An SDK client on /mcp: mode "legacy" is the session-based protocol, "auto" the current one."""
        headers = {"Authorization": f"Bearer {key or self.agent_key}", **headers}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
        transport = streamable_http_client(self.url, http_client=http)
        async with http, Client(transport, mode=mode, message_handler=message_handler) as client:
            yield client

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM the server (once) and wait for it; its exit code, or the signal that killed it (negative)."""
        if self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        return self.server.returncode

    def log(self) -> str:
        return self.log_path.read_text()


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _new_key(env: dict[str, str], *args: str) -> str:
    return SHOWN_ONCE.search(_manage(env, *args)).group(1)


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory) -> LiveBroker:
    yield from serve_live_broker(tmp_path_factory, daphne_command)


def serve_live_broker(tmp_path_factory, server_command: ServerCommand):
    """Generator for a module fixture: a broker under `server_command(port)` on the run's stack."""
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url) as url:
            yield from _serve(tmp_path_factory, {"DATABASE_URL": url, "REDIS_URL": os.environ.get("REDIS_URL", "")},
                              server_command)
    else:
        yield from _serve(tmp_path_factory, {}, server_command)


def _serve(tmp_path_factory, stack: dict[str, str], server_command: ServerCommand):
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

    log_path = var_dir / "server.log"
    server, base = _start(server_command, env, log_path)
    broker = LiveBroker(f"{base}/mcp", admin_key, agent_key, other_key, operator_key, server, log_path, env)
    yield from _run_until_done(broker, base)


@contextmanager
def another_process(broker: LiveBroker, server_command: ServerCommand = daphne_command) -> Iterator[LiveBroker]:
    """A second server process beside `broker`, on the same database (and Redis, if any): the same keys work there."""
    log_path = broker.log_path.with_name("another-server.log")
    server, base = _start(server_command, broker.env, log_path)
    yield from _run_until_done(replace(broker, url=f"{base}/mcp", server=server, log_path=log_path), base)


def _start(server_command: ServerCommand, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen(server_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    return server, f"http://127.0.0.1:{port}"


def _run_until_done(broker: LiveBroker, base: str):
    try:
        try:
            wait_until_healthy(base, broker.server)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(broker.log()) from exc
        yield broker
    finally:
        broker.stop()
    # Every failure the tests provoked was answered as a clear error, never as a crash.
    log_text = broker.log()
    assert "Traceback" not in log_text, log_text[-5000:]
