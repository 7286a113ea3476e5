"""The one way anything reaches the channel layer: after commit, to a session's or project's group.

Both Redis and in-memory layers are at-most-once and drop silently past capacity, so an
event here is only a wake-up call: the database is the source of truth, and every
listener reads its messages from there.
"""

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from broker_site.lifespan import background_starters

log = logging.getLogger("broker.events")

MESSAGE_EVENT = "broker.message"
PRESENCE_EVENT = "broker.presence"
REPLACED_EVENT = "broker.replaced"
ENDED_EVENT = "broker.ended"

# The server's event loop. Events are handed to it without waiting: a database thread that
# waited for each group_send (async_to_sync) sat idle for a round trip to Redis per message.
_server_loop: asyncio.AbstractEventLoop | None = None
_in_flight: set = set()  # sends handed over and not done, held so none is garbage-collected
_handover: list[tuple[str, dict]] = []  # published by any thread, not yet taken by the server loop
_handover_lock = threading.Lock()
# In-process subscribers (routing.hub) that get every event this process publishes, on its loop.
local_dispatchers: list[Callable[[dict], None]] = []
SEND_TIMEOUT_SECONDS = 2.0
ORIGIN = uuid.uuid4().hex  # marks the events this process published, so its listener skips them


def _bind_server_loop() -> None:
    global _server_loop
    _server_loop = asyncio.get_running_loop()


background_starters.append(_bind_server_loop)


def session_group(session_id: uuid.UUID | str) -> str:
    return f"session.{uuid.UUID(str(session_id)).hex}"


def project_group(project_id: str) -> str:
    return f"project.{project_id}"


def publish_on_commit(group: str, event: dict) -> None:
    """Send `event` to `group` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _publish(group, event))


def _publish(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    if loop is None or not loop.is_running():  # a management command, a test: no server loop to hand it to
        async_to_sync(_group_send)(layer, group, event)
        return
    # Handed over in batches: a round of 100 sends commits 100 events at once, and one wake-up
    # of the loop takes them all (a cross-thread future per event cost 6% of the server's time).
    with _handover_lock:
        _handover.append((group, event))
        if len(_handover) > 1:
            return  # a wake-up is already on its way
    loop.call_soon_threadsafe(_take_handover, layer)


def _take_handover(layer) -> None:
    with _handover_lock:
        batch = _handover[:]
        _handover.clear()
    loop = asyncio.get_running_loop()
    for group, event in batch:
        sent = loop.create_task(_group_send(layer, group, event))
        _in_flight.add(sent)
        sent.add_done_callback(_in_flight.discard)


async def _group_send(layer, group: str, event: dict) -> None:
    # This process's own sockets are woken at once, without the round trip through the layer
    # (with Redis, the process's one listener takes a round trip per event, and fell behind
    # under load); the layer still carries the event to other processes and to MCP listeners.
    for dispatch in local_dispatchers:
        dispatch(event)
    event = {**event, "origin": ORIGIN}
    for attempt in (1, 2):
        try:
            # Bounded: a publish to a Redis that does not answer can hang, and events pile up behind it.
            await asyncio.wait_for(layer.group_send(group, event), SEND_TIMEOUT_SECONDS)
            return
        except Exception as exc:  # Redis down or full: the message is persisted; listeners poll the database.
            if attempt == 2:
                log.warning("push_fallback", extra={"group": group, "event_type": event.get("type"),
                                                    "error": str(exc) or type(exc).__name__})
            # Once more: after a Redis restart, the first use of each pooled connection fails.


def message_available(recipient_id: uuid.UUID, message_ids: list[str]) -> None:
    publish_on_commit(session_group(recipient_id), {"type": MESSAGE_EVENT, "session_id": str(recipient_id),
                                                    "message_ids": message_ids[:100]})


def presence_changed(project_id: str, session_id: uuid.UUID, name: str | None, event: str) -> None:
    publish_on_commit(project_group(project_id), {"type": PRESENCE_EVENT, "event": event, "project_id": project_id,
                                                  "session_id": str(session_id), "name": name})


def session_ended(session_id: uuid.UUID, reason: str) -> None:
    """Tell the session's connections it was disconnected (by an admin, a time-out, a deactivated project)."""
    publish_on_commit(session_group(session_id), {"type": ENDED_EVENT, "session_id": str(session_id), "reason": reason})


def session_replaced(session_id: uuid.UUID, connection_epoch: int) -> None:
    """Tell the session's older connections that connection `connection_epoch` took over."""
    publish_on_commit(session_group(session_id), {"type": REPLACED_EVENT, "session_id": str(session_id),
                                                  "connection_epoch": connection_epoch})
