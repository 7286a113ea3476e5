"""Advisory file leases: a session says which paths (or globs) it is editing, so others leave them alone."""

import uuid

from django.db import models
from django.utils import timezone

from projects.models import Project
from sessions_app.models import AgentSession


class FileLease(models.Model):
    """One path or glob a session holds in a workspace of its project, until `expires_at`, a release, or the
    session's end (a lease of a session no longer live holds nothing: leases.services)."""

    class Mode(models.TextChoices):
        EXCLUSIVE = "exclusive"  # nobody else may hold an overlapping path
        SHARED = "shared"  # others may share it; an exclusive one may not

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    workspace = models.CharField(max_length=64, blank=True, default="")
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="leases")
    pattern = models.CharField(max_length=300)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.EXCLUSIVE)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["project_id", "workspace", "pattern"]
        constraints = [models.UniqueConstraint(fields=["session", "workspace", "pattern"],
                                               name="filelease_one_per_pattern")]
        indexes = [models.Index(fields=["project", "workspace"], name="filelease_workspace"),
                   models.Index(fields=["expires_at"], name="filelease_expiry")]

    def __str__(self) -> str:
        return f"{self.pattern} ({self.mode}) held by {self.session_id}"


class LeaseWaiter(models.Model):
    """A session refused a path because another held it: told (a `lease_freed` message) when it frees."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    workspace = models.CharField(max_length=64, blank=True, default="")
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="+")
    pattern = models.CharField(max_length=300)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "workspace", "pattern"],
                                               name="leasewaiter_one_per_pattern")]
        indexes = [models.Index(fields=["project", "workspace"], name="leasewaiter_workspace"),
                   models.Index(fields=["expires_at"], name="leasewaiter_expiry")]

    def __str__(self) -> str:
        return f"{self.session_id} waits for {self.pattern}"
