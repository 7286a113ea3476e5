"""Protocols: (project, name, version) with a JSON Schema."""

import uuid

from django.db import models
from django.utils import timezone

from projects.models import Project

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


class ProtocolAdapter(models.Model):
    """A project's declarative conversion of `protocol_name` payloads from one version to another.

    Versions are held as strings rather than foreign keys to Protocol: a protocol version is
    deleted and registered again as a new row, and the adapter describes the versions, not one
    registration of them. An adapter whose versions are not (or no longer) registered is inert.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="protocol_adapters")
    protocol_name = models.CharField(max_length=100)
    from_version = models.CharField(max_length=32)
    to_version = models.CharField(max_length=32)
    # [{"op": "rename", "from": ..., "to": ...} | {"op": "drop", "field": ...}
    #  | {"op": "set_default", "field": ..., "value": ...}], checked by transform.operations_check.
    operations = models.JSONField(default=list)
    author = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "protocol_name", "from_version", "to_version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "protocol_name", "from_version", "to_version"],
                                    name="protocoladapter_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.protocol_name} {self.from_version} -> {self.to_version} ({self.project_id})"
