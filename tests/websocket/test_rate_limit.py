"""A key's rate limit is one budget a minute, shared by all its sockets' frames and its REST and MCP requests."""

import asyncio
import time
from contextlib import AsyncExitStack

from tests.websocket.test_key_validity import new_agent_key

LIMIT = 30
SOCKETS = 4
FRAMES_EACH = 15


async def minute_with_room() -> None:
    """Wait until the minute's window has at least 20 s left, so the whole test counts in one window."""
    while time.time() % 60 > 40:
        await asyncio.sleep(0.5)


async def test_all_sockets_of_a_key_and_its_rest_calls_share_one_budget(live_broker):
    key, _ = new_agent_key(live_broker)
    with live_broker.configured(rate_limit_per_minute=LIMIT):
        await minute_with_room()
        async with AsyncExitStack() as stack, live_broker.connect() as neighbour:  # another key of the project
            clients = [await stack.enter_async_context(live_broker.connect(key)) for _ in range(SOCKETS)]
            answers = []
            for client in clients:
                for n in range(FRAMES_EACH):
                    await client.send({"type": "heartbeat", "request_id": n})
                answers += [await client.next(request_id=n) for n in range(FRAMES_EACH)]
            taken = [a for a in answers if a["type"] == "result"]
            refused = [a for a in answers if a["type"] == "error"]
            # The hellos counted too; a per-socket budget let each socket have its own burst.
            assert len(taken) <= LIMIT - SOCKETS
            assert refused and all(a["error"] == "rate_limited" for a in refused)
            assert 0 < refused[0]["details"]["retry_after"] <= 60
            with live_broker.rest(key) as rest:
                assert rest.get("/api/v1/sessions/").status_code == 429
            # Refused before it is read: not even a frame that is not JSON gets further.
            await clients[0].connection.send("{not json")
            assert (await clients[0].next("error"))["error"] == "rate_limited"
            assert (await neighbour.request({"type": "heartbeat"}))["type"] == "result"
