"""Inbox subscriptions and listens in process, on a hub of their own: bounded, ended with their MCP session
(or, for a listen, its stream or its broker session), and catching up after a channel-layer failure.
(test_inbox.py and test_listen.py drive the same push over HTTP.)"""

import asyncio
import contextlib
import logging
import uuid
from types import SimpleNamespace

import pytest
from channels.layers import InMemoryChannelLayer
from mcp.server.connection import Connection

from broker_site.errors import LimitReached
from broker_site.mcp import inbox_push
from broker_site.mcp.binding import bindings
from broker_site.mcp.inbox import inbox_uri
from broker_site.mcp.inbox_push import InboxSubscriptions
from broker_site.mcp.tenant_counts import TenantCounts
from routing import hub as hub_module
from routing.hub import ENDED_EVENT, MESSAGE_EVENT, Hub, session_group


class RecordingOutbound:
    """The connection's standalone stream, as the SDK would write it: here, a queue of (method, params)."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

    async def notify(self, method, params, opts=None) -> None:
        self.sent.put_nowait((method, dict(params or {})))

    async def send_raw_request(self, method, params, opts=None):
        raise AssertionError("push sends notifications only")


class FlakyLayer:
    """The in-memory layer, failing its first calls of `new_channel` and `receive` as an unreachable Redis would."""

    def __init__(self, new_channel_failures: int = 0, receive_failures: int = 0) -> None:
        self.inner = InMemoryChannelLayer()
        self.failures = {"new_channel": new_channel_failures, "receive": receive_failures}

    def __getattr__(self, name):
        method = getattr(self.inner, name)
        if self.failures.get(name):
            async def failing(*args, **kwargs):
                self.failures[name] -= 1
                raise ConnectionError("Redis is unreachable")
            return failing
        return method


def queued_mail(answer: bool):
    async def has_queued_mail(session_pk) -> bool:
        return answer

    return has_queued_mail


@pytest.fixture
def layer(monkeypatch) -> FlakyLayer:
    layer = FlakyLayer()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(hub_module, "RETRY_FIRST_SECONDS", 0.01)
    # No mail is waiting when a subscription first listens, so every notification here is an event's.
    # (A coroutine: this queue is read in the event loop, away from any database thread.)
    monkeypatch.setattr(inbox_push, "has_queued_mail", queued_mail(False))
    return layer


@pytest.fixture
async def subscriptions(layer):
    """Subscriptions on a hub of their own (the process's one is shared by everything else); one listen
    per key, ten per project."""
    hub = Hub()
    yield InboxSubscriptions(listener=hub, listens=TenantCounts(1, 10, 10))
    if hub.task is not None:
        hub.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub.task


def bound_connection() -> tuple[Connection, RecordingOutbound, SimpleNamespace]:
    """A session-based MCP connection that connect_session bound to a (stand-in) broker session."""
    outbound = RecordingOutbound()
    connection = Connection(outbound, protocol_version="2025-11-25", session_id=uuid.uuid4().hex)
    session = SimpleNamespace(pk=uuid.uuid4(), project_id="alpha")
    bindings.bind(connection.session_id, "alpha", session.pk)
    return connection, outbound, session


class RecordingListenPush:
    """A listen's response stream, as inbox_push.ListenPush writes it: here, the acknowledgement and a queue."""

    def __init__(self) -> None:
        self.acknowledged = asyncio.Event()
        self.sent: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

    async def acknowledge(self, uri: str) -> None:
        self.acknowledged.set()

    async def resource_updated(self, uri: str) -> None:
        self.sent.put_nowait(("notifications/resources/updated", {"uri": uri}))

    async def channel(self, params: dict) -> None:
        self.sent.put_nowait(("notifications/claude/channel", params))


def caller(key: str = "key-1", project: str = "alpha") -> SimpleNamespace:
    return SimpleNamespace(actor=key, project=SimpleNamespace(pk=project))


async def mail_for(layer, session) -> None:
    await layer.inner.group_send(session_group(session.pk), {"type": MESSAGE_EVENT, "session_id": str(session.pk)})


async def listening(layer, session) -> None:
    """Until the hub's channel is in the session's group on the layer."""
    await until(lambda: bool(layer.inner.groups.get(session_group(session.pk))))


async def next_update(outbound: RecordingOutbound) -> str:
    method, params = await asyncio.wait_for(outbound.sent.get(), 5)
    assert method == "notifications/resources/updated"
    return params["uri"]


async def until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_mail_event_becomes_a_resource_updated_notification(layer, subscriptions):
    connection, outbound, session = bound_connection()
    await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
    await listening(layer, session)
    await layer.inner.group_send(session_group(session.pk), {"type": "broker.replaced", "session_id": str(session.pk),
                                                              "connection_epoch": 2})
    await mail_for(layer, session)
    # Only the mail event counts: the first notification is the mail's, and it is alone.
    assert await next_update(outbound) == inbox_uri(session.pk)
    assert outbound.sent.empty()
    await subscriptions.close_all()


async def test_subscription_ends_with_its_mcp_session_and_leaves_the_group(layer, subscriptions):
    connection, _, session = bound_connection()
    await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
    await listening(layer, session)
    await connection.exit_stack.aclose()  # what the SDK does when the MCP session ends (DELETE, idle, crash)
    assert len(subscriptions) == 0
    await until(lambda: not layer.inner.groups.get(session_group(session.pk)))


async def test_subscriptions_are_bounded_and_one_per_mcp_session_and_uri(layer):
    subscriptions = InboxSubscriptions(limit=1, listener=Hub())
    connection, _, session = bound_connection()
    await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
    await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
    assert len(subscriptions) == 1
    other, _, other_session = bound_connection()
    with pytest.raises(LimitReached):
        await subscriptions.subscribe(other, other_session, inbox_uri(other_session.pk))
    await subscriptions.close_all()
    assert len(subscriptions) == 0


async def test_connection_no_longer_bound_to_the_session_stops_hearing(layer, subscriptions):
    connection, outbound, session = bound_connection()
    await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
    await listening(layer, session)
    bindings.unbind(connection.session_id, session.pk)  # disconnect_session on that connection
    await mail_for(layer, session)
    await until(lambda: len(subscriptions) == 0)
    assert outbound.sent.empty()


async def test_after_a_layer_failure_a_subscription_catches_up_then_hears_live_mail(layer, subscriptions,
                                                                                     monkeypatch, caplog):
    layer.failures.update(new_channel=2, receive=1)
    monkeypatch.setattr(inbox_push, "has_queued_mail", queued_mail(True))
    connection, outbound, session = bound_connection()
    with caplog.at_level(logging.WARNING, logger="broker.push"):
        # Redis is down when the client subscribes: the subscription still stands.
        await subscriptions.subscribe(connection, session, inbox_uri(session.pk))
        # The first receive fails too (so the hub's probe cannot come back). Once the layer
        # answers again, mail may have come in meanwhile: one catch-up notification...
        assert await next_update(outbound) == inbox_uri(session.pk)
        # ...then live mail.
        await listening(layer, session)
        await mail_for(layer, session)
        assert await next_update(outbound) == inbox_uri(session.pk)
    logged = [r.message for r in caplog.records]
    assert logged.count("push_fallback") == 1 and logged.count("push_resumed") == 1, logged
    assert layer.failures == {"new_channel": 0, "receive": 0}
    assert outbound.sent.empty()


async def test_a_listen_hears_mail_and_leaves_nothing_behind_when_its_client_goes(layer, subscriptions):
    session, push = SimpleNamespace(pk=uuid.uuid4(), project_id="alpha"), RecordingListenPush()
    sub = subscriptions.admit_listen(caller(), session, inbox_uri(session.pk), push, channel=False)
    with pytest.raises(LimitReached) as refused:  # one listen per key here
        subscriptions.admit_listen(caller(), session, inbox_uri(session.pk), RecordingListenPush(), channel=False)
    assert refused.value.details == {"limit": 1, "per": "key"}
    served = asyncio.create_task(subscriptions.run_listen(sub, push))
    await asyncio.wait_for(push.acknowledged.wait(), 5)
    await listening(layer, session)
    await mail_for(layer, session)
    assert await next_update(push) == inbox_uri(session.pk)

    served.cancel()  # what the SDK does to the handler when the listen's HTTP stream closes
    with contextlib.suppress(asyncio.CancelledError):
        await served
    assert len(subscriptions) == 0 and len(subscriptions.listens) == 0
    await until(lambda: not layer.inner.groups.get(session_group(session.pk)))
    other = subscriptions.admit_listen(caller(), session, inbox_uri(session.pk), push, channel=False)
    assert len(subscriptions.listens) == 1  # the place was given back
    other.stop()
    await subscriptions.run_listen(other, push)


async def test_a_listen_ends_gracefully_when_its_session_ends_and_at_shutdown(layer, subscriptions):
    session = SimpleNamespace(pk=uuid.uuid4(), project_id="alpha")
    first = subscriptions.admit_listen(caller(), session, inbox_uri(session.pk), RecordingListenPush(), channel=False)
    served = asyncio.create_task(subscriptions.run_listen(first, first.push))
    await listening(layer, session)
    # disconnect_session, an admin or the sweeper ended the session: the listen returns (its result ends the stream)
    await layer.inner.group_send(session_group(session.pk), {"type": ENDED_EVENT, "session_id": str(session.pk),
                                                              "reason": "client"})
    await asyncio.wait_for(served, 5)
    assert len(subscriptions) == 0

    second = subscriptions.admit_listen(caller(), session, inbox_uri(session.pk), RecordingListenPush(), channel=False)
    served = asyncio.create_task(subscriptions.run_listen(second, second.push))
    await listening(layer, session)
    await subscriptions.close_all()
    assert served.done() and not served.cancelled()
    assert len(subscriptions) == 0 and len(subscriptions.listens) == 0
