"""Authentication for /mcp: one ASGI middleware in front of the SDK's app.

Requests routed here bypass Django's middleware, so this checks the Host header against
ALLOWED_HOSTS, then the API key through the same `authenticate` as REST (or, for a key this
process read a moment ago, `authenticate_kept`, without leaving the event loop), counts the
call in the key's one rate window (the chunked KeyBudget its WebSocket frames use), and answers
an error with the SPEC JSON before any MCP handling. The SDK's TokenVerifier is not used: it
knows only `Authorization: Bearer` and answers in OAuth's shape.

An authenticated request's body is then read once, held to the one rule on JSON nesting
(broker_site.jsonbounds; the SDK's own parser refuses past about 200 levels with a bare parse
error, and lets anything shallower into the tools), and handed on to the SDK as it came. Too
deep is answered as the SDK answers a body it cannot take, HTTP 400 with a JSON-RPC error
(id null), whose message is ours and whose `data` is the {error, message, details} shape.

The Caller rides in the ASGI scope's state. The SDK hands tool handlers the Starlette
request of the HTTP POST that carried the call (`ctx.request_context.request`), so a tool
always sees the credential of its own request, on every protocol version.
"""

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp_types import JSONRPCError

from broker_site.errors import BrokerError, PayloadTooLarge, ValidationFailed
from broker_site.hosts import host_allowed
from broker_site.jsonbounds import json_text_check
from broker_site.mcp.errors import http_error_response, request_error
from broker_site.workers import db, urgent_lane
from projects.auth import Caller, authenticate, authenticate_kept, credentials_from_headers
from projects.ratelimit import key_budget

CALLER_STATE_KEY = "broker_caller"




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
            if scope.get("method") == "POST":
                receive = await self._body_checked(receive)
        except _TooDeep as exc:
            error = JSONRPCError(jsonrpc="2.0", id=None, error=request_error(exc.error, "request").error)
            await _answer(send, 400, [(b"content-type", b"application/json")],
                          error.model_dump_json(by_alias=True, exclude_unset=True).encode())
            return
        except BrokerError as exc:
            await _answer(send, *http_error_response(exc))
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
        # A key this process read a moment ago is checked here, in the loop; any other on the
        # urgent lane (a key check is short, and a tool call waits for it).
        caller = authenticate_kept(raw_key, project_id)
        if caller is None:
            client = scope.get("client") or ("", 0)
            caller = await db(authenticate, urgent_lane)(raw_key, project_id, remote_addr=client[0] or "")
        # The key's one window, shared with its REST calls and sockets; reserved in chunks, not per call.
        await key_budget(caller).take(caller.project.rate_limit_per_minute)
        return caller


    async def _body_checked(self, receive):
        """Read the whole body, check its nesting, and return a `receive` that hands it on unchanged."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the SDK see it
                return _replay(b"".join(chunks), receive, message)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:  # a body sent without a Content-Length
                raise PayloadTooLarge(f"The request body is larger than {self.max_body_bytes} bytes.",
                                      limit_bytes=self.max_body_bytes)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            json_text_check(body)
        except ValidationFailed as exc:
            raise _TooDeep(exc) from None
        except ValueError:  # not JSON at all: the SDK answers that in its own words
            pass
        return _replay(body, receive)


class _TooDeep(Exception):
    def __init__(self, error: ValidationFailed) -> None:
        self.error = error


def _replay(body: bytes, receive, then: dict | None = None):
    """A `receive` that yields the body read already, then (the disconnect, if one came) the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": False}, *([then] if then else [])]

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


async def _answer(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def caller_of(ctx: Context) -> Caller:
    return caller_of_request(ctx.request_context.request)


def caller_of_request(request: Any) -> Caller:
    """The Caller of the HTTP request that carried an MCP message (tools, resources, subscriptions)."""
    scope = getattr(request, "scope", None) or {}
    caller = scope.get("state", {}).get(CALLER_STATE_KEY)
    if not isinstance(caller, Caller):  # only reachable if the app were mounted without the middleware
        raise BrokerError("This request carries no authenticated caller.")
    return caller


def session_token_of_request(request: Any) -> str | None:
    """The session token an MCP client configured as a header (`X-Session-Token`, as on REST), if any."""
    headers = getattr(request, "headers", None)
    token = (headers.get("x-session-token") or "").strip() if headers is not None else ""
    return token or None


def mcp_session_id_of(ctx: Context) -> str | None:
    return mcp_session_id_of_request(ctx.request_context.request)


def mcp_session_id_of_request(request: Any) -> str | None:
    """The Mcp-Session-Id of the connection (older, session-based protocol versions); None when stateless."""
    headers = getattr(request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None
