"""Reads for file leases, always scoped by project: what is held now, and the one rule of overlap."""

import uuid
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from leases.contracts import LeaseListIn
from leases.models import FileLease
from projects.models import Project
from sessions_app.models import LIVE, AgentSession

MAX_LISTED = 1000


def overlaps(a: str, b: str) -> bool:
    """Two paths or globs overlap when either matches the other (fnmatch, case-sensitive; `*` crosses `/`).

    Two globs that only meet in a path neither spells (`src/*.py`, `src/a*`) are not seen to
    overlap: leases are advisory, and this is the rule the README states.
    """
    return a == b or fnmatchcase(a, b) or fnmatchcase(b, a)


def leases_held(project: Project, workspace: str | None, now: datetime | None = None) -> QuerySet[FileLease]:
    """The leases that hold now: not expired, and of a session still live (one disconnected or silent past
    disconnect_after holds nothing from that moment, in every process, before the sweeper removes its rows)."""
    now = now or timezone.now()
    live = AgentSession.objects.filter(AgentSession.status_q(project, LIVE, now), project=project).values("pk")
    held = FileLease.objects.filter(project=project, expires_at__gt=now, session_id__in=live)
    return held if workspace is None else held.filter(workspace=workspace)


def lease_summary(lease: FileLease) -> dict[str, Any]:
    return {"lease_id": str(lease.pk), "path": lease.pattern, "mode": lease.mode, "workspace": lease.workspace,
            "reason": lease.reason, "session_id": str(lease.session_id), "session_name": lease.session.name,
            "created_at": lease.created_at.isoformat(), "expires_at": lease.expires_at.isoformat()}


def leases_listed(project: Project, asked: LeaseListIn) -> dict[str, Any]:
    """The project's leases held now, by workspace and path: those overlapping `asked.path` if given, and not
    held by `asked.except_session` (id or name: "is this path leased by someone else?", a commit hook's question)."""
    held = leases_held(project, asked.workspace).select_related("session")
    if asked.except_session:
        held = held.exclude(_session_named(asked.except_session))
    found = [lease for lease in held[:MAX_LISTED] if asked.path is None or overlaps(asked.path, lease.pattern)]
    return {"leases": [lease_summary(lease) for lease in found], "count": len(found)}


def _session_named(ref: str) -> Q:
    try:
        return Q(session_id=uuid.UUID(ref))
    except ValueError:
        return Q(session__name=ref)
