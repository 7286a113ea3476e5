"""Tenants, their API keys, the consent links between them, and the audit trail."""

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

PROJECT_ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}[a-z0-9]$"
KEY_ID_PATTERN = r"^[a-z0-9-]{1,32}$"


class Project(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        INACTIVE = "inactive"
        SUSPENDED = "suspended"

    class Registration(models.TextChoices):
        ANY = "any", "any agent"
        ADMIN = "admin", "admins only"

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
    """Consent for two projects to talk. Active only when both sides' admins agreed."""

    source = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="links_out")
    target = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="links_in")
    source_consented_at = models.DateTimeField(null=True, blank=True)
    target_consented_at = models.DateTimeField(null=True, blank=True)
    allowed_protocols = models.JSONField(default=list, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_payload_bytes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "target"], name="projectlink_unique_pair")]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id}"

    @property
    def is_active(self) -> bool:
        return self.source_consented_at is not None and self.target_consented_at is not None


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
