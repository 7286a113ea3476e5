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
- One listener task per subscription (per MCP session and URI), in this process's event loop,
  on the session's channel-layer group: the events routing/events.py publishes on commit,
  across processes when Redis is configured. As for every listener, an event is a wake-up
  only. If the layer fails, the listener logs `push_fallback` and retries with backoff; once
  back, it sends one notification if mail is waiting, since mail may have arrived while it
  was not listening.
- A subscription ends on unsubscribe, when the MCP session ends (the SDK unwinds the
  Connection's exit stack on DELETE, idle timeout or crash), when the connection is no
  longer bound to the session (seen at the next event), and at shutdown.
- Notifications are advisory and not replayed: a client whose GET stream is down misses
  them, and reads the inbox or calls receive_messages when it is back.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass

from channels.layers import get_channel_layer
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp_types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from broker_site.errors import LimitReached, ValidationFailed
from broker_site.mcp.auth import caller_of_request
from broker_site.mcp.binding import bindings
from broker_site.mcp.errors import request_error
from broker_site.mcp.inbox import INBOX_URI_TEMPLATE, inbox_owner, inbox_session_ref
from broker_site.mcp.registry import run_in_own_context
from routing.events import MESSAGE_EVENT, session_group
from routing.selectors import has_queued_mail
from sessions_app.models import AgentSession

log = logging.getLogger("broker.mcp")

MAX_SUBSCRIPTIONS = 10_000  # per process
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# Both layers forget a group member after their group_expiry (a day by default); joining again refreshes it.
REJOIN_SECONDS = 3600.0
_CONNECTION_STATE_KEY = "broker_inbox_push"


@dataclass(eq=False)
class Subscription:
    mcp_session_id: str
    uri: str
    project_id: str
    session_pk: uuid.UUID
    connection: Connection
    channel: str | None = None  # this listener's channel in the session's group; None while the layer is down
    task: asyncio.Task | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.mcp_session_id, self.uri

    @property
    def group(self) -> str:
        return session_group(self.session_pk)

    def still_bound(self) -> bool:
        return bindings.lookup(self.mcp_session_id, self.project_id) == self.session_pk


class InboxSubscriptions:
    """This process's inbox subscriptions: at most one per (MCP session, URI), at most `limit` in all."""

    def __init__(self, limit: int = MAX_SUBSCRIPTIONS) -> None:
        self._limit = limit
        self._items: dict[tuple[str, str], Subscription] = {}
        self._leaving: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._items)

    async def subscribe(self, connection: Connection, session: AgentSession, uri: str) -> None:
        assert connection.session_id is not None  # session-based connections only (resources/subscribe is 2025-era)
        if (connection.session_id, uri) in self._items:
            return  # subscribing twice is one subscription
        if len(self._items) >= self._limit:
            raise LimitReached("This server holds as many inbox subscriptions as it allows; wait for mail with "
                               "receive_messages instead.", limit=self._limit)
        sub = Subscription(connection.session_id, uri, session.project_id, session.pk, connection)
        self._items[sub.key] = sub
        self._end_with_connection(connection)
        try:
            # Joined before the client hears "subscribed", so mail committed after that wakes the listener.
            sub.channel = await _join(sub)
        except BaseException:  # cancelled: the client never heard "subscribed"
            self._forget(sub)
            raise
        finally:
            # Even if unsubscribed, ended or cancelled meanwhile: the task's end is the one place that leaves the group.
            sub.task = asyncio.get_running_loop().create_task(self._listen(sub), name=f"inbox-push {uri}")
            sub.task.add_done_callback(lambda _: self._listener_ended(sub))
            if self._items.get(sub.key) is not sub:
                sub.task.cancel()

    def unsubscribe(self, mcp_session_id: str, uri: str) -> None:
        self._end(self._items.get((mcp_session_id, uri)))

    def drop_connection(self, mcp_session_id: str) -> None:
        for sub in [s for s in self._items.values() if s.mcp_session_id == mcp_session_id]:
            self._end(sub)

    async def close_all(self) -> None:
        tasks = [sub.task for sub in self._items.values() if sub.task is not None]
        for sub in list(self._items.values()):
            self._end(sub)
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._leaving:
            await asyncio.wait(set(self._leaving), timeout=5)

    def _end(self, sub: Subscription | None) -> None:
        if sub is None:
            return
        self._forget(sub)
        if sub.task is not None:
            sub.task.cancel()

    def _forget(self, sub: Subscription) -> None:
        if self._items.get(sub.key) is sub:
            del self._items[sub.key]

    def _listener_ended(self, sub: Subscription) -> None:
        self._forget(sub)
        if sub.channel is not None:
            # A member nobody reads would stay in the group, its channel filling up, until the group
            # expires. Left from here rather than in the listener: a task cancelled before its first
            # step never runs its own cleanup.
            leaving = asyncio.get_running_loop().create_task(_leave(sub.group, sub.channel))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)
            sub.channel = None

    def _end_with_connection(self, connection: Connection) -> None:
        if not connection.state.get(_CONNECTION_STATE_KEY):
            connection.state[_CONNECTION_STATE_KEY] = True
            connection.exit_stack.callback(self.drop_connection, connection.session_id)

    async def _listen(self, sub: Subscription) -> None:
        delay = RETRY_FIRST_SECONDS
        try:
            while True:
                if sub.channel is None:  # the layer failed: join again after a pause
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    sub.channel = await _join(sub)
                    if sub.channel is not None and await _mail_may_have_arrived(sub) and not await self._notify(sub):
                        return
                    continue
                try:
                    event = await _next_event(sub.group, sub.channel)
                except Exception as exc:
                    _push_fallback(sub, exc)
                    await _leave(sub.group, sub.channel)
                    sub.channel = None
                    continue
                delay = RETRY_FIRST_SECONDS
                # The group also carries events meant for WebSocket consumers; only mail matters here.
                if event is not None and event.get("type") == MESSAGE_EVENT and not await self._notify(sub):
                    return
        except Exception:
            log.exception("inbox push listener failed", extra={"session_id": str(sub.session_pk)})

    async def _notify(self, sub: Subscription) -> bool:
        """Send the update; False once the connection no longer acts as the session, which ends the subscription."""
        if not sub.still_bound():  # disconnect_session, or connect_session as another session, on that connection
            return False
        await sub.connection.send_resource_updated(sub.uri)  # best-effort: the SDK drops it if the stream is gone
        return True


async def _next_event(group: str, channel: str) -> dict | None:
    """The next event on `channel`; None after an hour of quiet, having joined the group again to stay in it."""
    layer = get_channel_layer()
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout=REJOIN_SECONDS)
    except TimeoutError:
        await layer.group_add(group, channel)
        return None


async def _mail_may_have_arrived(sub: Subscription) -> bool:
    """After an outage: is mail waiting? If the database cannot say either, assume so."""
    try:
        return await run_in_own_context(has_queued_mail, sub.session_pk)
    except Exception as exc:
        _push_fallback(sub, exc)
        return True


async def _join(sub: Subscription) -> str | None:
    """A new channel in the session's group; None (logged) if the layer fails."""
    layer = get_channel_layer()
    try:
        channel = await layer.new_channel()
        await layer.group_add(sub.group, channel)
        return channel
    except Exception as exc:
        _push_fallback(sub, exc)
        return None


async def _leave(group: str, channel: str) -> None:
    try:
        await get_channel_layer().group_discard(group, channel)
    except Exception:  # the layer is gone; its group entry expires on its own
        log.debug("group_discard failed", exc_info=True)


def _push_fallback(sub: Subscription, exc: Exception) -> None:
    log.warning("push_fallback", extra={"session_id": str(sub.session_pk), "face": "mcp_inbox", "error": str(exc)})


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
        session = await run_in_own_context(inbox_owner, caller_of_request(ctx.request), connection.session_id, ref)
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
