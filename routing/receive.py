"""Long-poll receive, shared by the REST and MCP faces.

An empty queue waits for the session's mail event through the process's one listener
(routing.hub), so a send wakes the receiver as soon as it commits. The database stays the
source of truth: the wake-up only says "look again", and a slow safety re-check covers
events the layer dropped. While the layer is down (Redis away; the hub logs push_fallback)
the wait polls the database instead.
"""

import asyncio
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from routing.events import MESSAGE_EVENT
from routing.hub import hub
from routing.models import Message
from routing.services import messages_claim
from sessions_app.models import AgentSession
from sessions_app.services import session_heartbeat

SAFETY_RECHECK_SECONDS = 5.0
FALLBACK_POLL_SECONDS = 0.5


class _Waiter:
    """One long poll, as the hub sees it: woken by its session's mail events."""

    presence = False

    def __init__(self, session: AgentSession) -> None:
        self.session_id: uuid.UUID = session.pk
        self.project_id: str = session.project_id
        self.woken = asyncio.Event()
        self.listening = False

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == MESSAGE_EVENT:
            self.woken.set()

    def on_layer(self, listening: bool) -> None:
        self.listening = listening
        self.woken.set()


async def messages_receive(session: AgentSession, *, max_messages: int, wait_seconds: float,
                           auto_ack: bool) -> list[Message]:
    claim = sync_to_async(messages_claim)
    messages = await claim(session, max_messages=max_messages, auto_ack=auto_ack)
    wait_seconds = min(max(wait_seconds, 0), settings.BROKER["MAX_WAIT_SECONDS"])
    if messages or wait_seconds <= 0:
        return messages
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    waiter = _Waiter(session)
    waiter.listening = await hub.join(waiter)
    try:
        while True:
            waiter.woken.clear()
            # Claim again after joining: a message committed between the first claim and the
            # join sent its event before we listened, so only the database knows of it.
            messages = await claim(session, max_messages=max_messages, auto_ack=auto_ack)
            # A session waiting for mail is alive: without this a 60 s wait outlasts disconnect_after.
            await sync_to_async(session_heartbeat)(session)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                return messages
            pause = SAFETY_RECHECK_SECONDS if waiter.listening else FALLBACK_POLL_SECONDS
            try:
                await asyncio.wait_for(waiter.woken.wait(), timeout=min(remaining, pause))
            except TimeoutError:
                pass
    finally:
        await hub.leave(waiter)
