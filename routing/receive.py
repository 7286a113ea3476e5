"""Long-poll receive, shared by the REST and MCP faces.

An empty queue waits on the session's channel-layer group, so a send wakes the receiver
as soon as it commits. The database stays the source of truth: the wake-up only says
"look again", and a slow safety re-check covers events the layer dropped (or a Redis
outage, logged as push_fallback).
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from routing.events import session_group
from routing.models import Message
from routing.services import messages_claim
from sessions_app.models import AgentSession
from sessions_app.services import session_heartbeat

log = logging.getLogger("broker.routing")
SAFETY_RECHECK_SECONDS = 5.0
FALLBACK_POLL_SECONDS = 0.5


async def messages_receive(session: AgentSession, *, max_messages: int, wait_seconds: float,
                           auto_ack: bool) -> list[Message]:
    claim = sync_to_async(messages_claim)
    messages = await claim(session, max_messages=max_messages, auto_ack=auto_ack)
    wait_seconds = min(max(wait_seconds, 0), settings.BROKER["MAX_WAIT_SECONDS"])
    if messages or wait_seconds <= 0:
        return messages
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    layer = get_channel_layer()
    group = session_group(session.pk)
    channel = None
    try:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
    except Exception as exc:
        log.warning("push_fallback", extra={"session_id": str(session.pk), "error": str(exc)})
        channel = None
    try:
        while True:
            # Claim again after subscribing: a message committed between the first claim and
            # group_add sent its event before we listened, so only the database knows of it.
            messages = await claim(session, max_messages=max_messages, auto_ack=auto_ack)
            # A session waiting for mail is alive: without this a 60 s wait outlasts disconnect_after.
            await sync_to_async(session_heartbeat)(session)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                return messages
            if channel is None:
                await asyncio.sleep(min(remaining, FALLBACK_POLL_SECONDS))
                continue
            try:
                await asyncio.wait_for(layer.receive(channel), timeout=min(remaining, SAFETY_RECHECK_SECONDS))
            except TimeoutError:
                pass
            except Exception as exc:
                log.warning("push_fallback", extra={"session_id": str(session.pk), "error": str(exc)})
                channel = None
    finally:
        if channel is not None:
            try:
                await layer.group_discard(group, channel)
            except Exception:  # the layer is gone; its group entry expires on its own
                log.debug("group_discard failed", exc_info=True)
