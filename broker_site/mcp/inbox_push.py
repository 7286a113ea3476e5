"""Push for MCP clients: a session's inbox, watched on either protocol, answered with
`notifications/resources/updated` for its URI whenever mail for the session is committed
(and, for a client that opts in, a Claude Code channel notification per new message: channel.py).

What was decided, checked against the mcp 2.3.0 source:

- Session-based (2025 handshake) protocol: `resources/subscribe`. The notification goes out on
  the connection's standalone stream: the GET SSE stream the SDK client opens after
  `initialize`. That works with json_response=True, which only makes POST answers single JSON
  bodies (the SDK then drops request-related notifications, not standalone ones).
- 2026-07-28 protocol: `subscriptions/listen`, whose response is the stream (the SDK serves it
  as SSE even in JSON-response mode). The SDK's own handler would accept any URI from any
  caller, so server.py leaves it off and this one is registered instead: a listen names one
  inbox URI in `resource_subscriptions`, and is authorised by the acting session, which it names
  by a session token in the listen request's `_meta` under `broker/session_token`, else by the
  `X-Session-Token` header. The stream opens with `notifications/subscriptions/acknowledged`
  (honouring that URI only; list-change flags are never honoured, our lists do not change),
  and every frame carries the listen's id, as the spec asks. It ends when the client closes
  it (the SDK cancels the handler on the HTTP disconnect), when the session is ended, and at
  shutdown (gracefully: the listen's result is the last frame). Listens are capped per key,
  per project and per process with the session caps' figures (session_limits.py).
- MCPServer takes no subscribe or listen handlers, so they (inbox_watch.py) are registered on
  its low-level Server; the SDK then advertises `resources.subscribe` by itself.
- Each subscription (either kind) is a Listener (routing.hub) on its session, hearing the
  events routing/events.py publishes on commit, across processes when Redis is configured. As
  for every listener, an event is a wake-up only. Its pace never polls: while the layer is
  down it waits, and once the layer is back it sends one notification if mail is waiting,
  since mail may have arrived while nobody listened.
- A session-based subscription ends on unsubscribe, when the MCP session ends (the SDK unwinds
  the Connection's exit stack on DELETE, idle timeout or crash; session_limits.py drops it too),
  when the connection no longer acts as the session (seen at the next event, or at once when
  the connection subscribes to its new session's inbox), and at shutdown.
- Notifications are advisory and not replayed: a client whose stream is down misses them, and
  reads the inbox or calls receive_messages when it is back.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol

import anyio
from django.conf import settings
from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types import (
    RequestId,
    ResourceUpdatedNotification,
    ResourceUpdatedNotificationParams,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
)

from broker_site.errors import LimitReached
from broker_site.mcp.binding import bindings
from broker_site.mcp.channel import CHANNEL_METHOD, Announcer, ChannelNotification
from broker_site.mcp.registry import run_handler
from broker_site.mcp.tenant_counts import TenantCounts
from projects.auth import Caller
from routing.hub import ENDED_EVENT, RESUMED, WOKEN, Hub, Listener, Pace, hub
from routing.selectors import has_queued_mail
from sessions_app.models import AgentSession

log = logging.getLogger("broker.mcp")

MAX_SUBSCRIPTIONS = settings.BROKER["MCP_MAX_SESSIONS"]  # per process, a backstop: one per MCP session
# No polling: a notification is an invitation to read, sent for new mail (or once after an outage).
INBOX_PACE = Pace(recheck=None, poll=None)
_CONNECTION_STATE_KEY = "broker_inbox_push"


class Push(Protocol):
    """Where a subscription's notifications go: a connection's standalone stream, or a listen's response."""

    async def resource_updated(self, uri: str) -> None: ...

    async def channel(self, params: dict[str, Any]) -> None: ...


class ConnectionPush:
    """The session-based connection's standalone (GET) stream; the SDK drops a notification if it is gone."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def resource_updated(self, uri: str) -> None:
        await self.connection.send_resource_updated(uri)

    async def channel(self, params: dict[str, Any]) -> None:
        await self.connection.notify(CHANNEL_METHOD, params)


class ListenPush:
    """One `subscriptions/listen` response stream: every frame stamped with the listen's id."""

    def __init__(self, session: ServerSession, request_id: RequestId) -> None:
        self.session, self.request_id = session, request_id
        self.meta = {SUBSCRIPTION_ID_META_KEY: request_id}

    async def acknowledge(self, uri: str) -> None:
        honoured = SubscriptionFilter(resource_subscriptions=[uri])
        await self._send(SubscriptionsAcknowledgedNotification(
            params=SubscriptionsAcknowledgedNotificationParams(notifications=honoured, _meta=self.meta)))

    async def resource_updated(self, uri: str) -> None:
        await self._send(ResourceUpdatedNotification(params=ResourceUpdatedNotificationParams(uri=uri,
                                                                                                _meta=self.meta)))

    async def channel(self, params: dict[str, Any]) -> None:
        await self._send(ChannelNotification(params={**params, "_meta": self.meta}))

    async def _send(self, notification: Any) -> None:
        await self.session.send_notification(notification, related_request_id=self.request_id)


class Subscription:
    """One watched inbox: a listener on its session, and what it sends when woken."""

    def __init__(self, session: AgentSession, uri: str, push: Push, via: Hub, *, channel: bool = False,
                 still_acting: Callable[[], bool] = lambda: True, ends_with_session: bool = False,
                 mcp_session_id: str | None = None) -> None:
        self.uri, self.push, self.still_acting, self.mcp_session_id = uri, push, still_acting, mcp_session_id
        self.listener = Listener(session.pk, session.project_id, INBOX_PACE, via=via,
                                 on_other=self._heard_other if ends_with_session else None)
        self.announcer = Announcer(session.project_id, session.pk) if channel else None
        self.task: asyncio.Task | None = None
        self.stopped = False

    def stop(self) -> None:
        """End at the next turn of the loop, without cancelling: a listen then closes gracefully."""
        self.stopped = True
        self.listener.wake()

    def _heard_other(self, event: dict[str, Any]) -> None:
        if event.get("type") == ENDED_EVENT:  # disconnected (by itself, an admin, a time-out): it acts no more
            self.stop()

    async def run(self, joined: Callable[[], Awaitable[None]]) -> None:
        try:
            await self.listener.join()
            await joined()
            while not self.stopped:
                why = await self.listener.wait()
                if self.stopped:
                    return
                # After an outage, mail may have come unheard: one notification if some is waiting.
                if why == WOKEN or (why == RESUMED and await self._mail_waiting()):
                    if not self.still_acting():  # disconnect_session, or connect_session as another, on that connection
                        return
                    await self._notify()
        finally:
            # A listen is cancelled through the SDK's anyio scope, which cancels every later await of
            # its task as well; leaving runs as a task of its own, so the layer's group is left too.
            with anyio.CancelScope(shield=True):
                await asyncio.shield(asyncio.ensure_future(self.listener.leave()))

    async def _mail_waiting(self) -> bool:
        try:
            return await run_handler(has_queued_mail, self.listener.session_id)
        except Exception:  # the database cannot say: assume so, a spare notification costs a read
            log.warning("inbox catch-up could not read the queue", extra={"session_id": str(self.listener.session_id)})
            return True

    async def _notify(self) -> None:
        try:
            await self.push.resource_updated(self.uri)
            if self.announcer is not None:
                for params in await self.announcer.due():
                    await self.push.channel(params)
        except Exception:
            log.exception("inbox notification failed", extra={"session_id": str(self.listener.session_id)})


class InboxSubscriptions:
    """This process's inbox subscriptions: at most one per (MCP session, URI), at most `limit` in all;
    and its listens, capped per key, per project and per process."""

    def __init__(self, limit: int = MAX_SUBSCRIPTIONS, listener: Hub = hub, listens: TenantCounts | None = None) -> None:
        self._limit = limit
        self._hub = listener
        self._items: dict[Hashable, Subscription] = {}
        self.listens = listens if listens is not None else TenantCounts(settings.BROKER["MCP_SESSIONS_PER_KEY"],
                                               settings.BROKER["MCP_SESSIONS_PER_PROJECT"],
                                               settings.BROKER["MCP_MAX_SESSIONS"])

    def __len__(self) -> int:
        return len(self._items)

    async def subscribe(self, connection: Connection, session: AgentSession, uri: str, *, by_token: bool = False,
                        channel: bool = False) -> None:
        """Subscribe a session-based connection acting as `session` (bound to it, or `by_token`: its header)."""
        assert connection.session_id is not None  # session-based connections only (resources/subscribe is 2025-era)
        mcp_session_id = connection.session_id
        if (mcp_session_id, uri) in self._items:
            return  # subscribing twice is one subscription
        # Only the inbox of the session a connection acts as may be subscribed to, so another URI's
        # subscription on it is stale (connect_session moved the binding): it goes now, not at its next
        # event. Then this holds one entry per open MCP session at most, and those are capped per key
        # and per project (session_limits.py), which also drops a session's entry when it ends.
        self.drop_connection(mcp_session_id)
        if len(self._items) >= self._limit:
            raise LimitReached("This server holds as many inbox subscriptions as it allows; wait for mail with "
                               "receive_messages instead.", limit=self._limit)

        def still_acting() -> bool:  # as ToolCall.session: the binding, else the header
            bound = bindings.lookup(mcp_session_id, session.project_id)
            return bound == session.pk or (by_token and bound is None)

        sub = Subscription(session, uri, ConnectionPush(connection), self._hub, channel=channel,
                           still_acting=still_acting, mcp_session_id=mcp_session_id)
        key = (mcp_session_id, uri)
        self._items[key] = sub
        self._end_with_connection(connection)
        # Joined before the client hears "subscribed", so mail committed after that wakes it.
        joined: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_joined() -> None:
            joined.set_result(None)

        sub.task = asyncio.get_running_loop().create_task(sub.run(on_joined), name="broker-inbox-subscription")
        sub.task.add_done_callback(lambda _: self._items.pop(key, None) if self._items.get(key) is sub else None)
        await asyncio.wait({joined, sub.task}, return_when=asyncio.FIRST_COMPLETED)
        if sub.task.done():
            sub.task.result()  # it could not even listen: say why

    def admit_listen(self, caller: Caller, session: AgentSession, uri: str, push: ListenPush, *,
                     channel: bool) -> Subscription:
        """Count a new listen, or refuse it past a cap. Run it with run_listen, at once (no await between)."""
        full = self.listens.full(caller.actor, caller.project.pk)
        if full is not None:
            per, limit = full
            raise LimitReached(f"There are {limit} inbox listens open per {per} on this server, as many as it allows: "
                               "close one, or wait for mail with receive_messages.", limit=limit, per=per)
        sub = Subscription(session, uri, push, self._hub, channel=channel, ends_with_session=True)
        key = ("listen", id(sub))
        self._items[key] = sub
        self.listens.opened(key, caller.actor, caller.project.pk)
        return sub

    async def run_listen(self, sub: Subscription, push: ListenPush) -> None:
        """Serve an admitted listen until it is stopped or cancelled (its client went); then it holds nothing."""
        key = ("listen", id(sub))
        sub.task = asyncio.current_task()
        try:
            # The acknowledgement goes out once the listener has joined: mail committed after it is heard.
            await sub.run(lambda: push.acknowledge(sub.uri))
        finally:
            self._items.pop(key, None)
            self.listens.closed(key)

    def unsubscribe(self, mcp_session_id: str, uri: str) -> None:
        sub = self._items.pop((mcp_session_id, uri), None)
        if sub is not None and sub.task is not None:
            sub.task.cancel()  # its listener leaves the hub as the task unwinds

    def drop_connection(self, mcp_session_id: str) -> None:
        for sub in [s for s in self._items.values() if s.mcp_session_id == mcp_session_id]:
            self.unsubscribe(mcp_session_id, sub.uri)

    async def close_all(self) -> None:
        ending = [sub.task for sub in self._items.values() if sub.task is not None]
        for key, sub in list(self._items.items()):
            if sub.mcp_session_id is not None:
                self.unsubscribe(*key)  # type: ignore[misc]
            else:
                sub.stop()  # a listen ends with its result, so the client knows it was closed on purpose
        if ending:
            await asyncio.wait(ending, timeout=5)

    def _end_with_connection(self, connection: Connection) -> None:
        if not connection.state.get(_CONNECTION_STATE_KEY):
            connection.state[_CONNECTION_STATE_KEY] = True
            connection.exit_stack.callback(self.drop_connection, connection.session_id)


subscriptions = InboxSubscriptions()
