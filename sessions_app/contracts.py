"""What a client hands over to connect (or resume), list sessions and block: one contract per operation."""

from typing import Any, Literal

from pydantic import Field

from broker_site.contracts import Contract
from sessions_app.models import AgentSession
from sessions_app.selectors import STATUS_FILTERS

StatusFilter = Literal[STATUS_FILTERS]  # type: ignore[valid-type]


class ConnectIn(Contract):
    name: str | None = Field(None, max_length=100, description="unique in the project")
    capabilities: dict[str, Any] | None = Field(
        None, description='{"supported_protocols": {"name": ["1.0.0"]}, "supported_features": ["..."]}')
    session_id: str | None = Field(None, max_length=100, description="to resume: its id or name")
    session_token: str | None = Field(None, max_length=200, description="to resume: its token")


class ListSessionsIn(Contract):
    status_filter: StatusFilter = "live"
    include_capabilities: bool = True
    project_id: str | None = Field(None, max_length=64, description="a linked project's")


class SetStatusIn(Contract):
    summary: str = Field(max_length=200)
    state: Literal[tuple(AgentSession.Activity.values)] = "working"  # type: ignore[valid-type]


class BlockIn(Contract):
    session: str = Field(min_length=1, max_length=100, description="id or name of the session to block")
