"""What a client hands over to create, change and list projects, and to manage keys: one contract per operation.

Types and bounds only; the rules (the id pattern, the settings' ranges, who may do what) are
the services' and the model's, so they hold for every caller.
"""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from broker_site.contracts import Contract, Moment
from projects.models import ApiKey, Project, ProjectLink

Registration = Literal[tuple(Project.Registration.values)]  # type: ignore[valid-type]
Visibility = Literal[tuple(Project.LinkVisibility.values)]  # type: ignore[valid-type]
Role = Literal[tuple(ApiKey.Role.values)]  # type: ignore[valid-type]


class ProjectConfigIn(Contract):
    # A project's limits and settings (times in seconds); each is optional, the model's defaults apply.
    # No docstring: it would go into every tool listing that carries the model.
    max_sessions: int | None = None
    max_protocols: int | None = None
    max_queue_size: int | None = None
    stale_after: int | None = None
    disconnect_after: int | None = None
    ack_timeout: int | None = None
    max_attempts: int | None = None
    rate_limit_per_minute: int | None = None
    max_payload_bytes: int | None = None
    protocol_registration: Registration | None = None
    link_visibility: Visibility | None = None

    def changes(self) -> dict:
        return self.model_dump(exclude_unset=True, exclude_none=True, mode="json")


class ProjectCreateIn(Contract):
    project_id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    description: str = Field("", max_length=500)
    discoverable: bool = False
    config: ProjectConfigIn | None = None

    def project_fields(self) -> dict:
        """As projects.services.project_create takes them."""
        return {**self.model_dump(exclude={"config"}), "config": self.config.changes() if self.config else None}


class ProjectUpdateIn(ProjectConfigIn):
    name: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=500)
    discoverable: bool | None = None


class ListProjectsIn(Contract):
    name_filter: str = Field("", max_length=100)
    include_inactive: bool = False
    include_stats: bool = False


class ProjectInfoIn(Contract):
    include_config: bool = False
    include_stats: bool = True
    include_permissions: bool = False


class KeyCreateIn(Contract):
    role: Role = ApiKey.Role.AGENT.value
    label: str = Field("", max_length=100)
    expires_at: Moment | None = None


class KeyRotateIn(Contract):
    grace_period_seconds: int = Field(300, ge=0, le=604_800, description="how long the old key still works")


LinkDirection = Literal[tuple(ProjectLink.Direction.values)]  # type: ignore[valid-type]
ProtocolTerm = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MAX_LINK_PROTOCOLS = 50


class LinkTermsIn(Contract):
    allowed_protocols: list[ProtocolTerm] | None = Field(
        None, min_length=1, max_length=MAX_LINK_PROTOCOLS, description='"name" or "name@>=1.0.0,<2.0.0"; default any')
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000, description="each way")
    max_message_bytes: int | None = Field(None, ge=1, le=10 * 1024 * 1024)
    direction: LinkDirection | None = None

    def terms(self) -> dict:
        return self.model_dump(include=set(LinkTermsIn.model_fields), exclude_none=True)


class LinkRequestIn(LinkTermsIn):
    target_project_id: str = Field(min_length=1, max_length=64)


class LinkAcceptIn(LinkTermsIn):
    link_id: str = Field(min_length=1, max_length=40)


class LinkManageIn(Contract):
    link_id: str = Field(min_length=1, max_length=40)
    action: Literal["decline", "suspend", "resume", "revoke"]


class LinkListIn(Contract):
    state: Literal[tuple(ProjectLink.State.values)] | None = None  # type: ignore[valid-type]
    all: bool = Field(False, description="operators: every project's links")
