"""Writes for file leases: lease, release, and the sweeper's end of leases whose time or session is over.

A lease is advisory: the broker decides who holds what, atomically, and tells; it cannot stop
an editor. The rules:

- Two leases conflict when their paths overlap (leases.selectors.overlaps), they belong to
  different sessions, and either is exclusive. A lease_files call is granted whole or not at
  all: refused, it names every conflicting holder (session, path, mode, expiry, reason).
- Decided one at a time per workspace of a project. Race: two sessions leasing overlapping
  paths at once could each see the other's path free; on PostgreSQL a transaction-scoped
  advisory lock on (project, workspace) serializes them, on SQLite the IMMEDIATE transaction
  does. Exactly one wins.
- Leasing a path again renews it (mode, reason, expiry); a lease ends at its TTL, on release,
  or when its session is no longer live (leases.selectors.leases_held reads it that way at
  once, in every process).
- A session refused a path waits for it (a LeaseWaiter, for an hour): when a release frees an
  overlapping path it is told at once; when a TTL or a session ends, by the sweeper's next pass
  (BROKER_SWEEP_INTERVAL_SECONDS). Told means a message in its inbox from the holder, sent
  through the one send engine (so it is pushed, listed, durable): payload
  `{"lease_freed": {"paths": [...its waited-for paths], "workspace": ..., "why": released|expired|ended}}`.
"""

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from broker_site.errors import BrokerError, LimitReached
from leases.contracts import LeaseIn, ReleaseIn
from leases.models import FileLease, LeaseWaiter
from leases.selectors import lease_summary, leases_held, overlaps
from projects.audit import audit_done
from projects.auth import Principal
from projects.models import ApiKey
from routing.contracts import SendIn
from routing.sending import message_send
from sessions_app.models import AgentSession

log = logging.getLogger("broker.leases")
WAIT_SECONDS = 3600


def files_lease(session: AgentSession, asked: LeaseIn) -> dict[str, Any]:
    """Lease `asked.paths` for the session in its project's workspace: all granted (or renewed), or none, with
    the conflicting holders; a refused session is told when they free."""
    now = timezone.now()
    paths = list(dict.fromkeys(asked.paths))
    with transaction.atomic():
        _workspace_locked(session.project_id, asked.workspace)
        others = leases_held(session.project, asked.workspace, now).exclude(session=session).select_related("session")
        conflicts = [{"path": path, "held_by": lease_summary(lease)} for lease in others for path in paths
                     if (asked.mode == FileLease.Mode.EXCLUSIVE or lease.mode == FileLease.Mode.EXCLUSIVE)
                     and overlaps(path, lease.pattern)]
        if conflicts:
            told = _waiting(session, asked.workspace, list(dict.fromkeys(c["path"] for c in conflicts)), now)
            return {"granted": False, "conflicts": conflicts,
                    "hint": "Held by another session. " + (
                        "You get a lease_freed message when it frees; lease again then." if told else
                        "The project has too many sessions waiting to tell you when it frees: ask again later.")}
        _room_for(session, asked.workspace, paths, now)
        expires_at = now + timedelta(seconds=asked.ttl_seconds)
        for path in paths:
            FileLease.objects.update_or_create(
                session=session, workspace=asked.workspace, pattern=path,
                defaults={"project": session.project, "mode": asked.mode, "reason": asked.reason,
                          "expires_at": expires_at, "created_at": now})
        LeaseWaiter.objects.filter(session=session, workspace=asked.workspace, pattern__in=paths).delete()
        mine = FileLease.objects.filter(session=session, workspace=asked.workspace, pattern__in=paths)
        granted = [lease_summary(lease) for lease in mine.select_related("session")]
    return {"granted": True, "leases": granted}


def files_release(session: AgentSession, asked: ReleaseIn) -> dict[str, Any]:
    """End the session's leases on `asked.paths` (default: all of them in the workspace); waiters are told now."""
    with transaction.atomic():
        mine = FileLease.objects.filter(session=session, workspace=asked.workspace)
        if asked.paths is not None:
            mine = mine.filter(pattern__in=asked.paths)
        freed = list(mine.values_list("pattern", flat=True))
        mine.filter(pattern__in=freed).delete()
    _waiters_told(session, asked.workspace, freed, "released")
    return {"released": freed, "count": len(freed)}


def lease_end(lease: FileLease, *, caller: Principal) -> None:
    """An operator ends one lease (the dashboard): released as its holder would, waiters told, audited."""
    caller.require_role(ApiKey.Role.OPERATOR, "end file leases")
    files_release(lease.session, ReleaseIn(paths=[lease.pattern], workspace=lease.workspace))
    audit_done(caller, "lease_release", lease.project_id, {"session_id": str(lease.session_id), "path": lease.pattern})


def leases_ended(now: datetime | None = None, batch: int = 500) -> int:
    """The sweeper's pass: delete leases past their TTL or of sessions that ended (sessions_time_out ran
    first, so a silent session is marked ended by now), a batch per pass, and tell their waiters.

    Race: the holder renewing a lease as it expires. On PostgreSQL the rows are locked (SKIP
    LOCKED: two sweepers take different ones) and a renewal waits for this delete, then leases
    afresh; on SQLite the IMMEDIATE transaction runs alone.
    """
    now = now or timezone.now()
    over = Q(expires_at__lte=now) | Q(session__disconnected_at__isnull=False)
    with transaction.atomic():
        rows = list(FileLease.objects.filter(over).select_related("session")
                    .select_for_update(skip_locked=True, of=("self",))[:batch])
        FileLease.objects.filter(pk__in=[row.pk for row in rows]).delete()
    freed: dict[tuple[AgentSession, str, str], list[str]] = {}
    for row in rows:
        why = "expired" if row.expires_at <= now else "ended"
        freed.setdefault((row.session, row.workspace, why), []).append(row.pattern)
    for (holder, workspace, why), paths in freed.items():
        _waiters_told(holder, workspace, paths, why)
    LeaseWaiter.objects.filter(expires_at__lte=now).delete()
    return len(rows)


def _workspace_locked(project_id: str, workspace: str) -> None:
    """Serialize lease decisions in one workspace of a project, until the transaction ends (see the module)."""
    if connection.vendor != "postgresql":
        return  # SQLite: the IMMEDIATE transaction already runs alone
    digest = hashlib.blake2b(f"lease\0{project_id}\0{workspace}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def _room_for(session: AgentSession, workspace: str, paths: list[str], now: datetime) -> None:
    """A project holds at most MAX_LEASES_PER_PROJECT leases: a renewal takes no more room."""
    limit = settings.BROKER["MAX_LEASES_PER_PROJECT"]
    renewed = FileLease.objects.filter(session=session, workspace=workspace, pattern__in=paths).count()
    held = FileLease.objects.filter(project=session.project, expires_at__gt=now).count()
    if held - renewed + len(paths) > limit:
        raise LimitReached(f"The project holds {held} file leases; the limit is {limit}. Release some first.",
                           limit=limit, held=held)


def _waiting(session: AgentSession, workspace: str, paths: list[str], now: datetime) -> bool:
    """Remember that the session waits for `paths`, within the project's bound on waiters; False past it (the
    session is not told, and may still list_leases or lease again)."""
    if LeaseWaiter.objects.filter(project=session.project).count() + len(paths) > settings.BROKER[
            "MAX_LEASE_WAITERS_PER_PROJECT"]:
        return False
    for path in paths:
        LeaseWaiter.objects.update_or_create(session=session, workspace=workspace, pattern=path,
                                             defaults={"project": session.project,
                                                       "expires_at": now + timedelta(seconds=WAIT_SECONDS)})
    return True


def _waiters_told(holder: AgentSession, workspace: str, freed: list[str], why: str) -> None:
    """Each session waiting for a path overlapping one of `freed` gets one lease_freed message from the holder,
    naming the paths it waited for; its waits for them end."""
    if not freed:
        return
    waiting: dict[Any, list[LeaseWaiter]] = {}
    for waiter in LeaseWaiter.objects.filter(project_id=holder.project_id, workspace=workspace).exclude(
            session_id=holder.pk):
        if any(overlaps(waiter.pattern, path) for path in freed):
            waiting.setdefault(waiter.session_id, []).append(waiter)
    for session_id, waits in waiting.items():
        LeaseWaiter.objects.filter(pk__in=[w.pk for w in waits]).delete()
        news = {"lease_freed": {"paths": [w.pattern for w in waits], "workspace": workspace, "why": why}}
        try:
            message_send(holder, SendIn(recipient_id=str(session_id), payload=news))
        except BrokerError as exc:  # the waiter blocks the holder, or its queue is full: it can still look
            log.info("lease_freed_not_told", extra={"project": holder.project_id, "session_id": str(session_id),
                                                    "reason": exc.code})
