"""The audit trail: who did what to which project, and whether it was allowed.

A leaf every app may use: it knows the AuditEvent model and nothing else. Every failed
authentication, every change to keys and projects, every operator action and every
cross-project attempt is recorded here, and logged without secrets. The trail is bounded:
events are deleted after BROKER_AUDIT_RETENTION_SECONDS (the sweeper), and failed
authentications, which anyone can cause without a key, fold into a row a minute per address.
"""

import logging
from datetime import datetime, timedelta
from typing import Protocol

from django.db.models import F
from django.utils import timezone

from projects.models import AuditEvent

log = logging.getLogger("broker.audit")


class Actor(Protocol):
    """Whoever acts: an API key (projects.auth.Caller) or trusted staff (the command line, an admin user)."""

    @property
    def actor(self) -> str: ...

    @property
    def source_project(self) -> str: ...


def audit_record(action: str, outcome: str, *, actor_key_id: str = "", source_project: str = "",
                 target_project: str = "", remote_addr: str = "", details: dict | None = None) -> AuditEvent:
    event = AuditEvent.objects.create(
        action=action, outcome=outcome, actor_key_id=actor_key_id[:100], source_project=source_project[:64],
        target_project=target_project[:64], remote_addr=remote_addr[:64], details=details or {},
    )
    log.info("audit", extra={"action": action, "outcome": outcome, "actor": actor_key_id,
                             "source_project": source_project, "target_project": target_project})
    return event


def audit_done(actor: Actor, action: str, target_project: str, details: dict | None = None) -> AuditEvent:
    """A change `actor` made to `target_project`, recorded as a success."""
    return audit_record(action, AuditEvent.Outcome.SUCCESS, actor_key_id=actor.actor,
                        source_project=actor.source_project, target_project=target_project, details=details)


def audit_refused(actor: Actor, action: str, target_project: str, details: dict | None = None) -> AuditEvent:
    """Something `actor` tried on `target_project` and was refused."""
    return audit_record(action, AuditEvent.Outcome.DENIED, actor_key_id=actor.actor,
                        source_project=actor.source_project, target_project=target_project, details=details)


AUTH_FAILED = "auth_failed"
AUTH_FAILURE_WINDOW = timedelta(minutes=1)
# Rows of failed authentications one window may add; past it, new addresses share one row ("*").
AUTH_FAILURE_ROWS_PER_WINDOW = 100


def auth_failure_record(reason: str, *, remote_addr: str = "", actor_key_id: str = "",
                        target_project: str = "") -> None:
    """A failed authentication, counted into the window's row for this address and reason.

    Name a target project only when the failure is that project's beyond doubt (its real key,
    revoked or expired): a key that does not match proves nothing about the project its prefix
    names, and attributing it there would let anyone fill that project's trail.

    Race: two processes may both find no row for the window and insert one each; the window
    then has two rows for the address, which the count still adds up correctly across.
    """
    now = timezone.now()
    window = AuditEvent.objects.filter(action=AUTH_FAILED, created_at__gte=now - AUTH_FAILURE_WINDOW)
    remote_addr = remote_addr[:64]
    if _counted(window, remote_addr, reason, actor_key_id, target_project):
        return
    if window.count() >= AUTH_FAILURE_ROWS_PER_WINDOW:
        remote_addr, actor_key_id, target_project = "*", "", ""
        if _counted(window, remote_addr, reason, actor_key_id, target_project):
            return
    audit_record(AUTH_FAILED, AuditEvent.Outcome.DENIED, actor_key_id=actor_key_id, target_project=target_project,
                 remote_addr=remote_addr, details={"reason": reason})


def _counted(window, remote_addr: str, reason: str, actor_key_id: str, target_project: str) -> bool:
    row = (window.filter(remote_addr=remote_addr, actor_key_id=actor_key_id[:100], target_project=target_project[:64],
                         details__reason=reason).order_by("-created_at").values_list("pk", flat=True).first())
    return row is not None and AuditEvent.objects.filter(pk=row).update(count=F("count") + 1) == 1


def audit_purge(before: datetime, batch: int = 1000) -> int:
    """Delete audit events older than `before`, oldest first, one batch per call (the sweeper's pass)."""
    old = list(AuditEvent.objects.filter(created_at__lt=before).order_by("created_at")
               .values_list("pk", flat=True)[:batch])
    deleted, _ = AuditEvent.objects.filter(pk__in=old).delete()
    return deleted
