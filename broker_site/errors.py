"""The broker's one error vocabulary.

Services raise these; each face (REST, MCP, WebSocket, admin) has exactly one
mapper from them to its wire format: {error, message, details}.
"""

from typing import Any


class BrokerError(Exception):
    code = "internal_error"
    status = 500
    default_message = "The broker could not complete the request."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


def http_headers(exc: BrokerError) -> dict[str, str]:
    """The HTTP headers an error's answer carries, on every HTTP face: how to authenticate, when to retry."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if "retry_after" in exc.details:
        headers["Retry-After"] = str(exc.details["retry_after"])
    return headers


class ValidationFailed(BrokerError):
    code = "validation_error"
    status = 400
    default_message = "The request is not valid."


class Unauthorized(BrokerError):
    code = "unauthorized"
    status = 401
    # One message for every failure, so a caller never learns whether the project or the key was wrong.
    default_message = "Missing or invalid API key."


class Forbidden(BrokerError):
    code = "forbidden"
    status = 403
    default_message = "This key may not do that."


class ProjectBoundary(BrokerError):
    code = "project_boundary"
    status = 403
    default_message = "That is outside this key's project."


class NotFound(BrokerError):
    code = "not_found"
    status = 404
    default_message = "No such thing in this project."


class Conflict(BrokerError):
    code = "conflict"
    status = 409
    default_message = "That conflicts with what already exists."


class PayloadTooLarge(BrokerError):
    code = "payload_too_large"
    status = 413
    default_message = "The payload is larger than the limit."


class Incompatible(BrokerError):
    code = "incompatible"
    status = 422
    default_message = "The sessions have no compatible protocol version."


class QueueFull(BrokerError):
    code = "queue_full"
    status = 429
    default_message = "The recipient's queue is full."


class RateLimited(BrokerError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests; retry later."


class LimitReached(BrokerError):
    code = "limit_reached"
    status = 409
    default_message = "A project limit has been reached."


class ShuttingDown(BrokerError):
    code = "shutting_down"
    status = 503
    default_message = "The server is shutting down; reconnect and try again."
