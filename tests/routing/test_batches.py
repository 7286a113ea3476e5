"""Rounds: many sends, claims or acks in one database round, each with its own outcome (the WebSocket path)."""

from broker_site.errors import Forbidden, NotFound, QueueFull
from projects.services import project_update
from routing.contracts import BroadcastIn, SendIn
from routing.models import Message
from routing.sending import Accepted, Broadcast, SendRequest, messages_send, send_check
from routing.services import messages_ack_many, messages_claim, messages_claim_many
from sessions_app.services import session_block


def to(sender, recipient: str, payload: dict, **headers) -> SendRequest:
    return send_check(sender, SendIn(recipient_id=recipient, payload=payload, **headers))


def test_a_round_of_sends_gives_each_its_own_outcome_and_keeps_their_order(alpha):
    project_update(alpha.project, {"max_queue_size": 3})
    (a, _), (b, _), (c, _) = alpha.connect("a"), alpha.connect("b"), alpha.connect("c")
    session_block(c, "b")
    outcomes = messages_send([
        to(a, "c", {"n": 1}),
        to(a, str(c.pk), {"n": 2}),
        to(b, "c", {"n": 99}),
        to(a, "nobody", {"n": 98}),
        to(a, "c", {"n": 3}, priority="low"),
        to(a, "c", {"n": 4}),
    ])
    assert [type(o) for o in outcomes] == [Accepted, Accepted, Forbidden, NotFound, Accepted, QueueFull]
    assert [o.queue_size for o in outcomes if isinstance(o, Accepted)] == [1, 2, 3]
    assert outcomes[5].details["queue_size"] == 3
    assert Message.objects.get(pk=outcomes[5].details["message_id"]).dead_reason == "queue_full"
    claimed = messages_claim(c, max_messages=10)
    assert [m.payload["n"] for m in claimed] == [1, 2, 3]  # the low-priority one is last anyway; 1 before 2


def test_messages_sent_in_one_round_to_one_recipient_arrive_in_the_order_sent(alpha):
    (a, _), (b, _) = alpha.connect("a"), alpha.connect("b")
    messages_send([to(a, "b", {"n": n}) for n in range(20)])
    assert [m.payload["n"] for m in messages_claim(b, max_messages=20)] == list(range(20))


def test_one_claim_round_gives_each_session_at_most_what_it_asked_for(alpha):
    (a, _), (b, _), (c, _) = alpha.connect("a"), alpha.connect("b"), alpha.connect("c")
    messages_send([to(a, target, {"n": n}) for n in range(5) for target in ("b", "c")])
    claimed = messages_claim_many({b: 2, c: 10})
    assert [m.payload["n"] for m in claimed[b.pk]] == [0, 1]
    assert [m.payload["n"] for m in claimed[c.pk]] == [0, 1, 2, 3, 4]
    assert {m.recipient_id for m in claimed[b.pk]} == {b.pk}
    assert Message.objects.filter(recipient=b, state="queued").count() == 3
    assert all(m.state == "delivered" and m.redeliver_at is not None for m in claimed[c.pk])


def test_in_one_ack_round_a_session_acks_only_its_own_messages(alpha):
    (a, _), (b, _), (c, _), (d, _) = alpha.connect("a"), alpha.connect("b"), alpha.connect("c"), alpha.connect("d")
    messages_send([to(a, "b", {"to": "b"}), to(a, "c", {"to": "c"})])
    claimed = messages_claim_many({b: 10, c: 10})
    [for_b], [for_c] = claimed[b.pk], claimed[c.pk]
    # b tries to ack c's message along with its own, in the same round as d's unrelated ack.
    answers = messages_ack_many([(b, [for_b.id, for_c.id]), (d, [for_b.id])])
    assert answers[0] == {"acked": [str(for_b.id)], "not_acked": [], "unknown": [str(for_c.id)]}
    assert answers[1] == {"acked": [], "not_acked": [], "unknown": [str(for_b.id)]}
    assert Message.objects.get(pk=for_c.id).state == "delivered"
    assert messages_ack_many([(c, [for_c.id])]) == [{"acked": [str(for_c.id)], "not_acked": [], "unknown": []}]


def test_a_broadcast_and_sends_in_one_round_reach_each_recipient_in_the_order_given(alpha):
    (a, _), (b, _), (c, _) = alpha.connect("a"), alpha.connect("b"), alpha.connect("c")
    outcomes = messages_send([to(a, "b", {"n": 1}), send_check(a, BroadcastIn(payload={"n": 2})),
                              to(a, "c", {"n": 3}), to(a, "b", {"n": 4})])
    assert [type(o) for o in outcomes] == [Accepted, Broadcast, Accepted, Accepted]
    assert outcomes[1].as_dict()["counts"]["queued"] == 2
    assert [m.payload["n"] for m in messages_claim(b, max_messages=10)] == [1, 2, 4]
    assert [m.payload["n"] for m in messages_claim(c, max_messages=10)] == [2, 3]
