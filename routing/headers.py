"""Checks on what a sender hands over: headers and payload, before anything is stored."""

import json
from dataclasses import dataclass
from typing import Any

from broker_site.errors import PayloadTooLarge, ValidationFailed
from projects.models import Project
from routing.models import Message

PRIORITIES = {label: value for value, label in Message.Priority.choices}
MAX_TTL = 30 * 86_400


@dataclass(frozen=True)
class Headers:
    priority: int
    ttl: int | None
    correlation_id: str
    reply_to: str

    @classmethod
    def checked(cls, *, priority: Any = "normal", ttl: Any = None, correlation_id: Any = "",
                reply_to: Any = "") -> "Headers":
        if priority is None:
            priority = "normal"
        if priority not in PRIORITIES:
            raise ValidationFailed("priority is one of low, normal, high, urgent.", field="priority",
                                   allowed=list(PRIORITIES))
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL):
            raise ValidationFailed(f"ttl is a whole number of seconds from 1 to {MAX_TTL}.", field="ttl",
                                   minimum=1, maximum=MAX_TTL)
        for field, value, limit in (("correlation_id", correlation_id, 128), ("reply_to", reply_to, 100)):
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise ValidationFailed(f"{field} is a string of at most {limit} characters.", field=field,
                                       max_length=limit)
        return cls(PRIORITIES[priority], ttl, correlation_id or "", reply_to or "")

    def fields(self) -> dict[str, Any]:
        return {"priority": self.priority, "ttl": self.ttl, "correlation_id": self.correlation_id,
                "reply_to": self.reply_to}


def check_payload(project: Project, payload: Any) -> int:
    """A payload is a JSON object within the project's size limit; returns its size in bytes."""
    if not isinstance(payload, dict):
        raise ValidationFailed("payload must be a JSON object.", field="payload", expected="object",
                               got=type(payload).__name__)
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise ValidationFailed("payload must be plain JSON.", field="payload") from None
    if size > project.max_payload_bytes:
        raise PayloadTooLarge(f"payload is {size} bytes; the limit is {project.max_payload_bytes}.",
                              field="payload", size=size, limit=project.max_payload_bytes)
    return size
