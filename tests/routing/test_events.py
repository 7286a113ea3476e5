"""Events out: after commit, message and presence events reach the channel-layer groups."""

import asyncio
import threading
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.utils import timezone

from broker_site.errors import NotFound
from routing.contracts import SendIn
from routing.events import project_group, session_group
from routing.lifecycle import session_connect
from routing.models import Message
from routing.sending import message_send
from sessions_app.models import AgentSession
from sessions_app.selectors import session_get
from sessions_app.services import session_disconnect, sessions_time_out


class Listener:
    """A channel subscribed to one group, read without waiting.

    On an event loop of its own that keeps running: the Redis pub/sub layer is per loop, and
    its subscription is read by a task on that loop.
    """

    def __init__(self, group: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.layer = get_channel_layer()
        self.channel = self._run(self._join(group))

    def _run(self, work):
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    async def _join(self, group: str) -> str:
        channel = await self.layer.new_channel()
        await self.layer.group_add(group, channel)
        return channel

    def events(self) -> list[dict]:
        async def drain() -> list[dict]:
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.2))
                except TimeoutError:
                    return received

        return self._run(drain())


@pytest.mark.django_db(transaction=True)
def test_message_event_goes_to_the_recipients_group_after_commit(make_tenant):
    tenant = make_tenant("alpha")
    sender, _ = tenant.connect("a")
    recipient, _ = tenant.connect("b")
    listener = Listener(session_group(recipient.pk))
    accepted = message_send(sender, SendIn(recipient_id="b", payload={"x": 1}))
    events = listener.events()
    # A wake-up call only: the recipient reads what is queued from the database.
    assert [(e["type"], e["session_id"]) for e in events] == [("broker.message", str(accepted.message.recipient_id))]


@pytest.mark.django_db(transaction=True)
def test_presence_events_on_join_and_leave(make_tenant):
    tenant = make_tenant("alpha")
    listener = Listener(project_group("alpha"))
    joined = session_connect(tenant.project, name="worker").session
    session_disconnect(joined)
    assert [(e["event"], e["name"]) for e in listener.events()] == [("session_joined", "worker"),
                                                                    ("session_left", "worker")]


def test_a_refused_send_publishes_nothing(alpha, django_capture_on_commit_callbacks):
    sender, _ = alpha.connect("a")
    alpha.connect("b")
    with django_capture_on_commit_callbacks() as callbacks:
        message_send(sender, SendIn(recipient_id="b", payload={"x": 1}))
    assert len(callbacks) == 1  # the publish waits for the commit
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(NotFound):
        message_send(sender, SendIn(recipient_id="nobody", payload={"x": 1}))
    assert callbacks == []


def test_broker_sweep_command_expires_due_messages(alpha, capsys):
    sender, _ = alpha.connect("a")
    alpha.connect("b")
    accepted = message_send(sender, SendIn(recipient_id="b", payload={"x": 1}, ttl=5))
    Message.objects.filter(pk=accepted.message.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("broker_sweep", "--once")
    assert "expired=1" in capsys.readouterr().out
    assert Message.objects.get(pk=accepted.message.pk).dead_reason == "expired"


@pytest.mark.django_db(transaction=True)
def test_a_session_silent_past_disconnect_after_times_out_once_with_session_left(make_tenant):
    tenant = make_tenant("alpha")
    silent = session_connect(tenant.project, name="silent").session
    session_connect(tenant.project, name="chatty")
    listener = Listener(project_group("alpha"))
    # Time passes for the silent one only (its last heartbeat moves into the past).
    quiet_for = timedelta(seconds=tenant.project.disconnect_after - 1)
    AgentSession.objects.filter(pk=silent.pk).update(last_heartbeat_at=timezone.now() - quiet_for)
    assert sessions_time_out() == 0  # stale, not gone yet
    AgentSession.objects.filter(pk=silent.pk).update(last_heartbeat_at=timezone.now() - quiet_for * 2)
    assert sessions_time_out() == 1
    assert sessions_time_out() == 0  # a second sweeper finds nothing left to announce
    assert [(e["event"], e["name"]) for e in listener.events()] == [("session_left", "silent")]
    silent.refresh_from_db()
    assert (silent.status, silent.disconnect_reason) == ("disconnected", "timeout")
    assert session_get(tenant.project, "chatty").status == "active"
