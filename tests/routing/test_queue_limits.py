"""Queue limits: a warning at 90 %, refusal past the limit, the refused message kept as a dead letter."""

import logging

from routing.models import Message


def near_capacity_warnings(caplog) -> list:
    return [r for r in caplog.records if r.getMessage() == "queue_near_capacity"]


def test_queue_warns_at_ninety_percent_and_refuses_the_hundred_and_first(alpha, agent, caplog):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    with caplog.at_level(logging.WARNING, logger="broker.routing"):
        for _ in range(89):
            assert a.send("b").status_code == 201
        assert near_capacity_warnings(caplog) == []
        assert a.send("b").json()["queue_size"] == 90
        [warning] = near_capacity_warnings(caplog)
        assert (warning.size, warning.capacity, warning.percent) == (90, 100, 90)
        assert warning.session_id == str(b.session.id)
        for _ in range(10):
            assert a.send("b").status_code == 201
    refused = a.send("b", {"n": 101})
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "queue_full"
    assert (body["details"]["queue_size"], body["details"]["capacity"]) == (100, 100)
    dead = Message.objects.get(pk=body["details"]["message_id"])
    assert (dead.state, dead.dead_reason, dead.payload) == ("dead", "queue_full", {"n": 101})
    letters = alpha.admin().get("/api/v1/dead-letters/").json()["dead_letters"]
    assert [d["message_id"] for d in letters] == [str(dead.id)]
    assert len(b.receive(max=100)) == 100


def test_acked_messages_free_room_in_the_queue(alpha, agent):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 2}, format="json")
    a, b = agent(alpha, "a"), agent(alpha, "b")
    a.send("b")
    a.send("b")
    assert a.send("b").status_code == 429
    b.ack([m["message_id"] for m in b.receive(max=2)])
    assert a.send("b").status_code == 201
