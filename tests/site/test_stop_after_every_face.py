"""SIGTERM stops the server within the grace period plus a few seconds, whatever the faces did before.

Found in a probe: after MCP calls, long polls and WebSockets, daphne logged "Killed 0 pending
application instances" and then stayed up, its main thread waiting on an idle worker thread.
This drives every face of a live daphne (MCP in both protocol modes with a long receive in
flight and the inbox resource read, REST long polls, WebSockets, the admin login page), then
stops it. (The SDK reads a resource on an AnyIO worker thread, which ends only when the task
that runs the MCP session manager ends.)
"""

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import httpx2
import pytest
import websockets
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import ROOT, BrokerProcess, broker_env, keys_made

GRACE = 3
# Beyond the grace: closing handshakes and the interpreter's exit ("a few seconds"), generous for a loaded machine.
SLACK = 10


@pytest.fixture
def broker(tmp_path):
    env = broker_env(tmp_path, BROKER_SHUTDOWN_GRACE_SECONDS=str(GRACE))
    _, key = keys_made(env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
                       ["broker_key", "create", "--project", "alpha", "--role", "agent"])
    server = BrokerProcess(env, tmp_path / "daphne.log").start()
    try:
        yield server, key
    finally:
        server.stop(signal.SIGKILL)


async def _mcp(url: str, key: str, mode: str, name: str, wait_seconds: int) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client:
        connected = (await client.call_tool("connect_session", {"name": name})).structured_content
        await client.call_tool("list_sessions", {})
        if "inbox" in connected:  # session-based connections only; the SDK reads it on a worker thread
            await client.read_resource(connected["inbox"])
        await client.call_tool("receive_messages", {"wait_seconds": wait_seconds,
                                                    "session_token": connected["session_token"]})


def _rest_long_poll(url: str, key: str, name: str, wait_seconds: int) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as rest:
        token = rest.post("/api/v1/sessions/", json={"name": name}).json()["session_token"]
        rest.post("/api/v1/messages/receive/", headers={"X-Session-Token": token},
                  json={"wait_seconds": wait_seconds})


async def _websocket(ws_url: str, key: str) -> None:
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        await ws.send('{"type": "hello", "name": "socket"}')
        await ws.recv()
        await ws.send('{"type": "heartbeat", "request_id": 1}')
        await ws.recv()


async def _background(coroutine) -> None:
    """A call the stop may cut short: whatever the client sees then is fine, only the server's exit is pinned."""
    try:
        await coroutine
    except Exception:
        pass


async def test_sigterm_stops_the_server_in_time_after_every_face_was_used(broker):
    server, key = broker
    url = server.http_url
    # Finished calls on every face first: these leave behind whatever threads each face starts.
    await _mcp(url, key, "legacy", "mcp-legacy", 0)
    await _mcp(url, key, "auto", "mcp-auto", 0)
    await asyncio.to_thread(_rest_long_poll, url, key, "rest-short", 1)
    await _websocket(server.ws_url, key)
    async with httpx.AsyncClient(base_url=url) as admin:
        assert (await admin.get("/admin/login/")).status_code == 200
    # Then long waits still in flight when the stop comes.
    pending = [asyncio.create_task(_background(_mcp(url, key, "legacy", "mcp-waiting", 30))),
               asyncio.create_task(_background(_mcp(url, key, "auto", "mcp-waiting-auto", 30))),
               asyncio.create_task(_background(asyncio.to_thread(_rest_long_poll, url, key, "rest-waiting", 30)))]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as rest:
        deadline = time.monotonic() + 30
        waiting = {"mcp-waiting", "mcp-waiting-auto", "rest-waiting"}
        while not waiting <= {s["name"] for s in rest.get("/api/v1/sessions/").json()["sessions"]}:
            assert time.monotonic() < deadline, "the long waits did not start"
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # the waits are inside their receives now

    started = time.monotonic()
    exit_code = await asyncio.to_thread(server.stop, signal.SIGTERM, 60)
    took = time.monotonic() - started
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)

    assert exit_code == server.command.sigterm_exit_code, (
        f"exit code {exit_code} after {took:.1f} s:\n{server.log_text()[-3000:]}")
    assert took < GRACE + SLACK, f"the stop took {took:.1f} s:\n{server.log_text()[-3000:]}"


def test_a_stop_ends_the_process_even_when_a_thread_would_hold_it_for_ever(tmp_path):
    """The last resort: a non-daemon thread nobody can end must not keep a stopping process alive."""
    script = ("import threading, django; django.setup()\n"
              "from broker_site.startup import _exit_when_overdue\n"
              "threading.Thread(target=threading.Event().wait, name='stuck').start()\n"
              "_exit_when_overdue(1)\n")
    env = broker_env(tmp_path, LOG_LEVEL="INFO")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "shutdown_overdue" in done.stderr and "stuck" in done.stderr
