"""The events the broker publishes, always after commit, to a session's or a project's group.

Every publish goes through routing.hub, the process's one link to the channel layer. Events
are wake-up calls: they say "look again" (mail), "who came and went" (presence), "this session
ended" or "another connection took it over". They carry no message ids: a listener reads what
is queued from the database, the source of truth.
"""

import uuid

from django.db import transaction

from routing.hub import (
    CREDENTIALS_EVENT,
    ENDED_EVENT,
    EVERY_PROCESS_GROUP,
    MESSAGE_EVENT,
    PRESENCE_EVENT,
    REPLACED_EVENT,
    hub,
    project_group,
    session_group,
)


def publish_on_commit(group: str, event: dict) -> None:
    """Publish `event` to `group` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: hub.publish(group, event))


def message_available(recipient_id: uuid.UUID) -> None:
    publish_on_commit(session_group(recipient_id), {"type": MESSAGE_EVENT, "session_id": str(recipient_id)})


def presence_changed(project_id: str, session_id: uuid.UUID, name: str | None, event: str,
                     activity: dict | None = None) -> None:
    """`event`: session_joined, session_left or session_status (with the session's `activity`)."""
    publish_on_commit(project_group(project_id), {"type": PRESENCE_EVENT, "event": event, "project_id": project_id,
                                                  "session_id": str(session_id), "name": name,
                                                  **({"activity": activity} if activity else {})})


def session_ended(session_id: uuid.UUID, reason: str) -> None:
    """Tell the session's connections it was disconnected (by an admin, a time-out, a deactivated project)."""
    publish_on_commit(session_group(session_id), {"type": ENDED_EVENT, "session_id": str(session_id), "reason": reason})


def session_replaced(session_id: uuid.UUID, connection_epoch: int) -> None:
    """Tell the session's older connections that connection `connection_epoch` took over."""
    publish_on_commit(session_group(session_id), {"type": REPLACED_EVENT, "session_id": str(session_id),
                                                  "connection_epoch": connection_epoch})


def credentials_changed(**kwargs) -> None:
    """A key or project was saved or deleted: every process drops the keys it keeps (projects.credentials).

    Connected to those models' post_save and post_delete (routing.apps); this process drops its
    own on commit by itself, and publishing it reaches the others.
    """
    publish_on_commit(EVERY_PROCESS_GROUP, {"type": CREDENTIALS_EVENT})
