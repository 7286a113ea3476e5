"""The `inbox` resource: `broker://sessions/{session_id}/inbox`, one per session.

Reading it returns a compact JSON view of the session's pending mail: how many messages wait
for a receive, how many were received and wait for an ack, and the next few in delivery
order (id, sender, protocol, priority; no payloads). Reading changes nothing: messages are
taken with receive_messages, which marks them delivered. The view is for deciding when to
call it, and is what a resource-updated notification (inbox_push.py) invites a client to read.

Only the session itself may read, subscribe or listen, and it proves who it is as session
tools do: the session connect_session bound this session-based MCP connection to, else the
session token the client sends as the `X-Session-Token` header (a listen may carry it in its
`_meta` instead, inbox_push.py). A read carries no arguments, so a stateless client without
the header cannot read. A key of the same project acting as another session (or none) gets
`forbidden`; another project's key gets `not_found`, exactly as for a session that does not exist.
"""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.uri_template import UriTemplate

from broker_site.errors import Forbidden
from broker_site.jsoncodec import json_text
from broker_site.mcp.auth import caller_of_request, mcp_session_id_of_request, session_token_of_request
from broker_site.mcp.binding import bindings
from broker_site.mcp.errors import request_error
from broker_site.mcp.registry import run_handler
from projects.auth import Caller
from routing.selectors import inbox_summary
from sessions_app.models import AgentSession
from sessions_app.selectors import session_get
from sessions_app.services import session_acting

INBOX_URI_TEMPLATE = "broker://sessions/{session_id}/inbox"
INBOX_DESCRIPTION = ("Your session's pending mail (counts, next few ids); reading changes nothing. "
                     "Subscribe for an update when mail arrives; take it with receive_messages.")
_template = UriTemplate.parse(INBOX_URI_TEMPLATE)


def inbox_uri(session_id: Any) -> str:
    return _template.expand({"session_id": str(session_id)})


def inbox_session_ref(uri: str) -> str | None:
    """The session id (or name) an inbox URI names; None if the URI is not an inbox URI."""
    params = _template.match(uri)
    ref = params.get("session_id") if params else None
    return ref if isinstance(ref, str) else None


def inbox_owner(caller: Caller, mcp_session_id: str | None, session_ref: str,
                token: str | None = None) -> AgentSession:
    """The session whose inbox this is, provided the caller acts as it: the session this MCP connection
    is bound to, else the one `token` names (the X-Session-Token header, or a listen's _meta token).
    It is the session acting (sessions_app.services.session_acting), so a disconnected one is refused
    and a read is a heartbeat."""
    session = session_get(caller.project, session_ref)  # another project's session: not found
    bound = bindings.lookup(mcp_session_id, caller.project.pk) if mcp_session_id else None
    if bound is None and token:
        acting = session_acting(caller.project, token=token)
        if acting.pk == session.pk:
            return acting
    elif bound is not None and bound == session.pk:
        return session_acting(caller.project, bound_to=bound)
    raise Forbidden("Only the session itself reads, subscribes or listens to its inbox: call connect_session for it "
                    "on a session-based MCP connection, or send its token as the X-Session-Token header.",
                    next_step="connect_session")


def _read_inbox(caller: Caller, mcp_session_id: str | None, session_ref: str, token: str | None) -> dict[str, Any]:
    return inbox_summary(inbox_owner(caller, mcp_session_id, session_ref, token))


def register_inbox_resource(server: MCPServer) -> None:
    @server.resource(INBOX_URI_TEMPLATE, name="inbox", description=INBOX_DESCRIPTION, mime_type="application/json")
    async def read_inbox(session_id: str, ctx: Context) -> str:
        request = ctx.request_context.request
        try:
            summary = await run_handler(_read_inbox, caller_of_request(request), mcp_session_id_of_request(request),
                                        session_id, session_token_of_request(request))
        except Exception as exc:
            raise request_error(exc, "resources/read") from None
        return json_text(summary)
