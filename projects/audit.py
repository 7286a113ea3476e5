"""The audit trail: who did what to which project, and whether it was allowed.

A leaf every app may use: it knows the AuditEvent model and nothing else. Every failed
authentication, every change to keys and projects, every operator action and every
cross-project attempt is recorded here, and logged without secrets.
"""

import logging
from typing import Protocol

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
