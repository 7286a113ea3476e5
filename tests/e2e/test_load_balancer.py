"""Two broker processes on PostgreSQL + Redis behind a real HAProxy, with the checked-in deploy/haproxy.cfg.

Through the balancer: an MCP conversation on the session-based protocol (each client's requests
must reach the process holding its Mcp-Session-Id: the config's stickiness), a WebSocket
conversation between sockets the balancer put on different processes, and a REST long poll.
Without HAProxy this test is skipped with the command to install it, except where
BROKER_REQUIRE_TOOLS=1 (as .ci/run sets after installing it).
"""

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import httpx2
import pytest
import websockets
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import ROOT, BrokerProcess, broker_env, free_port, keys_made, throwaway_database
from tests.mcp.helpers import call
from tests.websocket.conftest import stack_from_environment, uses_postgres_and_redis

HAPROXY = shutil.which("haproxy")
CONFIG = ROOT / "deploy" / "haproxy.cfg"

pytestmark = pytest.mark.skipif(not uses_postgres_and_redis(),
                                reason="processes behind a balancer share PostgreSQL and Redis: the .ci/run second pass")
if HAPROXY is None and uses_postgres_and_redis():
    if os.environ.get("BROKER_REQUIRE_TOOLS") == "1":
        raise RuntimeError("BROKER_REQUIRE_TOOLS=1 but HAProxy is not installed: apt-get install -y haproxy")
    pytestmark = pytest.mark.skip(reason="HAProxy is not installed (apt-get install -y haproxy); .ci/run installs it")


class Balancer:
    def __init__(self, brokers: list[BrokerProcess], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "BALANCER_BIND": f"127.0.0.1:{self.port}",
                    **{f"BROKER_{n}": f"127.0.0.1:{b.port}" for n, b in enumerate(brokers, 1)}}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Balancer":
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(CONFIG)], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        while seen != {"broker1", "broker2"}:  # both processes passed the balancer's health check
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"balancer never reached both processes: {seen}"
            try:
                seen.add(httpx.get(f"{self.url}/healthz", timeout=2).headers.get("x-broker-process", ""))
            except httpx.HTTPError:
                pass
            seen.discard("")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    stack = stack_from_environment()
    with throwaway_database(stack["database_url"], prefix="broker_lb") as url:
        dirs = [tmp_path_factory.mktemp(name) for name in ("one", "two")]
        envs = [broker_env(d, database_url=url, redis_url=stack["redis_url"]) for d in dirs]
        [key] = keys_made(envs[0], ["broker_project", "create", "--id", "alpha", "--name", "Alpha"])
        brokers = [BrokerProcess(env, d / "daphne.log") for env, d in zip(envs, dirs, strict=True)]
        balancer = Balancer(brokers, dirs[0] / "haproxy.log")
        try:  # whatever fails to start, nothing started is left running
            for broker in brokers:
                broker.start()
            yield balancer.start(), key
        finally:
            balancer.stop()
            for broker in brokers:
                broker.stop()
        for broker in brokers:
            assert "Traceback" not in broker.log_text(), broker.log_text()[-5000:]


async def test_an_mcp_conversation_through_the_balancer_stays_on_each_clients_process(balanced):
    balancer, key = balanced

    def client():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=60))
        return http, Client(streamable_http_client(f"{balancer.url}/mcp", http_client=http), mode="legacy")

    (alice_http, alice), (bob_http, bob) = client(), client()
    async with alice_http, bob_http, alice, bob:
        await call(alice, "connect_session", name="alice")
        await call(bob, "connect_session", name="bob")
        for n in range(5):  # every call of a session is answered by the process that holds its Mcp-Session-Id
            waiting = asyncio.create_task(call(bob, "receive_messages", wait_seconds=10, auto_ack=True))
            await asyncio.sleep(0.2)
            await call(alice, "send_message", recipient_id="bob", payload={"n": n})
            inbox = await asyncio.wait_for(waiting, 15)
            assert [m["payload"] for m in inbox["messages"]] == [{"n": n}]


async def _socket_on(balancer: Balancer, key: str, process: str, name: str):
    """A WebSocket through the balancer that it put on `process` (round robin: a few tries at most)."""
    for _ in range(10):
        socket = await websockets.connect(f"ws://127.0.0.1:{balancer.port}/ws/sessions/",
                                          additional_headers={"Authorization": f"Bearer {key}"})
        if socket.response.headers.get("x-broker-process") == process:
            await socket.send(json.dumps({"type": "hello", "name": name}))
            while json.loads(await socket.recv())["type"] != "welcome":
                pass
            return socket
        await socket.close()
    raise AssertionError(f"the balancer never chose {process}")


async def test_websockets_on_two_processes_talk_through_the_balancer(balanced):
    balancer, key = balanced
    sender = await _socket_on(balancer, key, "broker1", "ws-sender")
    recipient = await _socket_on(balancer, key, "broker2", "ws-recipient")
    try:
        await sender.send(json.dumps({"type": "send", "recipient_id": "ws-recipient", "payload": {"hello": 2}}))
        while True:
            frame = json.loads(await asyncio.wait_for(recipient.recv(), 15))
            if frame["type"] == "message":
                break
        assert frame["message"]["payload"] == {"hello": 2}
    finally:
        await sender.close()
        await recipient.close()


def test_a_rest_long_poll_through_the_balancer_hears_a_send_made_on_any_process(balanced):
    balancer, key = balanced
    with httpx.Client(base_url=f"{balancer.url}/api/v1", headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as rest:
        waiter = rest.post("/sessions/", json={"name": "poller"}).json()
        sender = rest.post("/sessions/", json={"name": "poll-sender"}).json()

        async def poll_and_send():
            async with httpx.AsyncClient(base_url=f"{balancer.url}/api/v1", timeout=30,
                                         headers={"Authorization": f"Bearer {key}",
                                                  "X-Session-Token": waiter["session_token"]}) as poller:
                waiting = asyncio.create_task(poller.post("/messages/receive/", json={"wait_seconds": 10}))
                await asyncio.sleep(0.5)
                sent = await asyncio.to_thread(rest.post, "/messages/", json={"recipient_id": "poller",
                                                                              "payload": {"q": 3}},
                                               headers={"X-Session-Token": sender["session_token"]})
                assert sent.status_code == 201, sent.text
                return (await asyncio.wait_for(waiting, 15)).json()

        answer = asyncio.run(poll_and_send())
    assert [m["payload"] for m in answer["messages"]] == [{"q": 3}]
