"""The WebSocket wire format: client frames checked before anything acts on them, server frames shaped.

Every frame is one JSON object with a `type`. A client frame may carry a `request_id`
(string or integer), echoed on the `result` or `error` frame that answers it. Unknown
types and unknown fields are refused, like unknown arguments on the other faces.
"""

import json
from typing import Any

from django.conf import settings

from broker_site.errors import BrokerError, PayloadTooLarge, ValidationFailed
from routing.models import Message
from routing.selectors import message_summary

CLIENT_FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"key", "project_id", "session_id", "name", "session_token", "capabilities", "presence"}),
    "ack": frozenset({"message_ids"}),
    "heartbeat": frozenset(),
    "send": frozenset({"recipient_id", "payload", "protocol_name", "protocol_version", "priority", "ttl",
                       "correlation_id", "reply_to"}),
    "broadcast": frozenset({"payload", "protocol_name", "protocol_version", "capability_filter", "priority",
                            "ttl", "correlation_id"}),
}
ENVELOPE = frozenset({"type", "request_id"})
TEXT_FIELDS = frozenset({"key", "project_id", "session_id", "name", "session_token", "recipient_id",
                         "protocol_name", "protocol_version", "priority", "correlation_id", "reply_to"})
MAX_TEXT = 500


def frame_decode(text: str | None, data: bytes | None) -> Any:
    """The JSON in a client's frame (any JSON value; frame_check judges it)."""
    raw = text if text is not None else data
    if raw is None:
        raise ValidationFailed("Empty frame.", field="type")
    if len(raw) > settings.BROKER["MAX_REQUEST_BYTES"]:
        raise PayloadTooLarge("The frame is too large.", limit_bytes=settings.BROKER["MAX_REQUEST_BYTES"])
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("A frame is one JSON object; this one is not valid JSON.", field="frame") from None


def frame_check(frame: Any) -> dict[str, Any]:
    """The frame as a dict of a known type with known fields, or a ValidationFailed naming what is wrong."""
    if not isinstance(frame, dict):
        raise ValidationFailed("A frame is one JSON object.", field="frame")
    kind = frame.get("type")
    if kind not in CLIENT_FIELDS:
        raise ValidationFailed("Unknown frame type.", field="type", allowed=sorted(CLIENT_FIELDS))
    unknown = sorted(set(frame) - CLIENT_FIELDS[kind] - ENVELOPE)
    if unknown:
        raise ValidationFailed(f"Unknown field {unknown[0]!r} in a {kind} frame.", field=unknown[0],
                               allowed=sorted(CLIENT_FIELDS[kind]))
    for field in TEXT_FIELDS & frame.keys():
        value = frame[field]
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise ValidationFailed(f"{field} is a string of at most {MAX_TEXT} characters.", field=field)
    return frame


def request_id_of(frame: Any) -> str | int | None:
    """The client's request id, if it is one we can echo (a short string or an integer)."""
    value = frame.get("request_id") if isinstance(frame, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value if not isinstance(value, str) or len(value) <= 100 else None


def error_frame(exc: BrokerError, request_id: str | int | None = None) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, **exc.as_dict()}


def result_frame(kind: str, request_id: str | int | None, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "result", "request_id": request_id, "for": kind, "result": result}


def message_frame(message: Message) -> dict[str, Any]:
    return {"type": "message", "message": message_summary(message)}
