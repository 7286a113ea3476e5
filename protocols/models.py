"""Protocols: (project, name, version) with a JSON Schema."""

import uuid

from django.db import models
from django.utils import timezone

from projects.models import Project

PROTOCOL_NAME_PATTERN = r"^[a-z][a-z0-9_]*[a-z0-9]$"
CAPABILITIES = ("point_to_point", "broadcast", "request_response", "streaming")


def default_capabilities() -> list[str]:
    return ["point_to_point"]


class Protocol(models.Model):
    # A fresh UUID per registration, never reused: the compiled-validator cache is keyed on it,
    # so a protocol deleted and registered again can never hit a stale validator.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="protocols")
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    # The parsed version, so the database can order 1.10.0 after 1.9.0.
    version_major = models.PositiveIntegerField()
    version_minor = models.PositiveIntegerField()
    version_patch = models.PositiveIntegerField()
    schema = models.JSONField()
    capabilities = models.JSONField(default=default_capabilities)
    tags = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=1000, blank=True, default="")
    author = models.CharField(max_length=100, blank=True, default="")
    shared = models.BooleanField(default=False)
    registered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "name", "version_major", "version_minor", "version_patch"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="protocol_unique_name_version"),
        ]
        indexes = [models.Index(fields=["shared", "name"], name="protocol_shared_name")]

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.project_id})"

    @property
    def version_key(self) -> tuple[int, int, int]:
        return (self.version_major, self.version_minor, self.version_patch)
