"""1:1 sends and broadcasts go through one engine, so they keep the same rules.

Each test here pins a place where the broadcast path once had rules of its own and drifted:
blocks read before the lock, payload conversion under the lock, no near-capacity warning.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from broker_site.errors import QueueFull
from routing import sending
from routing.contracts import BroadcastIn, SendIn
from routing.models import Message
from sessions_app.models import AgentSession
from sessions_app.services import session_block
from tests.protocols.conftest import register

CHAT_V1 = {"type": "object", "properties": {"text": {"type": "string"}, "extra": {"type": "string"}}}
CHAT_V2 = {"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": False}


@contextmanager
def committed_meanwhile(write: Callable[[], None]) -> Iterator[None]:
    """Run `write` in a transaction on another thread, and keep it open for 0.7 s: the block's code
    starts while the other transaction holds its locks, waits for them, and must see what it committed."""
    holding = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                write()
                holding.set()
                threading.Event().wait(0.7)
        except BaseException as exc:
            errors.append(exc)
            holding.set()
        finally:
            connection.close()

    other = threading.Thread(target=hold)
    other.start()
    assert holding.wait(10)
    try:
        yield
    finally:
        other.join()
    assert errors == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_broadcast_honours_a_block_made_while_it_waited_for_the_recipients_lock(make_tenant):
    tenant = make_tenant("alpha")
    sender, _ = tenant.connect("sender")
    blocker, _ = tenant.connect("blocker")

    def block_holding_the_recipients_row() -> None:
        # Like any concurrent write to the recipient (a send, a resume): it holds the row's lock.
        AgentSession.objects.select_for_update().get(pk=blocker.pk)
        session_block(blocker, "sender")

    with committed_meanwhile(block_holding_the_recipients_row):
        result = sending.message_broadcast(sender, BroadcastIn(payload={"text": "hi"}))
    assert result["counts"]["queued"] + result["counts"]["pushing"] == 0
    assert [(s["name"], s["reason"]) for s in result["skipped"]] == [("blocker", "blocks the sender")]
    assert not Message.objects.filter(recipient=blocker).exists()


def test_broadcast_converts_payloads_before_taking_any_lock(alpha, monkeypatch):
    register(alpha.admin(), "chat", "1.0.0", CHAT_V1)
    register(alpha.admin(), "chat", "2.0.0", CHAT_V2)
    sender, _ = alpha.connect("sender", {"chat": ["1.0.0"]})
    modern, _ = alpha.connect("modern", {"chat": ["2.0.0"]})
    convert = sending.transform_for
    outside = (connection.in_atomic_block, len(connection.savepoint_ids))  # the test's own transaction, if any
    in_transaction: list[bool] = []

    def watched(*args, **kwargs):
        in_transaction.append((connection.in_atomic_block, len(connection.savepoint_ids)) != outside)
        return convert(*args, **kwargs)

    monkeypatch.setattr(sending, "transform_for", watched)
    result = sending.message_broadcast(sender, BroadcastIn(payload={"text": "hi", "extra": "dropped for 2.0.0"},
                                                           protocol_name="chat", protocol_version="1.0.0"))
    assert result["counts"]["queued"] == 1
    assert in_transaction == [False]
    copy = Message.objects.get(recipient=modern)
    assert (copy.payload, copy.transformed_to) == ({"text": "hi"}, "2.0.0")


def test_broadcast_warns_when_a_recipients_queue_nears_capacity(alpha, caplog):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 10}, format="json")
    alpha.project.refresh_from_db()
    sender, _ = alpha.connect("sender")
    sender.project = alpha.project
    busy, _ = alpha.connect("busy")
    for n in range(8):
        sending.message_send(sender, SendIn(recipient_id="busy", payload={"n": n}))
    with caplog.at_level(logging.WARNING, logger="broker.routing"):
        sending.message_broadcast(sender, BroadcastIn(payload={"n": "all"}))
    [warning] = [r for r in caplog.records if r.getMessage() == "queue_near_capacity"]
    assert (warning.session_id, warning.size, warning.capacity) == (str(busy.pk), 9, 10)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_a_send_counts_the_message_a_concurrent_send_committed_while_it_waited_for_the_lock(make_tenant):
    tenant = make_tenant("alpha")
    tenant.project.max_queue_size = 1
    tenant.project.save()
    first, _ = tenant.connect("first")
    second, _ = tenant.connect("second")
    recipient, _ = tenant.connect("recipient")
    with committed_meanwhile(lambda: sending.message_send(first, SendIn(recipient_id="recipient", payload={"n": 1}))), \
            pytest.raises(QueueFull):
        sending.message_send(second, SendIn(recipient_id="recipient", payload={"n": 2}))
    assert Message.objects.filter(recipient=recipient, state="queued").count() == 1
