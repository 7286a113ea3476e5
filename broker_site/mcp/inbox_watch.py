"""The requests that watch an inbox (inbox_push.py says what was decided): `resources/subscribe` and
`resources/unsubscribe` on the session-based protocol, `subscriptions/listen` on 2026-07-28.

Each checks who asks (inbox.inbox_owner: only the session itself), then hands the watch to the
process's one set of subscriptions. A listen names its session by a token in its request's
`_meta` under LISTEN_TOKEN_META_KEY, else by the X-Session-Token header.
"""

from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp_types import (
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionFilter,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from broker_site.errors import ValidationFailed
from broker_site.mcp.auth import caller_of_request, session_token_of_request
from broker_site.mcp.binding import bindings
from broker_site.mcp.channel import wants_channel
from broker_site.mcp.errors import request_error
from broker_site.mcp.inbox import INBOX_URI_TEMPLATE, inbox_owner, inbox_session_ref
from broker_site.mcp.inbox_push import ListenPush, subscriptions
from broker_site.mcp.registry import run_handler

LISTEN_TOKEN_META_KEY = "broker/session_token"


def _session_based_connection(ctx: ServerRequestContext) -> Connection | None:
    """The Connection a request came in on, if it is session-based (has an Mcp-Session-Id)."""
    # mcp 2.3.0 hands low-level handlers the per-request ServerSession, not the Connection it
    # wraps (the SDK's pending Context rework); a subscription outlives its request, so it needs
    # the Connection itself: its standalone stream and its exit stack.
    connection = getattr(ctx.session, "_connection", None)
    if isinstance(connection, Connection) and connection.session_id is not None:
        return connection
    return None


def _inbox_ref(uri: str, field: str) -> str:
    ref = inbox_session_ref(uri)
    if ref is None:
        raise ValidationFailed(f"Only inbox resources can be watched: {INBOX_URI_TEMPLATE}.", field=field)
    return ref


async def _on_subscribe(ctx: ServerRequestContext, params: SubscribeRequestParams) -> EmptyResult:
    try:
        connection = _session_based_connection(ctx)
        if connection is None:
            raise ValidationFailed("Inbox subscriptions need a session-based MCP connection (Mcp-Session-Id); "
                                   "on the 2026-07-28 protocol use subscriptions/listen.")
        ref = _inbox_ref(params.uri, "uri")
        caller = caller_of_request(ctx.request)
        session = await run_handler(inbox_owner, caller, connection.session_id, ref,
                                    session_token_of_request(ctx.request))
        by_token = bindings.lookup(connection.session_id, caller.project.pk) != session.pk
        await subscriptions.subscribe(connection, session, params.uri, by_token=by_token,
                                      channel=wants_channel(ctx.session.client_capabilities))
    except Exception as exc:
        raise request_error(exc, "resources/subscribe") from None
    return EmptyResult()


async def _on_unsubscribe(ctx: ServerRequestContext, params: UnsubscribeRequestParams) -> EmptyResult:
    # Subscriptions are keyed by their connection's session id, so a connection can only end its own.
    connection = _session_based_connection(ctx)
    if connection is not None:
        subscriptions.unsubscribe(connection.session_id, params.uri)
    return EmptyResult()


def _listened_uri(notifications: SubscriptionFilter) -> str:
    uris = notifications.resource_subscriptions or []
    if len(uris) != 1:
        raise ValidationFailed(f"A listen names one inbox in resource_subscriptions: {INBOX_URI_TEMPLATE} "
                               "(this server's lists never change).", field="notifications.resourceSubscriptions")
    return uris[0]


def _listen_token(meta: Any) -> str | None:
    token = meta.get(LISTEN_TOKEN_META_KEY) if isinstance(meta, dict) else None
    if token is not None and not isinstance(token, str):
        raise ValidationFailed(f"_meta[{LISTEN_TOKEN_META_KEY!r}] is a session token: a string.",
                               field=f"_meta.{LISTEN_TOKEN_META_KEY}")
    return token or None


async def _on_listen(ctx: ServerRequestContext, params: SubscriptionsListenRequestParams) -> SubscriptionsListenResult:
    try:
        if ctx.request_id is None:
            raise ValidationFailed("subscriptions/listen needs a request id.")
        uri = _listened_uri(params.notifications)
        ref = _inbox_ref(uri, "notifications.resourceSubscriptions")
        caller = caller_of_request(ctx.request)
        token = _listen_token(params.meta) or session_token_of_request(ctx.request)
        session = await run_handler(inbox_owner, caller, None, ref, token)
        push = ListenPush(ctx.session, ctx.request_id)
        sub = subscriptions.admit_listen(caller, session, uri, push,
                                         channel=wants_channel(ctx.session.client_capabilities))
    except Exception as exc:
        raise request_error(exc, "subscriptions/listen") from None
    await subscriptions.run_listen(sub, push)
    return SubscriptionsListenResult(_meta=push.meta)


def register_inbox_push(server: Server) -> None:
    server.add_request_handler("resources/subscribe", SubscribeRequestParams, _on_subscribe)
    server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _on_unsubscribe)
    server.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, _on_listen)
