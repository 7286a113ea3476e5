"""Unacked deliveries come back after ack_timeout, up to max_attempts; ttl expiry is final."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from routing.models import Message
from routing.services import messages_claim, sweep


def later(seconds: int):
    return timezone.now() + timedelta(seconds=seconds)


def test_unacked_message_is_delivered_again_then_dead_after_max_attempts(alpha, agent):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_attempts": 2, "ack_timeout": 10}, format="json")
    a, b = agent(alpha, "a"), agent(alpha, "b")
    message_id = a.send("b").json()["message_id"]
    assert [m["attempts"] for m in b.receive()] == [1]
    assert sweep(now=later(5))["redelivered"] == 0  # not yet due
    assert b.receive() == []
    assert sweep(now=later(11))["redelivered"] == 1
    again = b.receive()
    assert [(m["message_id"], m["attempts"]) for m in again] == [(message_id, 2)]
    assert sweep(now=later(11))["dead_max_attempts"] == 1
    dead = Message.objects.get(pk=message_id)
    assert (dead.state, dead.dead_reason) == ("dead", "max_attempts")
    assert b.receive() == []


def test_acked_message_is_never_redelivered(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    a.send("b")
    b.ack([m["message_id"] for m in b.receive()])
    assert sweep(now=later(3600)) == {"expired": 0, "redelivered": 0, "dead_max_attempts": 0, "purged": 0}
    assert b.receive() == []


def test_ended_messages_are_purged_after_the_retention_period(alpha, agent, settings):
    settings.BROKER = {**settings.BROKER, "RETENTION_SECONDS": 3600}
    a, b = agent(alpha, "a"), agent(alpha, "b")
    acked_id = a.send("b").json()["message_id"]
    b.ack([m["message_id"] for m in b.receive()])
    waiting_id = a.send("b").json()["message_id"]
    assert sweep(now=later(1800))["purged"] == 0
    assert sweep(now=later(3700))["purged"] == 1
    assert not Message.objects.filter(pk=acked_id).exists()
    assert Message.objects.get(pk=waiting_id).state == "queued"  # pending mail is never purged


def test_message_past_its_ttl_is_dead_and_never_delivered(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    message_id = a.send("b", ttl=5).json()["message_id"]
    Message.objects.filter(pk=message_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert b.receive() == []  # claim skips it even before a sweep
    assert sweep()["expired"] == 1
    dead = Message.objects.get(pk=message_id)
    assert (dead.state, dead.dead_reason) == ("dead", "expired")


def test_delivered_message_past_its_ttl_expires_instead_of_coming_back(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    message_id = a.send("b", ttl=20).json()["message_id"]
    b.receive()
    counts = sweep(now=later(60))
    assert counts["expired"] == 1 and counts["redelivered"] == 0
    assert Message.objects.get(pk=message_id).dead_reason == "expired"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_two_concurrent_sweepers_never_deliver_one_message_twice(make_tenant, agent):
    alpha = make_tenant("alpha")
    a, b = agent(alpha, "a"), agent(alpha, "b")
    for n in range(60):
        a.send("b", {"n": n})
    assert len(messages_claim(b.session, max_messages=100)) == 60  # delivered, then never acked
    claimed: list[list[str]] = [[], []]
    requeued = [0, 0]
    start, swept = threading.Barrier(2), threading.Barrier(2)

    def worker(slot: int) -> None:
        try:
            start.wait()
            requeued[slot] = sweep(now=later(120))["redelivered"]  # both sweepers at once
            swept.wait()
            while batch := messages_claim(b.session, max_messages=7):  # both claimers at once
                claimed[slot].extend(str(m.id) for m in batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(requeued) == 60
    both = claimed[0] + claimed[1]
    assert len(both) == len(set(both)) == 60
    assert set(Message.objects.values_list("attempts", flat=True)) == {2}
