"""A stop answers the receives that are waiting (REST long polls, MCP receive_messages) with what they have,
instead of holding the stop up for their wait (uvicorn waits for every open request before it stops: 30 s
here, before routing.receive.waiting). daphne cancels every request itself as its stop begins, so there the
poll may be cut off without an answer (it races the broker's answer). Either way the client asks again, of
the server that comes back, and nothing was claimed for it meanwhile."""

import asyncio
import signal
import time

import httpx

from tests.live import live_broker

WAIT = 30
GRACE = 3


async def test_a_waiting_long_poll_is_answered_empty_at_sigterm_and_its_mail_stays_queued(tmp_path):
    with live_broker(tmp_path, BROKER_SHUTDOWN_GRACE_SECONDS=str(GRACE)) as live:
        with live.rest(live.alpha_agent) as rest:
            token = rest.post("/sessions/", json={"name": "poller"}).json()["session_token"]

        def poll() -> httpx.Response | None:
            with live.rest(live.alpha_agent, **{"X-Session-Token": token}) as rest:
                try:
                    return rest.post("/messages/receive/", json={"wait_seconds": WAIT})
                except httpx.RemoteProtocolError:  # cut off (daphne)
                    return None

        waiting = asyncio.create_task(asyncio.to_thread(poll))
        await asyncio.sleep(1.5)  # inside its wait by now
        started = time.monotonic()
        exit_code = await asyncio.to_thread(live.server.stop, signal.SIGTERM)
        answered = await waiting
        assert exit_code == live.server.command.sigterm_exit_code
        assert time.monotonic() - started < GRACE + 5
        # daphne cancels requests as its stop begins, racing the broker's answer: cut off, or answered empty.
        if live.server.command.server != "daphne" or answered is not None:
            assert answered is not None and answered.status_code == 200, answered
            assert answered.json()["messages"] == [], answered.text

        live.server.start()
        with live.rest(live.alpha_agent) as rest:
            sender = rest.post("/sessions/", json={"name": "sender"}).json()["session_token"]
            rest.post("/messages/", headers={"X-Session-Token": sender}, json={"recipient_id": "poller", "payload": {}})
            got = rest.post("/messages/receive/", headers={"X-Session-Token": token}, json={"wait_seconds": 5}).json()
        assert len(got["messages"]) == 1
