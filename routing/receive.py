"""Long-poll receive, shared by the REST and MCP faces.

An empty queue waits on a Listener (routing.hub), so a send wakes the receiver as soon as it
commits. The database stays the source of truth: the wake-up only says "look again", and the
listener's pace covers events the layer dropped, and polls while the layer is down.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from broker_site.workers import db
from routing.hub import Listener, Pace
from routing.models import Message
from routing.services import messages_claim
from sessions_app.models import AgentSession
from sessions_app.services import sessions_seen

LONG_POLL_PACE = Pace(recheck=5.0, poll=0.5)


def _claim_and_beat(session: AgentSession, max_messages: int, auto_ack: bool) -> list[Message]:
    # A session waiting for mail is alive: without the heartbeat a 60 s wait outlasts disconnect_after.
    sessions_seen([session])
    return messages_claim(session, max_messages=max_messages, auto_ack=auto_ack)


async def messages_receive(session: AgentSession, *, max_messages: int, wait_seconds: float, auto_ack: bool,
                           on: Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]] = db) -> list[Message]:
    """The session's next messages (priority, then age), waiting up to `wait_seconds` for one to come.

    The claims run `on` the face's database threads: the process's pool (broker_site.workers), or
    for a Django view, Django's own (asgiref's sync_to_async), where the rest of its request ran.
    """
    claim = on(_claim_and_beat)
    messages = await claim(session, max_messages, auto_ack)
    wait_seconds = min(max(wait_seconds, 0), settings.BROKER["MAX_WAIT_SECONDS"])
    if messages or wait_seconds <= 0:
        return messages
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    async with Listener(session.pk, session.project_id, LONG_POLL_PACE) as listener:
        while True:
            # Claimed again after joining: a message committed between the first claim and the
            # join sent its event before we listened, so only the database knows of it.
            messages = await claim(session, max_messages, auto_ack)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                return messages
            await listener.wait(remaining)
