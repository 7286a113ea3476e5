"""A person at the operators' dashboard takes part in a conversation, as any agent does.

The staff user speaks through a session of their own in the project (sessions_app.services.
session_of_human), so their message goes through the one send path (message_send /
message_broadcast: limits, blocks, push) and an agent answers it as it answers anyone. Each
message records the person's name (`sender_kind: human` to its recipient) and is audited.
What the agents send back is read the way any session reads its mail: claimed and acked.
"""

from typing import Any

from django.utils import timezone

from projects.audit import audit_done
from projects.auth import Staff
from projects.models import Project
from routing.contracts import BroadcastIn, SendIn
from routing.models import Message
from routing.sending import message_broadcast, message_send
from routing.services import messages_claim, messages_requeue_unacked
from sessions_app.models import AgentSession
from sessions_app.selectors import human_session_of
from sessions_app.services import session_of_human, sessions_seen

HUMAN_INBOX_READ = 100  # replies taken per look at the page; the rest stay queued for the next one


def human_session(project: Project, user_name: str) -> AgentSession:
    """The person's own session in `project`, live from now (made on first use, resumed after a time-out)."""
    return session_of_human(project, user_name, on_resume=messages_requeue_unacked)


def human_message_send(project: Project, caller: Staff, user_name: str, message: SendIn | BroadcastIn) -> dict[str, Any]:
    """Send `message` as the person (a SendIn to one session, a BroadcastIn to the project); audited."""
    session = human_session(project, user_name)
    if isinstance(message, SendIn):
        result = message_send(session, message).as_dict()
        details = {"recipient": message.recipient_id, "message_id": result["message_id"]}
    else:
        result = message_broadcast(session, message)
        details = {"broadcast_id": result["broadcast_id"], "counts": result["counts"]}
    audit_done(caller, "human_message", project.pk, {"session_id": str(session.pk), **details})
    return result


def human_replies_read(project: Project, user_name: str) -> list[Message]:
    """What agents sent the person since their last look: claimed and acked, so their queue stays short.

    Looking neither makes nor resumes the person's session (only writing does: peers are told a
    person joined when one speaks); while it is live, a look keeps it so.
    """
    session = human_session_of(project, user_name)
    if session is None:
        return []
    if session.is_live_at(timezone.now()):
        sessions_seen([session])
    return messages_claim(session, max_messages=HUMAN_INBOX_READ, auto_ack=True)
