"""The one way anything reaches the channel layer: after commit, to a session's or project's group.

Both Redis and in-memory layers are at-most-once and drop silently past capacity, so an
event here is only a wake-up call: the database is the source of truth, and every
listener reads its messages from there.
"""

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger("broker.events")

MESSAGE_EVENT = "broker.message"
PRESENCE_EVENT = "broker.presence"
REPLACED_EVENT = "broker.replaced"


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
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception as exc:  # Redis down or full: the message is persisted; listeners poll the database.
        log.warning("push_fallback", extra={"group": group, "event_type": event.get("type"), "error": str(exc)})


def message_available(recipient_id: uuid.UUID, message_ids: list[str]) -> None:
    publish_on_commit(session_group(recipient_id), {"type": MESSAGE_EVENT, "message_ids": message_ids[:100]})


def presence_changed(project_id: str, session_id: uuid.UUID, name: str | None, event: str) -> None:
    publish_on_commit(project_group(project_id), {"type": PRESENCE_EVENT, "event": event,
                                                  "session_id": str(session_id), "name": name})


def session_replaced(session_id: uuid.UUID, connection_epoch: int) -> None:
    """Tell the session's older connections that connection `connection_epoch` took over."""
    publish_on_commit(session_group(session_id), {"type": REPLACED_EVENT, "connection_epoch": connection_epoch})
