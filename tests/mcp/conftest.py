"""A live broker under daphne (or BROKER_LIVE_SERVER's server, or a test's own), once per test module, driven over HTTP by
the official MCP client.

On the default run the server uses the embedded default in a temporary directory (its own
SQLite file, the in-memory channel layer). When the run has DATABASE_URL (PostgreSQL) and
REDIS_URL, the server gets a throwaway PostgreSQL database of its own on that server, and
the real Redis, so the MCP tests cover both stacks. Keys come from the management commands,
as a newcomer would make them.
"""

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import BrokerProcess, ServerCommand, broker_env, four_keys, throwaway_database
from tests.live import server_sql


@dataclass
class LiveBroker:
    url: str
    admin_key: str
    agent_key: str
    other_project_key: str
    operator_key: str
    process: BrokerProcess

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: its database, Redis, settings."""
        return self.process.env

    @asynccontextmanager
    async def client(self, key: str | None = None, *, mode: str = "legacy", message_handler=None,
                     client_class: type[Client] = Client, extensions=None, **headers: str) -> AsyncIterator[Client]:
        """An SDK client on /mcp: mode "legacy" is the session-based protocol, "auto" the current one."""
        headers = {"Authorization": f"Bearer {key or self.agent_key}", **headers}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
        transport = streamable_http_client(self.url, http_client=http)
        async with http, client_class(transport, mode=mode, message_handler=message_handler,
                                      extensions=extensions) as client:
            yield client

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """One statement on the server's database (tests.live.server_sql): to move time on, never to set up state."""
        return server_sql(self.env.get("DATABASE_URL", ""), self.env["BROKER_VAR_DIR"], statement, params)

    def stop(self, timeout: float = 20) -> int | None:
        return self.process.stop(timeout=timeout)

    def log(self) -> str:
        return self.process.log_text()


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory) -> LiveBroker:
    yield from serve_live_broker(tmp_path_factory)


def serve_live_broker(tmp_path_factory, server_command: ServerCommand | None = None, **settings: str):
    """Generator for a module fixture: a broker under `server_command(port)` (the live tests' server,
    devtools.live.live_server_command, unless given) on the run's stack, with the environment `settings` besides."""
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url) as url:
            yield from _serve(tmp_path_factory, url, os.environ.get("REDIS_URL", ""), server_command, settings)
    else:
        yield from _serve(tmp_path_factory, "", "", server_command, settings)


def _serve(tmp_path_factory, database_url: str, redis_url: str, server_command: ServerCommand | None,
           settings: dict[str, str]):
    var_dir = tmp_path_factory.mktemp("broker")
    env = broker_env(var_dir, database_url=database_url, redis_url=redis_url, **settings)
    admin_key, agent_key, other_key, operator_key = four_keys(env, ("beta", "Beta"))
    process = BrokerProcess(env, var_dir / "server.log", command=server_command)
    yield from _run_until_done(LiveBroker("", admin_key, agent_key, other_key, operator_key, process))


@contextmanager
def another_process(broker: LiveBroker, server_command: ServerCommand | None = None) -> Iterator[LiveBroker]:
    """A second server process beside `broker`, on the same database (and Redis, if any): the same keys work there."""
    process = BrokerProcess(broker.env, broker.process.log_path.with_name("another-server.log"),
                            command=server_command)
    yield from _run_until_done(replace(broker, process=process))


def _run_until_done(broker: LiveBroker):
    broker.process.start()
    broker = replace(broker, url=f"{broker.process.http_url}/mcp")
    try:
        yield broker
    finally:
        broker.stop()
    # Every failure the tests provoked was answered as a clear error, never as a crash.
    log_text = broker.log()
    assert "Traceback" not in log_text, log_text[-5000:]
