"""The WebSocket wire format: client frames checked against their operations' contracts, server frames shaped.

Every frame is one JSON object with a `type`. A client frame may carry a `request_id`
(string or integer), echoed on the `result` or `error` frame that answers it. A `send` or
`broadcast` frame is its operation's contract (routing.contracts) with a type, a `hello` the
connect contract with the key and presence; unknown types and unknown fields are refused,
like unknown arguments on the other faces.

A frame is measured before it is read: a socket that has not said hello may send only a small
one (BROKER_WS_HELLO_MAX_BYTES: a hello is small), any other at most BROKER_MAX_REQUEST_BYTES;
its JSON may nest at most BROKER_MAX_JSON_DEPTH deep (broker_site.jsonbounds), as on every face.
"""

import json
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import Field, StringConstraints

from broker_site.contracts import Contract, parsed
from broker_site.errors import BrokerError, PayloadTooLarge, ValidationFailed
from broker_site.jsonbounds import json_parsed
from leases.contracts import LeaseIn, ReleaseIn
from routing.contracts import AckIn, BroadcastIn, SearchIn, SendIn, ThreadIn
from routing.models import Message
from routing.selectors import message_summary
from sessions_app.contracts import ConnectIn, SetStatusIn

RequestId = int | Annotated[str, StringConstraints(max_length=100)] | None


class Framed(Contract):
    """What every client frame may carry besides its operation's fields: the id its answer echoes."""

    request_id: RequestId = None


class HelloFrame(ConnectIn, Framed):
    type: Literal["hello"]
    key: str | None = Field(None, max_length=500, description="unless a header carried it")
    project_id: str | None = Field(None, max_length=64, description="operators: the project to act in")
    presence: bool = Field(True, description="false: no session_joined / session_left frames")


class AckFrame(AckIn, Framed):
    type: Literal["ack"]


class HeartbeatFrame(Framed):
    type: Literal["heartbeat"]


class StatusFrame(SetStatusIn, Framed):
    type: Literal["set_status"]


class ThreadFrame(ThreadIn, Framed):
    type: Literal["get_thread"]


class SearchFrame(SearchIn, Framed):
    type: Literal["search_messages"]


class LeaseFrame(LeaseIn, Framed):
    type: Literal["lease_files"]


class ReleaseFrame(ReleaseIn, Framed):
    type: Literal["release_files"]


class SendFrame(SendIn, Framed):
    type: Literal["send"]


class BroadcastFrame(BroadcastIn, Framed):
    type: Literal["broadcast"]


ClientFrame = (HelloFrame | AckFrame | HeartbeatFrame | StatusFrame | ThreadFrame | SearchFrame | LeaseFrame
               | ReleaseFrame | SendFrame | BroadcastFrame)
# By type, rather than one discriminated union: an error then names the field ("ttl"), not the union's arm.
FRAMES: dict[str, type[ClientFrame]] = {"hello": HelloFrame, "ack": AckFrame, "heartbeat": HeartbeatFrame,
                                        "set_status": StatusFrame, "get_thread": ThreadFrame,
                                        "search_messages": SearchFrame, "lease_files": LeaseFrame,
                                        "release_files": ReleaseFrame, "send": SendFrame, "broadcast": BroadcastFrame}


Raw = str | bytes | None


def frame_size_check(raw: Raw, *, hello_said: bool) -> None:
    """Refuse an empty frame, and before hello one over the hello limit, by its length alone (characters of a
    text frame, bytes of a binary one). A frame over the transport's limit never gets here: the consumer closes
    the socket with 1009 first (routing.live.frame_limit_set)."""
    if raw is None:
        raise ValidationFailed("Empty frame.", field="type")
    limit = settings.BROKER["WS_HELLO_MAX_BYTES"]
    if not hello_said and len(raw) > limit:
        raise PayloadTooLarge("Before hello, a frame is small: this one is too large.", limit_bytes=limit)


def frame_decode(raw: Raw) -> Any:
    """The JSON in a client's frame (any JSON value; frame_check judges it)."""
    try:
        return json_parsed(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("A frame is one JSON object; this one is not valid JSON.", field="frame") from None


def frame_check(frame: Any) -> ClientFrame:
    """The frame as its type's contract, or a ValidationFailed naming what is wrong."""
    if not isinstance(frame, dict):
        raise ValidationFailed("A frame is one JSON object.", field="frame")
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in FRAMES:
        raise ValidationFailed("Unknown frame type.", field="type", allowed=list(FRAMES))
    return parsed(FRAMES[kind], frame, what=f"{kind} frame")


def request_id_of(frame: Any) -> str | int | None:
    """The client's request id, if it is one we can echo (a short string or an integer)."""
    value = frame.get("request_id") if isinstance(frame, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value if not isinstance(value, str) or len(value) <= 100 else None


def refused_request_id(raw: Raw) -> str | int | None:
    """The request id of a frame refused before it was read (too large, rate limited), if it is small
    enough to read cheaply; a large one is answered without it."""
    if raw is None or len(raw) > settings.BROKER["WS_HELLO_MAX_BYTES"]:
        return None
    try:
        # Plain json: a frame refused for what it holds (too deep, a NUL) still has a request id to echo.
        return request_id_of(json.loads(raw))
    except (RecursionError, ValueError, UnicodeDecodeError):
        return None


def error_frame(exc: BrokerError, request_id: str | int | None = None) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, **exc.as_dict()}


def result_frame(kind: str, request_id: str | int | None, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "result", "request_id": request_id, "for": kind, "result": result}


def message_frame(message: Message) -> dict[str, Any]:
    return {"type": "message", "message": message_summary(message)}
