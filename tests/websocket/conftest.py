"""A live broker (daphne, or BROKER_LIVE_SERVER's server) per test module, driven by a real WebSocket client (websockets).

Like the MCP tests: the embedded default on the default run; on the PostgreSQL + Redis run
the server gets a throwaway PostgreSQL database of its own and the real Redis.
"""

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

from devtools.live import BrokerProcess, broker_env, keys_made, manage, throwaway_database

FRAME_TIMEOUT = 10


def stack_from_environment() -> dict[str, str]:
    """The run's stack, for a server of a test's own: PostgreSQL + Redis when the run has them."""
    return {"database_url": os.environ.get("DATABASE_URL", ""), "redis_url": os.environ.get("REDIS_URL", "")}


def uses_postgres_and_redis() -> bool:
    stack = stack_from_environment()
    return stack["database_url"].startswith(("postgres://", "postgresql://")) and bool(stack["redis_url"])


@dataclass
class WsClient:
    """One WebSocket connection, with the frames it received but nobody consumed yet."""

    connection: Any
    session_id: str = ""
    token: str = ""
    welcome: dict = field(default_factory=dict)
    backlog: list[dict] = field(default_factory=list)

    async def send(self, frame: dict) -> None:
        await self.connection.send(json.dumps(frame))

    async def next(self, kind: str | None = None, timeout: float = FRAME_TIMEOUT, **match: Any) -> dict:
        """The next frame of type `kind` (and matching fields), keeping others for later."""
        for i, frame in enumerate(self.backlog):
            if _matches(frame, kind, match):
                return self.backlog.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.connection.recv())
                if _matches(frame, kind, match):
                    return frame
                self.backlog.append(frame)

    async def request(self, frame: dict, timeout: float = FRAME_TIMEOUT) -> dict:
        """Send a frame with a request id and return the result or error frame that answers it."""
        request_id = f"r{id(frame)}"
        await self.send({**frame, "request_id": request_id})
        return await self.next(timeout=timeout, request_id=request_id)

    async def messages(self, count: int, timeout: float = FRAME_TIMEOUT) -> list[dict]:
        return [(await self.next("message", timeout=timeout))["message"] for _ in range(count)]

    async def ack(self, messages: list[dict]) -> dict:
        return await self.request({"type": "ack", "message_ids": [m["message_id"] for m in messages]})


def _matches(frame: dict, kind: str | None, match: dict) -> bool:
    return (kind is None or frame.get("type") == kind) and all(frame.get(k) == v for k, v in match.items())


@dataclass
class LiveBroker:
    server: BrokerProcess
    admin_key: str
    agent_key: str
    other_project_key: str

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @asynccontextmanager
    async def connect(self, key: str | None = None, *, in_hello: bool = False, **hello: Any) -> AsyncIterator[WsClient]:
        """A connected session: the key in the Authorization header (or in the hello frame)."""
        key = key or self.agent_key
        headers = {} if in_hello else {"Authorization": f"Bearer {key}"}
        async with websockets.connect(self.ws_url, additional_headers=headers, max_size=None) as connection:
            client = WsClient(connection)
            welcome = await client.request({"type": "hello", **({"key": key} if in_hello else {}), **hello})
            assert welcome["type"] == "welcome", welcome
            client.session_id, client.token = welcome["session_id"], welcome.get("session_token", "")
            client.welcome = welcome
            yield client

    @asynccontextmanager
    async def raw(self, **headers: str) -> AsyncIterator[WsClient]:
        async with websockets.connect(self.ws_url, additional_headers=headers, max_size=None) as connection:
            yield WsClient(connection)

    def rest(self, key: str | None = None, session_token: str = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.agent_key}"}
        if session_token:
            headers["X-Session-Token"] = session_token
        return httpx.Client(base_url=self.server.http_url, headers=headers, timeout=30)

    async def wait_for_status(self, session_id: str, status: str, timeout: float = FRAME_TIMEOUT) -> None:
        """Wait until the server has caught up with a close (it processes it after the client is done)."""
        with self.rest() as rest:
            async with asyncio.timeout(timeout):
                while rest.get(f"/api/v1/sessions/{session_id}/").json()["status"] != status:
                    await asyncio.sleep(0.05)

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change project alpha's settings as an operator would (raising a quota is theirs); returns them as they were."""
        with self.rest(self.admin_key) as admin:
            before = admin.get("/api/v1/projects/alpha/", params={"include_config": "true"}).json()["config"]
        manage(self.server.env, "broker_project", "configure", "--id", "alpha",
               *(arg for name, value in config.items() for arg in ("--set", f"{name}={value}")))
        self._wait_until_served(admin_config=config)
        return {name: before[name] for name in config}

    def _wait_until_served(self, admin_config: dict[str, Any]) -> None:
        """A change made by another process reaches this server's cached keys within a second
        (projects.credentials; on the in-memory layer no event carries it): wait until it answers with it."""
        deadline = time.monotonic() + 5
        with self.rest(self.admin_key) as admin:
            while time.monotonic() < deadline:
                served = admin.get("/api/v1/projects/alpha/", params={"include_config": "true"}).json()["config"]
                if all(str(served[name]).lower() == str(value).lower() for name, value in admin_config.items()):
                    return
                time.sleep(0.1)
        raise AssertionError(f"the server did not take {admin_config} within 5 s")

    @contextmanager
    def configured(self, **config: Any) -> Iterator[None]:
        """Project alpha with these settings for the block, as it was afterwards (the server is per module)."""
        before = self.configure(**config)
        try:
            yield
        finally:
            self.configure(**before)


def serve(tmp_path, database_url: str = "", redis_url: str = "", *, migrate: bool = True,
          **extra: str) -> tuple[BrokerProcess, dict]:
    """A broker process on the given stack, not started; migrated unless the caller migrates with its keys
    (devtools.live.keys_made)."""
    env = broker_env(tmp_path, database_url=database_url, redis_url=redis_url, **extra)
    if migrate:
        manage(env, "migrate", "--noinput", "-v", "0")
    return BrokerProcess(env, tmp_path / "daphne.log"), env


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory) -> LiveBroker:
    stack = stack_from_environment()
    database_url = stack["database_url"]
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url, prefix="broker_ws") as url:
            yield from _serve_module(tmp_path_factory, url, stack["redis_url"])
    else:
        yield from _serve_module(tmp_path_factory, "", "")


def _serve_module(tmp_path_factory, database_url: str, redis_url: str):
    server, env = serve(tmp_path_factory.mktemp("broker"), database_url, redis_url, migrate=False)
    admin_key, agent_key, other_key = keys_made(
        env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
        ["broker_key", "create", "--project", "alpha", "--role", "agent"],
        ["broker_project", "create", "--id", "beta", "--name", "Beta"])
    server.start()
    try:
        yield LiveBroker(server, admin_key, agent_key, other_key)
    finally:
        server.stop(signal.SIGTERM)
    log_text = server.log_text()
    assert "Traceback" not in log_text, log_text[-5000:]
