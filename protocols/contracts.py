"""What a client hands over to register, discover, adapt and negotiate protocols: one contract per operation.

Types and bounds only; the rules (snake_case names, semver, a valid JSON Schema, the project's
limits) are the services', so they hold for every caller.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from broker_site.contracts import Contract
from protocols.models import CAPABILITIES
from protocols.negotiation import MATRIX_MAX, MATRIX_MIN, MAX_REQUIRED

Capability = Literal[CAPABILITIES]  # type: ignore[valid-type]
Tag = Annotated[str, StringConstraints(max_length=50)]
SessionRef = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LinkedSessionRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RegisterIn(Contract):
    name: str = Field(max_length=100, description="snake_case")
    version: str = Field(max_length=32, description="semver MAJOR.MINOR.PATCH")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema for payloads")
    capabilities: list[Capability] | None = Field(None, min_length=1)
    tags: list[Tag] | None = Field(None, max_length=20)
    description: str = Field("", max_length=1000)
    shared: bool = False


class DiscoverIn(Contract):
    name: str | None = Field(None, max_length=100)
    version_range: str | None = Field(None, description='e.g. ">=1.0.0,<2.0.0"')
    tags: list[Tag] | None = Field(None, max_length=20, description="all must match")
    include_shared: bool = False
    include_linked: bool = False
    limit: int = Field(50, ge=1, le=50)
    offset: int = Field(0, ge=0, le=10_000)


class NegotiateIn(Contract):
    target_session_id: LinkedSessionRef = Field(description="id or name; linked: project_id/name")
    required_protocols: list[str | dict[str, Any]] | None = Field(
        None, max_length=MAX_REQUIRED, description='names, or {"name": ..., "version" or "version_range": ...}')


class NegotiateRestIn(NegotiateIn):
    """REST may also name the source session (a read about it) instead of acting as it."""

    session_id: SessionRef | None = Field(None, description="the source session's id or name; "
                                                            "default: the X-Session-Token session")


class ProtocolQueryIn(Contract):
    include_shared: bool = False


class MatrixIn(Contract):
    session_ids: list[SessionRef] | None = Field(
        None, min_length=MATRIX_MIN, max_length=MATRIX_MAX,
        description="session ids or names; default: the project's live sessions (at most 50)")


class AdapterIn(Contract):
    from_version: str = Field(max_length=32)
    to_version: str = Field(max_length=32)
    operations: list[Any] = Field(description='[{"op": "rename", "from": "a", "to": "b"} | {"op": "drop", "field": "a"}'
                                              ' | {"op": "set_default", "field": "a", "value": ...}]; fields may be '
                                              'dotted paths such as meta.by')


class TransformIn(Contract):
    payload: dict[str, Any] = Field(description="a payload of the protocol version in the path")
    target_version: str = Field(max_length=32)
