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

from devtools.live import ServerCommand
from tests.websocket.test_shutdown import LOAD_GOING, SENDERS, collect, restartable, resumed_and_drained, stream_sends


@pytest.fixture(params=["uvicorn", "granian"])
def broker_under(request, tmp_path):
    yield from restartable(tmp_path, ServerCommand(request.param))


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

    await resumed_and_drained(broker, recipient_id, token, accepted, received)
    assert accepted <= {m["message_id"] for m in received}
