"""What a client hands over to send, broadcast, receive, ack and purge: one contract per operation.

The same models are the MCP tools' arguments, the WebSocket frames' fields and the REST bodies.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from broker_site.contracts import Contract, Moment, Uuid
from routing.models import Message

Priority = Literal[tuple(Message.Priority.labels)]  # type: ignore[valid-type]
MAX_TTL = 30 * 86_400
MAX_IDS = 1000
MessageId = Annotated[str, StringConstraints(max_length=40)]
Feature = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class MessageIn(Contract):
    """What every message carries, 1:1 or broadcast."""

    payload: dict[str, Any]
    protocol_name: str | None = Field(None, max_length=100)
    protocol_version: str | None = Field(None, max_length=32, description="default: your highest")
    priority: Priority = "normal"
    ttl: int | None = Field(None, ge=1, le=MAX_TTL, description="seconds")
    correlation_id: str = Field("", max_length=128)
    reply_to: str = Field("", max_length=100)
    thread_id: Uuid | None = Field(None, description="default: reply_to's, else new")


class SendIn(MessageIn):
    recipient_id: str = Field(min_length=1, max_length=200, description="session id or name; linked: project_id/name")
    target_project_id: str | None = Field(None, max_length=64)


class RequestReplyIn(SendIn):
    timeout_seconds: float = Field(30, ge=0.1, le=60, description="for the reply")


class BroadcastIn(MessageIn):
    capability_filter: dict[Feature, bool] | None = Field(
        None, max_length=50, description="feature: must have (true) / must not have (false)")


class ReceiveIn(Contract):
    max: int = Field(10, ge=1, le=100)
    wait_seconds: float = Field(0, ge=0, le=60, description="wait this long for mail if none is queued")
    auto_ack: bool = False


class ThreadIn(Contract):
    thread_id: Uuid
    after: Uuid | None = Field(None, description="next_after")
    limit: int = Field(50, ge=1, le=100)


class SearchIn(Contract):
    query: str = Field(min_length=1, max_length=200, description="all words must appear")
    thread_id: Uuid | None = None
    sender: str | None = Field(None, max_length=100, description="session id or name")
    protocol: str | None = Field(None, max_length=100)
    since: Moment | None = None
    limit: int = Field(20, ge=1, le=50)
    offset: int = Field(0, ge=0, le=1000)


class AckIn(Contract):
    message_ids: list[MessageId] = Field(min_length=1, max_length=MAX_IDS)


class PurgeIn(Contract):
    message_ids: list[MessageId] | None = Field(None, max_length=MAX_IDS, description="default: every dead letter")
