"""Claude Code channels: each new message for a subscribed inbox also announced as `notifications/claude/channel`.

Claude Code's channel contract (code.claude.com/docs/en/channels-reference; claude-peers-mcp
does the same): the server declares `experimental: {"claude/channel": {}}` among its
capabilities, and sends `notifications/claude/channel` with params `{content, meta}`: content
is text the model reads, meta a map of string attributes whose keys are identifiers. So the
server declares it (`advertise`), and an inbox subscription (inbox_push.py, either protocol)
also announces each new message, but only to a client that opted in by declaring
`claude/channel` among its own experimental capabilities (in `initialize` on the session-based
protocol, in each request's `_meta` capabilities on 2026-07-28): any other client would be sent
a method it does not know.

An announcement is a preview, not a delivery: the message stays queued until receive_messages
claims it (delivered) and ack_messages acks it. It carries who sent it, the protocol, the id
and at most PREVIEW_CHARS of the payload's JSON text (cut by the database).

Each subscription remembers what it announced (`Announcer`): the ids of the last few, and a
high-water mark by created_at. A wake-up reads the newest queued mail not yet announced, once.
The mark looks back LOOKBACK before the newest announced message, because created_at is set
before commit: two concurrent sends can commit in the other order, and the older one must
still be heard. So a new subscription also announces mail queued up to LOOKBACK before it began.
"""

import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any, Literal

from django.utils import timezone
from mcp.server.lowlevel import Server
from mcp_types import ClientCapabilities, Notification, ServerCapabilities

from broker_site.mcp.registry import run_handler
from routing.selectors import queued_previews

CHANNEL_CAPABILITY = "claude/channel"
CHANNEL_METHOD = "notifications/claude/channel"
PREVIEW_CHARS = 200
MAX_PER_WAKE_UP = 10  # a burst is announced ten at a time, then "more are waiting"
LOOKBACK = timedelta(seconds=10)
SEEN_LIMIT = 256


class ChannelNotification(Notification[dict[str, Any], Literal["notifications/claude/channel"]]):
    """Claude Code's channel event, as a model the SDK's send_notification takes."""

    method: Literal["notifications/claude/channel"] = CHANNEL_METHOD
    params: dict[str, Any]


def wants_channel(capabilities: ClientCapabilities | None) -> bool:
    experimental = capabilities.experimental if capabilities is not None else None
    return bool(experimental) and CHANNEL_CAPABILITY in experimental


def advertise(server: Server) -> None:
    """Declare `claude/channel` on both protocols, and no list-change notifications (this server's lists never change).

    The SDK derives capabilities from the handlers registered, and on 2026-07-28 it advertises
    `listChanged` on every list as soon as `subscriptions/listen` is served; ours honours only
    inbox URIs (inbox_push.py), so it would promise events that never come. Both the
    `initialize` result and `server/discover` call `get_capabilities`, so it is wrapped there.
    """
    derive = server.get_capabilities

    def get_capabilities(*args: Any, **kwargs: Any) -> ServerCapabilities:
        capabilities = derive(*args, **kwargs)
        update: dict[str, Any] = {"experimental": {**(capabilities.experimental or {}), CHANNEL_CAPABILITY: {}}}
        for name in ("prompts", "resources", "tools"):
            listed = getattr(capabilities, name)
            if listed is not None and listed.list_changed:
                update[name] = listed.model_copy(update={"list_changed": False})
        return capabilities.model_copy(update=update)

    server.get_capabilities = get_capabilities  # type: ignore[method-assign]


class Announcer:
    """What one subscription announced: the channel notifications for the mail not announced yet."""

    def __init__(self, project_id: str, session_id: uuid.UUID) -> None:
        self.project_id, self.session_id = project_id, session_id
        self.since = timezone.now() - LOOKBACK
        self.seen: OrderedDict[uuid.UUID, None] = OrderedDict()

    async def due(self) -> list[dict[str, Any]]:
        """The params of the notifications to send now, oldest message first; marks them announced."""
        rows = await run_handler(self._read)
        fresh, more = rows[:MAX_PER_WAKE_UP], len(rows) > MAX_PER_WAKE_UP
        for row in fresh:
            self.seen[uuid.UUID(row["message_id"])] = None
            self.since = max(self.since, row["created_at"] - LOOKBACK)
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        announced = [channel_params(row) for row in reversed(fresh)]
        if more:
            announced.append({"content": "More messages are queued than announced here: take them with "
                                         "receive_messages.", "meta": {"more": "true"}})
        return announced

    def _read(self) -> list[dict[str, Any]]:
        return queued_previews(self.project_id, self.session_id, since=self.since, exclude=self.seen.keys(),
                               limit=MAX_PER_WAKE_UP + 1, preview_chars=PREVIEW_CHARS + 1)


def channel_params(row: dict[str, Any]) -> dict[str, Any]:
    """`{content, meta}` for one message: "<sender> sent <protocol> <message_id>: <preview>"; meta values are strings."""
    preview = row["preview"]
    if len(preview) > PREVIEW_CHARS:
        preview = preview[:PREVIEW_CHARS] + "…"
    sender = row["sender_name"] or row["sender_id"] or "a session that has since gone"
    content = f"{sender} sent {row['protocol'] or 'a message'} {row['message_id']}: {preview}"
    meta = {"message_id": row["message_id"], "sender_id": row["sender_id"] or "",
            "sender_name": row["sender_name"] or "", "protocol": row["protocol"] or "", "priority": row["priority"]}
    return {"content": content, "meta": meta}
