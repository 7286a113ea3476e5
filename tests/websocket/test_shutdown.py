"""Stopping the server in the middle of a load loses nothing it accepted.

Senders stream `send` frames while the server is stopped (SIGTERM: graceful; SIGKILL: not),
then it starts again on the same database. The recipient resumes with its token and drains:
every message a sender got a result for arrives, and after dropping repeats by message id,
each arrives exactly once.
"""

import asyncio
import base64
import itertools
import json
import os
import signal
from contextlib import AsyncExitStack

import pytest
import websockets

from devtools.live import LOAD_CEILINGS, ServerCommand, keys_made, throwaway_database
from tests.websocket.conftest import LiveBroker, WsClient, serve, stack_from_environment

SENDERS = 3
LOAD_GOING = 50  # accepted sends before the stop


@pytest.fixture
def restartable_broker(tmp_path):
    yield from restartable(tmp_path)


def restartable(tmp_path, command: ServerCommand | None = None):
    """Generator for a fixture: a broker (under `command`, the live tests' server unless given) on the run's
    stack, its log free of tracebacks at the end."""
    database_url, redis_url = stack_from_environment().values()
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url, prefix="broker_ws") as url:
            yield from _broker(tmp_path, url, redis_url, command)
    else:
        yield from _broker(tmp_path, "", "", command)


def _broker(tmp_path, database_url: str, redis_url: str, command: ServerCommand | None):
    server, env = serve(tmp_path, database_url, redis_url, migrate=False, **LOAD_CEILINGS)
    if command is not None:
        server.command = command
    admin_key, agent_key = keys_made(env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
                                     ["broker_key", "create", "--project", "alpha", "--role", "agent"])
    server.start()
    broker = LiveBroker(server, admin_key, agent_key, "")
    broker.configure(max_queue_size=100_000, rate_limit_per_minute=600_000)
    try:
        yield broker
    finally:
        server.stop(signal.SIGKILL)
    assert "Traceback" not in server.log_text(), server.log_text()[-5000:]


async def stream_sends(client: WsClient, recipient_id: str, tag: int, accepted: set, shutdown_seen: list) -> None:
    """Send until the server goes away; remember every message the server said it accepted."""
    counter = itertools.count()

    async def read() -> None:
        async for raw in client.connection:
            frame = json.loads(raw)
            if frame["type"] == "result":
                accepted.add(frame["result"]["message_id"])
            elif frame["type"] == "server_shutdown":
                shutdown_seen.append(frame)

    reader = asyncio.create_task(read())
    try:
        while not reader.done():
            n = next(counter)
            await client.send({"type": "send", "recipient_id": recipient_id, "payload": {"sender": tag, "n": n},
                               "request_id": n})
            if n % 20 == 19:
                await asyncio.sleep(0.01)
    except websockets.ConnectionClosed:
        pass
    try:
        await reader
    except websockets.ConnectionClosed:
        pass


async def collect(client: WsClient, received: list) -> None:
    """Receive and ack until the connection ends."""
    try:
        async for raw in client.connection:
            frame = json.loads(raw)
            if frame["type"] == "message":
                received.append(frame["message"])
                await client.send({"type": "ack", "message_ids": [frame["message"]["message_id"]]})
    except websockets.ConnectionClosed:
        pass


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_every_accepted_message_is_delivered_exactly_once_after_a_restart(restartable_broker, stop_signal):
    broker = restartable_broker
    accepted: set[str] = set()
    received: list[dict] = []
    shutdown_seen: list[dict] = []
    async with AsyncExitStack() as stack:
        recipient = await stack.enter_async_context(broker.connect(name="recipient"))
        recipient_id, token = recipient.session_id, recipient.token
        senders = [await stack.enter_async_context(broker.connect(name=f"sender-{i}")) for i in range(SENDERS)]
        loads = [asyncio.create_task(stream_sends(s, recipient_id, i, accepted, shutdown_seen))
                 for i, s in enumerate(senders)]
        collector = asyncio.create_task(collect(recipient, received))
        # The stop comes mid-stream: once the load is going (its pace is the machine's, so not after a fixed time).
        async with asyncio.timeout(30):
            while len(accepted) <= LOAD_GOING:
                await asyncio.sleep(0.05)
        exit_code = await asyncio.to_thread(broker.server.stop, stop_signal)
        await asyncio.wait_for(asyncio.gather(*loads, collector), timeout=30)
    assert len(accepted) > LOAD_GOING
    if stop_signal == signal.SIGTERM:
        assert exit_code == broker.server.command.sigterm_exit_code
        assert len(shutdown_seen) == SENDERS  # every connection was told
        assert shutdown_seen[0]["grace_seconds"] > 0

    await resumed_and_drained(broker, recipient_id, token, accepted, received)

    unique = {m["message_id"]: m for m in received}
    assert accepted <= unique.keys()
    # Anything beyond the accepted ones was a send in flight at the stop: persisted, never answered.
    assert all(m["payload"]["sender"] in range(SENDERS) for m in unique.values())
    assert len(unique) - len(accepted) <= SENDERS * 100


async def resumed_and_drained(broker: LiveBroker, recipient_id: str, token: str, accepted: set, received: list) -> None:
    """Start the server again, resume the recipient and read (acking) until every accepted message has come."""
    broker.server.start()
    async with broker.connect(session_id=recipient_id, session_token=token) as back:
        async with asyncio.timeout(60):
            while not accepted <= {m["message_id"] for m in received}:
                message = (await back.next("message"))["message"]
                received.append(message)
                await back.ack([message])


async def open_silent_session(port: int, key: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket session over a bare TCP socket that says hello and then never answers anything.

    The server waits (a little) for such a peer to answer its close, which holds the shutdown
    open long enough to try a new connection meanwhile.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    nonce = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/sessions/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {key}\r\n\r\n").encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    hello, mask = b'{"type":"hello","presence":false}', os.urandom(4)
    writer.write(bytes([0x81, 0x80 | len(hello)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(hello)))
    async with asyncio.timeout(10):
        seen = b""
        while b'"welcome"' not in seen:
            seen += await reader.read(4096)
    return reader, writer


async def test_sigterm_tells_each_socket_closes_it_with_4503_and_refuses_new_ones(restartable_broker):
    broker = restartable_broker
    _, silent = await open_silent_session(broker.server.port, broker.agent_key)
    async with broker.connect(presence=False) as client:
        stopping = asyncio.create_task(asyncio.to_thread(broker.server.stop, signal.SIGTERM))
        goodbye = await client.next("server_shutdown")
        assert goodbye["reconnect"] is True and goodbye["grace_seconds"] > 0
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.connection.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
        # Still shutting down (the silent peer has not answered its close): no new session.
        with pytest.raises((websockets.InvalidStatus, OSError)) as refused:
            async with broker.connect(presence=False):
                pass
        if isinstance(refused.value, websockets.InvalidStatus):
            assert refused.value.response.status_code == 403
    assert await stopping == broker.server.command.sigterm_exit_code
    silent.close()
