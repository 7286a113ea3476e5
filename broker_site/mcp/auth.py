"""Authentication for /mcp: one ASGI middleware in front of the SDK's app.

Requests routed here bypass Django's middleware, so this checks the Host header against
ALLOWED_HOSTS, then the API key through the same `authenticate` and `rate_limit_check` as
REST, and answers an error with the SPEC JSON before any MCP handling. The SDK's
TokenVerifier is not used: it knows only `Authorization: Bearer` and answers in OAuth's shape.

The Caller rides in the ASGI scope's state. The SDK hands tool handlers the Starlette
request of the HTTP POST that carried the call (`ctx.request_context.request`), so a tool
always sees the credential of its own request, on every protocol version.
"""

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context

from broker_site.errors import BrokerError, PayloadTooLarge, ValidationFailed
from broker_site.hosts import host_allowed
from broker_site.mcp.errors import http_error_response
from broker_site.workers import db, urgent_lane
from projects.auth import Caller, authenticate, credentials_from_headers
from projects.ratelimit import rate_limit_check

CALLER_STATE_KEY = "broker_caller"


def _authenticate(raw_key: str | None, project_id: str | None, remote_addr: str) -> Caller:
    caller = authenticate(raw_key, project_id, remote_addr=remote_addr)
    rate_limit_check(caller)
    return caller


class ApiKeyAuthMiddleware:
    def __init__(self, app, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = await self._check(scope, headers)
        except BrokerError as exc:
            status, response_headers, body = http_error_response(exc)
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        # The SDK binds an MCP session to the principal that opened it and refuses its id
        # with any other credential; the principal is the key and the project it acts in.
        scope["user"] = AuthenticatedUser(AccessToken(token=caller.actor, client_id=caller.actor, scopes=[],
                                                      subject=caller.project.pk))
        await self.app(scope, receive, send)

    async def _check(self, scope, headers: dict[str, str]) -> Caller:
        if not host_allowed(headers):
            raise ValidationFailed("The Host (or Origin) header names a host this broker does not serve.",
                                   field="host", hint="add it to ALLOWED_HOSTS")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise PayloadTooLarge(f"The request body is larger than {self.max_body_bytes} bytes.",
                                  limit_bytes=self.max_body_bytes)
        raw_key, project_id = credentials_from_headers(headers)
        client = scope.get("client") or ("", 0)
        # On the urgent lane: a key check is short, and a tool call waits for it.
        return await db(_authenticate, urgent_lane)(raw_key, project_id, client[0] or "")


def caller_of(ctx: Context) -> Caller:
    return caller_of_request(ctx.request_context.request)


def caller_of_request(request: Any) -> Caller:
    """The Caller of the HTTP request that carried an MCP message (tools, resources, subscriptions)."""
    scope = getattr(request, "scope", None) or {}
    caller = scope.get("state", {}).get(CALLER_STATE_KEY)
    if not isinstance(caller, Caller):  # only reachable if the app were mounted without the middleware
        raise BrokerError("This request carries no authenticated caller.")
    return caller


def mcp_session_id_of(ctx: Context) -> str | None:
    return mcp_session_id_of_request(ctx.request_context.request)


def mcp_session_id_of_request(request: Any) -> str | None:
    """The Mcp-Session-Id of the connection (older, session-based protocol versions); None when stateless."""
    headers = getattr(request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None
