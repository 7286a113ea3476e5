"""How many session-based MCP connections one key and one project may hold open in this process.

The SDK's session manager (mcp 2.3.0) has two knobs: `max_sessions` (one cap for the whole
process, answered 503) and `session_idle_timeout` (a session with no request in flight and no
GET stream open that long is closed). Neither is per tenant: one key could fill the process and
every other tenant's `initialize` would get 503. So the manager's own two bookkeeping steps are
wrapped: admission (`_admit_session`, called under its creation lock, so check-and-count is one
step) refuses past a cap with `limit_reached`, and the one exit every session takes, however it
ends (DELETE, idle timeout, crash, a failed opening), frees its count, its binding to a broker
session and its inbox subscriptions. These are private SDK methods: test_session_limits pins the
behaviour, so an SDK upgrade that moves them fails loudly rather than lifting the caps.

Stateless (2026-07-28) clients open no session and hold nothing here; their inbox listens are
capped with the same figures by inbox_push.py (tenant_counts.py counts both).
"""

from typing import Any

from django.conf import settings
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import Response

from broker_site import counters
from broker_site.errors import LimitReached
from broker_site.mcp.binding import bindings
from broker_site.mcp.errors import http_error_response
from broker_site.mcp.inbox_push import subscriptions
from broker_site.mcp.tenant_counts import TenantCounts


class SessionLimits:
    def __init__(self, per_key: int, per_project: int) -> None:
        self.counts = TenantCounts(per_key, per_project)  # the process-wide cap is the SDK's max_sessions

    def admit(self, key: str, project: str) -> None:
        """Refuse a new session past either cap. Runs in the event loop with no await: nothing interleaves."""
        full = self.counts.full(key, project)
        if full is None:
            return
        per, limit = full
        idle = settings.BROKER["MCP_SESSION_IDLE_SECONDS"]
        if per == "key":
            raise LimitReached(f"This key has {limit} MCP sessions open, as many as one key may: close one "
                               "(DELETE /mcp with its Mcp-Session-Id) or wait for an idle one to expire.",
                               limit=limit, per=per, idle_timeout_seconds=idle)
        raise LimitReached(f"This project has {limit} MCP sessions open, as many as one project may.",
                           limit=limit, per=per, idle_timeout_seconds=idle)

    def opened(self, mcp_session_id: str, key: str, project: str) -> None:
        self.counts.opened(mcp_session_id, key, project)
        counters.mcp_sessions.set(len(self.counts))

    def closed(self, mcp_session_id: str) -> None:
        """Free what the session held; idempotent (the SDK may discard a session twice)."""
        self.counts.closed(mcp_session_id)
        counters.mcp_sessions.set(len(self.counts))
        bindings.forget(mcp_session_id)
        subscriptions.drop_connection(mcp_session_id)

    def install(self, manager: StreamableHTTPSessionManager) -> None:
        admit, discard = manager._admit_session, manager._discard_session

        def admit_within_limits(requestor):
            key, project = _owner(requestor)
            self.admit(key, project)
            transport = admit(requestor)
            if transport is not None and transport.mcp_session_id is not None:
                self.opened(transport.mcp_session_id, key, project)
            return transport

        async def discard_and_free(session_id: str, transport) -> None:
            self.closed(session_id)
            await discard(session_id, transport)

        manager._admit_session = admit_within_limits
        manager._discard_session = discard_and_free


def _owner(requestor: Any) -> tuple[str, str]:
    # ApiKeyAuthMiddleware makes the principal: client_id is the key, subject the project it acts in.
    requestor = requestor or {}
    return str(requestor.get("client_id") or ""), str(requestor.get("subject") or "")


async def limit_reached_response(request: Request, exc: Exception) -> Response:
    """The Starlette app's answer to a refused admission: the SPEC shape, as before any MCP handling."""
    assert isinstance(exc, LimitReached)
    status, headers, body = http_error_response(exc)
    return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})


limits = SessionLimits(settings.BROKER["MCP_SESSIONS_PER_KEY"], settings.BROKER["MCP_SESSIONS_PER_PROJECT"])
