"""The WebSocket face under the other ASGI servers (uvicorn, granian): a stop in the middle of a load loses
nothing and logs no error.

They close open sockets themselves on SIGTERM (1012, service restart) before the application hears of
the stop, so a frame in hand meets a closed socket: each server says so with its own exception
(routing.consumers.SOCKET_CLOSED). Before those were known, every such frame logged a traceback.
"""

import asyncio
import signal
from contextlib import AsyncExitStack

import pytest

from devtools.live import LOAD_CEILINGS, BrokerProcess, keys_made, server_command, throwaway_database
from tests.websocket.conftest import LiveBroker, serve, stack_from_environment
from tests.websocket.test_shutdown import LOAD_GOING, SENDERS, collect, stream_sends


@pytest.fixture(params=["uvicorn", "granian"])
def broker_under(request, tmp_path):
    database_url, redis_url = stack_from_environment().values()
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url, prefix="broker_ws") as url:
            yield from _broker(tmp_path, url, redis_url, request.param)
    else:
        yield from _broker(tmp_path, "", "", request.param)


def _broker(tmp_path, database_url: str, redis_url: str, server_name: str):
    _, env = serve(tmp_path, database_url, redis_url, migrate=False, **LOAD_CEILINGS)
    admin_key, agent_key = keys_made(env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
                                     ["broker_key", "create", "--project", "alpha", "--role", "agent"])
    server = BrokerProcess(env, tmp_path / f"{server_name}.log", command=server_command(server_name)).start()
    broker = LiveBroker(server, admin_key, agent_key, "")
    broker.configure(max_queue_size=100_000, rate_limit_per_minute=600_000)
    try:
        yield broker
    finally:
        server.stop(signal.SIGKILL)


async def test_a_stop_mid_load_loses_nothing_and_logs_no_error(broker_under):
    broker = broker_under
    accepted: set[str] = set()
    received: list[dict] = []
    async with AsyncExitStack() as stack:
        recipient = await stack.enter_async_context(broker.connect(name="recipient"))
        recipient_id, token = recipient.session_id, recipient.token
        senders = [await stack.enter_async_context(broker.connect(name=f"sender-{i}")) for i in range(SENDERS)]
        loads = [asyncio.create_task(stream_sends(s, recipient_id, i, accepted, [])) for i, s in enumerate(senders)]
        collector = asyncio.create_task(collect(recipient, received))
        async with asyncio.timeout(30):
            while len(accepted) <= LOAD_GOING:
                await asyncio.sleep(0.05)
        await asyncio.to_thread(broker.server.stop, signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*loads, collector), timeout=30)
    log = broker.server.log_text()
    for trouble in ("Traceback", '"level": "error"', "[ERROR]", "ERROR:"):
        assert trouble not in log, log[-5000:]

    broker.server.start()
    async with broker.connect(session_id=recipient_id, session_token=token) as back:
        async with asyncio.timeout(60):
            while not accepted <= {m["message_id"] for m in received}:
                message = (await back.next("message"))["message"]
                received.append(message)
                await back.ack([message])
    assert accepted <= {m["message_id"] for m in received}
