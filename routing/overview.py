"""Reads for the operators' live dashboard (broker_site.overview): the broker now, a project, a session.

Staff see every project, so the broker-wide overview walks the active projects and reads each
through the same per-project census as the metrics (routing.selectors.project_census); the
project and session pages take their project explicitly, as every selector does. Payloads
are never part of a listing: one is read on its own, cut at PAYLOAD_SHOWN characters.
"""

import json
import uuid
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from broker_site.errors import NotFound
from projects.models import AuditEvent, Project
from routing.models import PENDING, Message
from routing.selectors import message_summary, project_census
from sessions_app.models import AgentSession
from sessions_app.selectors import session_activity, session_get

RATE_MINUTES = 10
TOP_QUEUES = 5
RECENT_AUDIT = 10
RECENT_MESSAGES = 50
SESSIONS_SHOWN = 200
PAYLOAD_SHOWN = 20_000


def broker_overview() -> dict[str, Any]:
    """Every active project's census (routing.selectors.project_census), the busiest queues, messages sent per
    minute over the last RATE_MINUTES (every copy of a broadcast counts), and the latest audit events."""
    now = timezone.now()
    projects = list(Project.objects.filter(status=Project.Status.ACTIVE).order_by("pk"))
    rows = [{"project_id": p.pk, "name": p.name, **project_census(p)} for p in projects]
    return {"at": now.isoformat(), "projects": rows, "rate": _sent_per_minute(now), "top_queues": _top_queues(),
            "audit": [_audit_row(e) for e in AuditEvent.objects.all()[:RECENT_AUDIT]]}


def _sent_per_minute(now) -> list[dict[str, Any]]:
    first = (now - timedelta(minutes=RATE_MINUTES - 1)).replace(second=0, microsecond=0)
    counted = dict(Message.objects.filter(created_at__gte=first).annotate(minute=TruncMinute("created_at"))
                   .order_by().values_list("minute").annotate(n=Count("pk")))
    minutes = [first + timedelta(minutes=i) for i in range(RATE_MINUTES)]
    return [{"minute": m.strftime("%H:%M"), "sent": counted.get(m, 0)} for m in minutes]


def _top_queues() -> list[dict[str, Any]]:
    busiest = (Message.objects.filter(state__in=PENDING).order_by().values("recipient_id")
               .annotate(n=Count("pk")).order_by("-n")[:TOP_QUEUES])
    names = {s.pk: s for s in AgentSession.objects.filter(pk__in=[row["recipient_id"] for row in busiest])}
    return [{"project_id": names[row["recipient_id"]].project_id, "session_id": str(row["recipient_id"]),
             "name": names[row["recipient_id"]].name, "pending": row["n"]}
            for row in busiest if row["recipient_id"] in names]


def _audit_row(event: AuditEvent) -> dict[str, Any]:
    return {"at": event.created_at.isoformat(), "action": event.action, "outcome": event.outcome,
            "actor": event.actor_key_id, "source": event.source_project, "target": event.target_project,
            "count": event.count}


def project_sessions(project: Project) -> list[dict[str, Any]]:
    """The project's newest SESSIONS_SHOWN sessions, with status, face (a WebSocket holds it, or it polls) and
    queue depth."""
    now = timezone.now()
    sessions = (AgentSession.objects.filter(project=project).select_related("project")
                .annotate(pending=Count("inbox", filter=Q(inbox__state__in=PENDING)))
                .order_by("-connected_at")[:SESSIONS_SHOWN])
    return [{"session_id": str(s.pk), "name": s.name, "status": s.status_at(now), "human": s.human,
             "face": "websocket" if s.push_until and s.push_until > now else "polling",
             "pending": s.pending, "last_heartbeat_at": s.last_heartbeat_at.isoformat(),
             "activity": session_activity(s) if s.activity_at else None} for s in sessions]


def session_messages(project: Project, session_ref: str) -> dict[str, Any]:
    """A session of `project` and its latest messages, sent or received, without payloads."""
    session = session_get(project, session_ref)
    recent = (Message.objects.filter(project=project).filter(Q(sender=session) | Q(recipient=session))
              .select_related("sender", "recipient").order_by("-created_at")[:RECENT_MESSAGES])
    return {"session_id": str(session.pk), "name": session.name, "status": session.status, "human": session.human,
            "messages": [_message_row(m) for m in recent]}


def _message_row(message: Message) -> dict[str, Any]:
    return {**message_summary(message, include_payload=False),
            "sender_name": message.sender_human or (message.sender.name if message.sender else None),
            "recipient_name": message.recipient.name, "dead_reason": message.dead_reason or None}


def message_payload_shown(project: Project, message_id: str) -> dict[str, Any]:
    """One message's payload as indented JSON, cut at PAYLOAD_SHOWN characters (it may be megabytes)."""
    try:
        message = Message.objects.filter(project=project, pk=uuid.UUID(message_id)).first()
    except ValueError:
        message = None
    if message is None:
        raise NotFound("No such message in this project.", message_id=message_id)
    text = json.dumps(message.payload, indent=2, ensure_ascii=False)
    return {"message_id": str(message.pk), "payload": text[:PAYLOAD_SHOWN], "cut": len(text) > PAYLOAD_SHOWN,
            "characters": len(text)}
