"""Reads for messages, scoped by project (and by session where a session asks), and their wire shape."""

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from broker_site.errors import NotFound, ValidationFailed
from projects.auth import Principal
from projects.contracts import ListProjectsIn, ProjectInfoIn
from projects.models import ApiKey, Project
from projects.selectors import links_live_for_operators, links_traffic, project_summary, projects_visible
from protocols.models import Protocol
from routing.contracts import ThreadIn
from routing.models import PENDING, Message
from sessions_app.models import AgentSession
from sessions_app.selectors import session_counts

PRIORITY_LABELS = dict(Message.Priority.choices)
INBOX_PREVIEW_SIZE = 5


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def message_summary(message: Message, *, include_payload: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "message_id": str(message.id),
        "thread_id": str(message.thread_id) if message.thread_id else None,
        "sender_id": str(message.sender_id) if message.sender_id else None,
        # Provenance: who wrote it, and that it is a peer's words, not the user's instruction.
        "sender_name": message.sender_human or message.sender_name or None,
        "sender_kind": "human" if message.sender_human else "agent",
        "sender_project_id": message.sender_project or message.project_id,  # across a link: answer its/sender_id
        "untrusted": True,
        "recipient_id": str(message.recipient_id),
        "protocol": ({"name": message.protocol_name, "version": message.protocol_version}
                     if message.protocol_name else None),
        "priority": PRIORITY_LABELS[message.priority],
        "ttl": message.ttl,
        "correlation_id": message.correlation_id or None,
        "reply_to": message.reply_to or None,
        "broadcast_id": str(message.broadcast_id) if message.broadcast_id else None,
        "state": message.state,
        "attempts": message.attempts,
        "created_at": _iso(message.created_at),
    }
    if message.transformed_to:
        data.update(transformed_from=message.transformed_from, transformed_to=message.transformed_to)
    if include_payload:
        data["payload"] = message.payload
    return data


def message_receipt(message: Message) -> dict[str, Any]:
    data = message_summary(message, include_payload=False)
    data.update(delivered_at=_iso(message.delivered_at), acked_at=_iso(message.acked_at),
                dead_at=_iso(message.dead_at), dead_reason=message.dead_reason or None,
                expires_at=_iso(message.expires_at))
    return data


def _message_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise ValidationFailed("That is not a message id.", field="message_id") from None


def message_for_party(session: AgentSession, message_id: str) -> Message:
    """A message this session sent or received; anyone else's is simply not found."""
    # The sender's copy may be in another project's queue (sent over a link): the sender is enough to scope it.
    message = (Message.objects.filter(pk=_message_id(message_id))
               .filter(Q(sender=session) | Q(project=session.project, recipient=session)).first())
    if message is None:
        raise NotFound("No message with that id that this session sent or received.", message_id=str(message_id))
    return message


def thread_read(session: AgentSession, asked: ThreadIn) -> dict[str, Any]:
    """A thread's messages that this session sent or received, oldest first, a page at a time (after a message id).

    A broadcast it sent shows once (its first copy), not once per recipient; a broadcast it received, as its
    own copy. Reading a thread claims nothing: mail in it still waits for a receive.
    """
    seen = sent_or_received(session).filter(thread_id=asked.thread_id)
    if asked.after is not None:
        after = seen.filter(pk=asked.after).values_list("created_at", "pk").first()
        if after is None:
            raise NotFound("No message with that id in this thread that this session sent or received.",
                           after=str(asked.after))
        seen = seen.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
    page = list(seen.order_by("created_at", "pk")[:asked.limit + 1])
    more = len(page) > asked.limit
    page = page[:asked.limit]
    return {"thread_id": str(asked.thread_id), "messages": [message_summary(m) for m in page], "count": len(page),
            "next_after": str(page[-1].pk) if more else None}


def sent_or_received(session: AgentSession) -> QuerySet[Message]:
    """Messages this session received, and those it sent, each broadcast of its own once (the copy no other copy
    of that broadcast precedes). Sent ones may be in another project's queue (over a link): the sender scopes
    them."""
    earlier_copy = Message.objects.filter(broadcast_id=OuterRef("broadcast_id"), created_at__lt=OuterRef("created_at"))
    return Message.objects.filter(
        Q(project=session.project, recipient=session)
        | Q(sender=session) & (Q(broadcast_id__isnull=True) | ~Exists(earlier_copy)))


def dead_letters_of(project: Project, caller: Principal, limit: int = 100) -> QuerySet[Message]:
    """The project's dead letters, newest first; project admins only."""
    caller.require_role(ApiKey.Role.ADMIN, "list dead letters")
    return Message.objects.filter(project=project, state=Message.State.DEAD).order_by("-dead_at")[:limit]


def dead_letters_listed(project: Project, caller: Principal) -> dict[str, Any]:
    letters = [message_receipt(m) for m in dead_letters_of(project, caller)]
    return {"dead_letters": letters, "count": len(letters)}


def messages_received(messages: list[Message]) -> dict[str, Any]:
    """The answer to a receive: the messages with their payloads, in delivery order."""
    return {"messages": [message_summary(m) for m in messages], "count": len(messages)}


def dead_letter_get(project: Project, message_id: str, caller: Principal) -> Message:
    caller.require_role(ApiKey.Role.ADMIN, "inspect dead letters")
    message = (Message.objects.filter(project=project, state=Message.State.DEAD, pk=_message_id(message_id))
               .select_related("recipient").first())
    if message is None:
        raise NotFound("No dead letter with that id in this project.", message_id=str(message_id))
    return message


def has_queued_mail(session_id: uuid.UUID) -> bool:
    """Whether a receive would find something now (for a listener that may have missed a wake-up)."""
    return Message.objects.filter(recipient_id=session_id, state=Message.State.QUEUED).exists()


def queued_previews(project_id: str, session_id: uuid.UUID, *, since: datetime, exclude: Collection[uuid.UUID],
                    limit: int, preview_chars: int) -> list[dict[str, Any]]:
    """The newest queued mail of a session created at or after `since`, except `exclude`, newest first:
    who sent what, with the payload's JSON text cut to `preview_chars` by the database (so a large
    payload is not read to show its start). For announcing mail (broker_site.mcp.channel); claims nothing."""
    rows = (Message.objects.filter(project_id=project_id, recipient_id=session_id, state=Message.State.QUEUED,
                                   created_at__gte=since)
            .exclude(id__in=list(exclude)).exclude(expires_at__lte=timezone.now())
            .annotate(preview=Substr(Cast("payload", TextField()), 1, preview_chars))
            .order_by("-created_at", "-id")
            .values("id", "sender_id", "sender__name", "protocol_name", "protocol_version", "priority", "created_at",
                    "preview")[:limit])
    return [{"message_id": str(r["id"]), "sender_id": str(r["sender_id"]) if r["sender_id"] else None,
             "sender_name": r["sender__name"],
             "protocol": f"{r['protocol_name']}@{r['protocol_version']}" if r["protocol_name"] else None,
             "priority": PRIORITY_LABELS[r["priority"]], "created_at": r["created_at"], "preview": r["preview"] or ""}
            for r in rows]


def inbox_summary(session: AgentSession) -> dict[str, Any]:
    """Pending mail of `session`, read without claiming: counts and the next few queued, in delivery order."""
    # Expired messages are left to the sweeper to mark dead; receive would not hand them out either.
    pending = (Message.objects.filter(recipient=session, state__in=PENDING)
               .exclude(expires_at__lte=timezone.now()))
    counts = dict(pending.order_by().values_list("state").annotate(n=Count("id")))
    upcoming = (pending.filter(state=Message.State.QUEUED).order_by("-priority", "created_at")
                .select_related("sender")[:INBOX_PREVIEW_SIZE])
    return {
        "session_id": str(session.pk),
        "queued": counts.get(Message.State.QUEUED, 0),
        "awaiting_ack": counts.get(Message.State.DELIVERED, 0),
        "next": [{"message_id": str(m.id), "sender_id": str(m.sender_id) if m.sender_id else None,
                  "sender_name": m.sender.name if m.sender else None,
                  "protocol": f"{m.protocol_name}@{m.protocol_version}" if m.protocol_name else None,
                  "priority": PRIORITY_LABELS[m.priority], "created_at": m.created_at.isoformat()}
                 for m in upcoming],
    }


def project_stats(project: Project) -> dict[str, Any]:
    """What a project holds now, counted across the apps: sessions by status, protocols, usable keys, pending mail."""
    now = timezone.now()
    return {
        "sessions": session_counts(project),
        "protocols": Protocol.objects.filter(project=project).count(),
        "active_keys": sum(1 for key in ApiKey.objects.filter(project=project) if key.is_usable(now)),
        "pending_messages": Message.objects.filter(project=project, state__in=PENDING).count(),
        "links": links_traffic(project),
    }


def project_described(project: Project, caller: Principal, asked: ProjectInfoIn) -> dict[str, Any]:
    """One project as `caller` may see it (projects.selectors.project_summary), with its stats if asked."""
    return project_summary(project, caller=caller, include_config=asked.include_config,
                           stats=project_stats(project) if asked.include_stats else None,
                           include_permissions=asked.include_permissions)


def projects_listed(caller: Principal, asked: ListProjectsIn) -> dict[str, Any]:
    """The projects `caller` may see (projects.selectors.projects_visible), with their stats if asked."""
    projects = projects_visible(caller, name_filter=asked.name_filter, include_inactive=asked.include_inactive)
    items = [project_summary(p, caller=caller, stats=project_stats(p) if asked.include_stats else None)
             for p in projects]
    return {"projects": items, "count": len(items)}


def broker_census(caller: Principal) -> dict[str, Any]:
    """The whole broker now, for operators (the metrics): each active project's census, and every live link with
    this process's latest traffic counts."""
    caller.require_role(ApiKey.Role.OPERATOR, "read the broker's metrics")
    return {"projects": {project.pk: project_census(project)
                         for project in Project.objects.filter(status=Project.Status.ACTIVE).order_by("pk")},
            "links": links_live_for_operators(caller)}


def project_census(project: Project) -> dict[str, Any]:
    """A project as the metrics show it now, in four statements: its sessions by status (and how many a
    WebSocket holds), its messages by state, its dead letters by reason, and its largest queue (pending
    messages of one session)."""
    now = timezone.now()
    sessions = AgentSession.objects.filter(project=project).aggregate(
        websocket=Count("pk", filter=Q(push_until__gt=now)),  # held by a live WebSocket (its push lease)
        **{status: Count("pk", filter=AgentSession.status_q(project, status, now))
           for status in AgentSession.Status.values})
    websocket = sessions.pop("websocket")
    mine = Message.objects.filter(project=project).order_by()
    states = dict(mine.values_list("state").annotate(n=Count("pk")))
    dead = dict(mine.filter(state=Message.State.DEAD).values_list("dead_reason").annotate(n=Count("pk")))
    largest = (mine.filter(state__in=PENDING).values("recipient_id").annotate(n=Count("pk")).order_by("-n")
               .values_list("n", flat=True).first())
    return {"sessions": sessions, "websocket": websocket,
            "messages": {state: states.get(state, 0) for state in Message.State.values},
            "dead_letters": {reason: dead.get(reason, 0) for reason in Message.DeadReason.values},
            "largest_queue": largest or 0}
