"""Tenants, their API keys, the consent links between them, and the audit trail."""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

PROJECT_ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}[a-z0-9]$"
KEY_ID_PATTERN = r"^[a-z0-9-]{1,32}$"
# A link in these states holds its pair of projects: no second request while it lasts.
LIVE_LINK_STATES = ("pending", "active", "suspended")
# Why a message across a link was refused; each has its counter on the link (refused_<reason>).
LINK_REFUSALS = ("inactive", "direction", "protocol", "size", "rate")


class Project(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        INACTIVE = "inactive"
        SUSPENDED = "suspended"

    class Registration(models.TextChoices):
        ANY = "any", "any agent"
        ADMIN = "admin", "admins only"

    class LinkVisibility(models.TextChoices):
        # What a project linked to this one sees of its live sessions (sessions_app.linked).
        CAPABILITIES = "capabilities", "names and capabilities"
        NAMES = "names", "names only"
        NONE = "none", "nothing"

    id = models.CharField(
        primary_key=True,
        max_length=64,
        validators=[RegexValidator(PROJECT_ID_PATTERN, "lowercase letters, digits and hyphens; 2-64 chars")],
        verbose_name="project id",
    )
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    discoverable = models.BooleanField(default=False)

    # Per-project configuration. Defaults are the SPEC's.
    max_sessions = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    max_protocols = models.PositiveIntegerField(default=500, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    max_queue_size = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)])
    stale_after = models.PositiveIntegerField(default=30, help_text="seconds without a heartbeat before a session is stale",
                                              validators=[MinValueValidator(1), MaxValueValidator(86_400)])
    disconnect_after = models.PositiveIntegerField(default=60, help_text="seconds without a heartbeat before it is disconnected",
                                                   validators=[MinValueValidator(2), MaxValueValidator(604_800)])
    ack_timeout = models.PositiveIntegerField(default=30, help_text="seconds a delivered message waits for its ack",
                                              validators=[MinValueValidator(1), MaxValueValidator(86_400)])
    max_attempts = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(100)])
    rate_limit_per_minute = models.PositiveIntegerField(default=6000, help_text="requests per key per minute",
                                                        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)])
    max_payload_bytes = models.PositiveIntegerField(default=10 * 1024 * 1024,
                                                    validators=[MinValueValidator(1024), MaxValueValidator(10 * 1024 * 1024)])
    protocol_registration = models.CharField(max_length=8, choices=Registration.choices, default=Registration.ANY)
    link_visibility = models.CharField(max_length=16, choices=LinkVisibility.choices,
                                       default=LinkVisibility.CAPABILITIES,
                                       help_text="what linked projects see of this project's live sessions")
    # The quotas an operator set (projects.quotas): a project's admins may not go above these.
    quota_grants = models.JSONField(default=dict, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ApiKey(models.Model):
    class Role(models.TextChoices):
        AGENT = "agent"
        ADMIN = "admin"
        OPERATOR = "operator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    key_id = models.CharField(max_length=32, validators=[RegexValidator(KEY_ID_PATTERN)])
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    label = models.CharField(max_length=100, blank=True, default="")
    # SHA-256 of the whole raw key. Secrets are 238 random bits, so a fast digest is enough.
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["project_id", "created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "key_id"], name="apikey_unique_key_id_per_project")]

    def __str__(self) -> str:
        return f"{self.project_id}_{self.key_id} ({self.role})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ProjectLink(models.Model):
    """Consent for two projects to talk: requested by an admin of `source`, accepted by one of the target.

    The target is a plain project id, not a reference: asking names a project that may not exist,
    and the requester gets the same answer either way (a pending request that expires), so ids
    cannot be probed. projects.links holds every rule; this is the record.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        SUSPENDED = "suspended"
        REVOKED = "revoked"
        DECLINED = "declined"
        EXPIRED = "expired"

    class Direction(models.TextChoices):
        BOTH = "both"
        SOURCE_TO_TARGET = "source_to_target"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="links_out")
    target_project_id = models.CharField(max_length=64)
    # The two ids, sorted, joined by "|": at most one link per pair of projects is pending, active or suspended.
    pair = models.CharField(max_length=129, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The terms in force (the target may narrow the requested ones when it accepts; `requested` keeps those).
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.BOTH)
    allowed_protocols = models.JSONField(null=True, blank=True, help_text="null: any message; else only these")
    rate_limit_per_minute = models.PositiveIntegerField(help_text="messages a minute, each direction")
    max_message_bytes = models.PositiveIntegerField()
    requested = models.JSONField(default=dict, editable=False)

    requested_by = models.CharField(max_length=100, blank=True, default="")
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="a pending request not answered by then expires")
    answered_by = models.CharField(max_length=100, blank=True, default="")
    answered_at = models.DateTimeField(null=True, blank=True)
    suspended_by = models.CharField(max_length=64, blank=True, default="", help_text="the project that suspended it")
    ended_by = models.CharField(max_length=100, blank=True, default="")
    ended_at = models.DateTimeField(null=True, blank=True)

    # Traffic across the link: messages accepted, first deliveries, and refusals by reason.
    sent = models.PositiveBigIntegerField(default=0)
    delivered = models.PositiveBigIntegerField(default=0)
    refused_inactive = models.PositiveBigIntegerField(default=0, help_text="while pending, suspended or ended")
    refused_direction = models.PositiveBigIntegerField(default=0)
    refused_protocol = models.PositiveBigIntegerField(default=0)
    refused_size = models.PositiveBigIntegerField(default=0)
    refused_rate = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [models.UniqueConstraint(fields=["pair"], condition=models.Q(state__in=LIVE_LINK_STATES),
                                               name="projectlink_one_live_per_pair")]
        indexes = [models.Index(fields=["target_project_id", "state"], name="projectlink_incoming"),
                   models.Index(fields=["expires_at"], name="projectlink_expiry_due",
                                condition=models.Q(state="pending"))]

    def __str__(self) -> str:
        arrow = "<->" if self.direction == self.Direction.BOTH else "->"
        return f"{self.source_id} {arrow} {self.target_project_id} ({self.state})"

    @property
    def refusals(self) -> dict[str, int]:
        return {reason: getattr(self, f"refused_{reason}") for reason in LINK_REFUSALS}

    def other_side(self, project_id: str) -> str:
        return self.target_project_id if project_id == self.source_id else self.source_id


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success"
        DENIED = "denied"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    # Plain strings, not foreign keys: the trail outlives keys and names projects that may not exist.
    actor_key_id = models.CharField(max_length=100, blank=True, default="")
    source_project = models.CharField(max_length=64, blank=True, default="", db_index=True)
    target_project = models.CharField(max_length=64, blank=True, default="", db_index=True)
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    # How many times it happened: failed authentications from one address fold into one row a minute (audit.py).
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"
