"""Connected agents. Status is derived from the last heartbeat, never stored.

The one definition of a session's status, in Python (`status_at`) and in SQL (`status_q`):
disconnected once marked so (it left, an admin or a time-out ended it) or once silent for
the project's disconnect_after; stale after stale_after; active otherwise. "Live" means
active or stale: every check of liveness, on every face, is this one.
"""

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from projects.models import Project

SESSION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,99}$"
LIVE = "live"  # active or stale
# Disconnect reasons with a meaning of their own: made by an operator and not yet used
# (`broker_session create`), and ended by an operator (which a configured client does not undo
# by merely calling again; see sessions_app.services.session_acting).
PROVISIONED = "provisioned"
ENDED_BY_OPERATOR = "operator"


def session_status(disconnected_at: datetime | None, last_heartbeat_at: datetime, project: Project,
                   now: datetime) -> str:
    if disconnected_at is not None:
        return AgentSession.Status.DISCONNECTED
    idle = (now - last_heartbeat_at).total_seconds()
    if idle >= project.disconnect_after:
        return AgentSession.Status.DISCONNECTED
    if idle >= project.stale_after:
        return AgentSession.Status.STALE
    return AgentSession.Status.ACTIVE


class AgentSession(models.Model):
    class Activity(models.TextChoices):
        WORKING = "working"
        IDLE = "idle"
        BLOCKED = "blocked"
        WAITING = "waiting"

    class Status(models.TextChoices):
        ACTIVE = "active"
        STALE = "stale"
        DISCONNECTED = "disconnected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    name = models.CharField(max_length=100, null=True, blank=True)
    # SHA-256 of the session token; the token itself is shown once, at connect.
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    supported_protocols = models.JSONField(default=dict, blank=True)
    supported_features = models.JSONField(default=list, blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    disconnect_reason = models.CharField(max_length=32, blank=True, default="")
    # Bumped when a resume replaces the connection, so the old connection can tell it was replaced.
    connection_epoch = models.PositiveIntegerField(default=1)
    # While a live WebSocket holds the session, its server process renews this lease every few
    # seconds; a send to a session with a current lease is being pushed, so it reports `delivered`.
    # A lease, not a flag, so a killed process cannot leave a session looking connected.
    push_until = models.DateTimeField(null=True, blank=True)
    created_by_key = models.CharField(max_length=100, blank=True, default="")
    # Made by an operator for a client to configure (`broker_session create`): a team's standing
    # identity, kept however long it stays away, so the purge of long-disconnected sessions skips it.
    provisioned = models.BooleanField(default=False)
    # A person at the operators' dashboard, not an agent: the staff user this session speaks for
    # (sessions_app.services.session_for_human). Blank for every agent.
    human = models.CharField(max_length=150, blank=True, default="")
    # What the agent says it is doing (set_status): shown in list_sessions, presence and the dashboard.
    activity_state = models.CharField(max_length=16, choices=Activity.choices, blank=True, default="")
    activity_summary = models.CharField(max_length=200, blank=True, default="")
    activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["connected_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], condition=Q(name__isnull=False),
                                    name="agentsession_unique_name_per_project"),
        ]
        indexes = [models.Index(fields=["project", "disconnected_at", "last_heartbeat_at"],
                                name="agentsession_presence"),
                   # The sweeper's purge reads the oldest disconnected sessions every pass, in every process;
                   # provisioned ones are never purged, so they are not in the index either.
                   models.Index(fields=["disconnected_at"], name="agentsession_purge_due",
                                condition=Q(disconnected_at__isnull=False, provisioned=False))]

    def __str__(self) -> str:
        return self.name or str(self.id)

    def status_at(self, now: datetime | None = None) -> str:
        return session_status(self.disconnected_at, self.last_heartbeat_at, self.project, now or timezone.now())

    @property
    def status(self) -> str:
        return self.status_at()

    def is_live_at(self, now: datetime | None = None) -> bool:
        return self.status_at(now) != self.Status.DISCONNECTED

    @classmethod
    def status_q(cls, project: Project, status: str, now: datetime | None = None) -> Q:
        """Sessions of `project` with `status` (active, stale, live, disconnected; anything else: all)."""
        now = now or timezone.now()
        stale_cut = now - timedelta(seconds=project.stale_after)
        gone_cut = now - timedelta(seconds=project.disconnect_after)
        connected = Q(disconnected_at__isnull=True)
        if status == cls.Status.ACTIVE:
            return connected & Q(last_heartbeat_at__gt=stale_cut)
        if status == cls.Status.STALE:
            return connected & Q(last_heartbeat_at__lte=stale_cut, last_heartbeat_at__gt=gone_cut)
        if status == LIVE:
            return connected & Q(last_heartbeat_at__gt=gone_cut)
        if status == cls.Status.DISCONNECTED:
            return ~connected | Q(last_heartbeat_at__lte=gone_cut)
        return Q()

    @property
    def label(self) -> str:
        return self.name or str(self.id)


class SessionBlock(models.Model):
    """`blocker` refuses messages from `blocked`."""

    blocker = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="blocked_by")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="sessionblock_unique_pair")]

    def __str__(self) -> str:
        return f"{self.blocker} blocks {self.blocked}"
