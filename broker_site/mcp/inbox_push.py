"""Push for MCP clients: `resources/subscribe` on a session's inbox, answered with
`notifications/resources/updated` for that URI whenever mail for the session is committed.

What was decided, checked against the mcp 2.3.0 source:

- Session-based (2025 handshake) protocol only. The notification goes out on the
  connection's standalone stream: the GET SSE stream the SDK client opens after `initialize`.
  That works with json_response=True, which only makes POST answers single JSON bodies (the
  SDK then drops request-related notifications, not standalone ones). The 2026-07-28
  protocol has no resources/subscribe; its `subscriptions/listen` stream could not be scoped
  to the session (a listen request carries no binding and no token), so server.py switches it
  off rather than advertise it, and stateless clients wait with receive_messages.
- MCPServer takes no subscribe handlers, so they are registered on its low-level Server; the
  SDK then advertises `resources.subscribe` on session-based connections by itself.
- Each subscription is a Listener (routing.hub) on its session, hearing the events
  routing/events.py publishes on commit, across processes when Redis is configured. As for
  every listener, an event is a wake-up only. Its pace never polls: while the layer is down
  it waits, and once the layer is back it sends one notification if mail is waiting, since
  mail may have arrived while nobody listened.
- A subscription ends on unsubscribe, when the MCP session ends (the SDK unwinds the
  Connection's exit stack on DELETE, idle timeout or crash; session_limits.py drops it too),
  when the connection is no longer bound to the session (seen at the next event, or at once
  when the connection subscribes to its new session's inbox), and at shutdown.
- Notifications are advisory and not replayed: a client whose GET stream is down misses
  them, and reads the inbox or calls receive_messages when it is back.
"""

import asyncio
import logging
from typing import Any

from django.conf import settings
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp_types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from broker_site.errors import LimitReached, ValidationFailed
from broker_site.mcp.auth import caller_of_request
from broker_site.mcp.binding import bindings
from broker_site.mcp.errors import request_error
from broker_site.mcp.inbox import INBOX_URI_TEMPLATE, inbox_owner, inbox_session_ref
from broker_site.mcp.registry import run_handler
from routing.hub import RESUMED, WOKEN, Hub, Listener, Pace, hub
from routing.selectors import has_queued_mail
from sessions_app.models import AgentSession

log = logging.getLogger("broker.mcp")

MAX_SUBSCRIPTIONS = settings.BROKER["MCP_MAX_SESSIONS"]  # per process, a backstop: one per MCP session
# No polling: a notification is an invitation to read, sent for new mail (or once after an outage).
INBOX_PACE = Pace(recheck=None, poll=None)
_CONNECTION_STATE_KEY = "broker_inbox_push"


class Subscription:
    """One (MCP session, URI) subscription: a listener on its session, and the task that notifies."""

    def __init__(self, connection: Connection, session: AgentSession, uri: str, via: Hub) -> None:
        assert connection.session_id is not None
        self.mcp_session_id, self.uri, self.connection = connection.session_id, uri, connection
        self.listener = Listener(session.pk, session.project_id, INBOX_PACE, via=via)
        self.task: asyncio.Task | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.mcp_session_id, self.uri

    def still_bound(self) -> bool:
        return bindings.lookup(self.mcp_session_id, self.listener.project_id) == self.listener.session_id

    async def run(self, joined: asyncio.Future) -> None:
        async with self.listener:
            joined.set_result(None)
            while True:
                why = await self.listener.wait()
                # After an outage, mail may have come unheard: one notification if some is waiting.
                if why == WOKEN or (why == RESUMED and await self._mail_waiting()):
                    if not self.still_bound():  # disconnect_session, or connect_session as another, on that connection
                        return
                    await self._notify()

    async def _mail_waiting(self) -> bool:
        try:
            return await run_handler(has_queued_mail, self.listener.session_id)
        except Exception:  # the database cannot say: assume so, a spare notification costs a read
            log.warning("inbox catch-up could not read the queue", extra={"session_id": str(self.listener.session_id)})
            return True

    async def _notify(self) -> None:
        try:
            await self.connection.send_resource_updated(self.uri)  # the SDK drops it if the stream is gone
        except Exception:
            log.exception("inbox notification failed", extra={"session_id": str(self.listener.session_id)})


class InboxSubscriptions:
    """This process's inbox subscriptions: at most one per (MCP session, URI), at most `limit` in all."""

    def __init__(self, limit: int = MAX_SUBSCRIPTIONS, listener: Hub = hub) -> None:
        self._limit = limit
        self._hub = listener
        self._items: dict[tuple[str, str], Subscription] = {}

    def __len__(self) -> int:
        return len(self._items)

    async def subscribe(self, connection: Connection, session: AgentSession, uri: str) -> None:
        assert connection.session_id is not None  # session-based connections only (resources/subscribe is 2025-era)
        if (connection.session_id, uri) in self._items:
            return  # subscribing twice is one subscription
        # Only the inbox of the session a connection is bound to may be subscribed to, so another URI's
        # subscription on it is stale (connect_session moved the binding): it goes now, not at its next
        # event. Then this holds one entry per open MCP session at most, and those are capped per key
        # and per project (session_limits.py), which also drops a session's entry when it ends.
        self.drop_connection(connection.session_id)
        if len(self._items) >= self._limit:
            raise LimitReached("This server holds as many inbox subscriptions as it allows; wait for mail with "
                               "receive_messages instead.", limit=self._limit)
        sub = Subscription(connection, session, uri, self._hub)
        self._items[sub.key] = sub
        self._end_with_connection(connection)
        # Joined before the client hears "subscribed", so mail committed after that wakes it.
        joined: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sub.task = asyncio.get_running_loop().create_task(sub.run(joined), name="broker-inbox-subscription")
        sub.task.add_done_callback(lambda _: self._items.pop(sub.key, None) if self._items.get(sub.key) is sub
                                   else None)
        await asyncio.wait({joined, sub.task}, return_when=asyncio.FIRST_COMPLETED)
        if sub.task.done():
            sub.task.result()  # it could not even listen: say why

    def unsubscribe(self, mcp_session_id: str, uri: str) -> None:
        sub = self._items.pop((mcp_session_id, uri), None)
        if sub is not None and sub.task is not None:
            sub.task.cancel()  # its listener leaves the hub as the task unwinds

    def drop_connection(self, mcp_session_id: str) -> None:
        for sub in [s for s in self._items.values() if s.mcp_session_id == mcp_session_id]:
            self.unsubscribe(sub.mcp_session_id, sub.uri)

    async def close_all(self) -> None:
        ending = [sub.task for sub in self._items.values() if sub.task is not None]
        for sub in list(self._items.values()):
            self.unsubscribe(sub.mcp_session_id, sub.uri)
        if ending:
            await asyncio.wait(ending, timeout=5)

    def _end_with_connection(self, connection: Connection) -> None:
        if not connection.state.get(_CONNECTION_STATE_KEY):
            connection.state[_CONNECTION_STATE_KEY] = True
            connection.exit_stack.callback(self.drop_connection, connection.session_id)


subscriptions = InboxSubscriptions()


def _session_based_connection(ctx: ServerRequestContext) -> Connection | None:
    """The Connection a request came in on, if it is session-based (has an Mcp-Session-Id)."""
    # mcp 2.3.0 hands low-level handlers the per-request ServerSession, not the Connection it
    # wraps (the SDK's pending Context rework); a subscription outlives its request, so it needs
    # the Connection itself: its standalone stream and its exit stack.
    connection = getattr(ctx.session, "_connection", None)
    if isinstance(connection, Connection) and connection.session_id is not None:
        return connection
    return None


async def _on_subscribe(ctx: ServerRequestContext, params: SubscribeRequestParams) -> EmptyResult:
    try:
        connection = _session_based_connection(ctx)
        if connection is None:
            raise ValidationFailed("Inbox subscriptions need a session-based MCP connection (Mcp-Session-Id).")
        ref = inbox_session_ref(params.uri)
        if ref is None:
            raise ValidationFailed(f"Only inbox resources can be subscribed to: {INBOX_URI_TEMPLATE}.", field="uri")
        session = await run_handler(inbox_owner, caller_of_request(ctx.request), connection.session_id, ref)
        await subscriptions.subscribe(connection, session, params.uri)
    except Exception as exc:
        raise request_error(exc, "resources/subscribe") from None
    return EmptyResult()


async def _on_unsubscribe(ctx: ServerRequestContext, params: UnsubscribeRequestParams) -> EmptyResult:
    # Subscriptions are keyed by their connection's session id, so a connection can only end its own.
    connection = _session_based_connection(ctx)
    if connection is not None:
        subscriptions.unsubscribe(connection.session_id, params.uri)
    return EmptyResult()


def register_inbox_push(server: Server) -> None:
    server.add_request_handler("resources/subscribe", SubscribeRequestParams, _on_subscribe)
    server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _on_unsubscribe)
