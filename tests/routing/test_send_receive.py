"""1:1 send, receive, ack and receipts over REST."""

import pytest

from projects.auth import CLI
from projects.models import AuditEvent
from routing.models import Message
from sessions_app.services import session_disconnect, session_end


def test_send_queues_and_recipient_receives_acks_and_sender_sees_receipt(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    sent = a.send("b", {"text": "hello"}, correlation_id="c-1", reply_to="a")
    assert sent.status_code == 201, sent.content
    body = sent.json()
    assert body["status"] == "queued" and body["queue_size"] == 1
    assert body["recipient_id"] == str(b.session.id)
    [message] = b.receive()
    assert message["message_id"] == body["message_id"]
    assert message["payload"] == {"text": "hello"}
    assert message["sender_id"] == str(a.session.id)
    assert (message["state"], message["attempts"], message["correlation_id"]) == ("delivered", 1, "c-1")
    assert b.receive() == []
    acked = b.ack([body["message_id"]]).json()
    assert acked["acked"] == [body["message_id"]]
    receipt = a.client.get(f"/api/v1/messages/{body['message_id']}/").json()
    assert receipt["state"] == "acked" and receipt["delivered_at"] and receipt["acked_at"]
    assert b.client.get(f"/api/v1/messages/{body['message_id']}/").status_code == 200


def test_only_sender_and_recipient_see_a_receipt(alpha, agent):
    a, _b, c = agent(alpha, "a"), agent(alpha, "b"), agent(alpha, "c")
    message_id = a.send("b").json()["message_id"]
    assert c.client.get(f"/api/v1/messages/{message_id}/").status_code == 404
    assert c.ack([message_id]).json()["unknown"] == [message_id]
    assert Message.objects.get(pk=message_id).state == "queued"


def test_five_queued_messages_arrive_in_order_after_the_recipient_resumes(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    session_disconnect(b.session)
    ids = [a.send("b", {"n": n}).json()["message_id"] for n in range(5)]
    resumed = alpha.client().post("/api/v1/sessions/", {"name": "b", "session_token": b.token}, format="json")
    assert resumed.status_code == 200
    received = b.receive(max=10)
    assert [m["message_id"] for m in received] == ids
    assert [m["payload"]["n"] for m in received] == [0, 1, 2, 3, 4]


def test_priority_then_age(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    for priority in ["low", "normal", "urgent", "high", "urgent"]:
        a.send("b", {"p": priority}, priority=priority)
    assert [m["payload"]["p"] for m in b.receive(max=10)] == ["urgent", "urgent", "high", "normal", "low"]


def test_receive_respects_max_and_auto_ack(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    ids = [a.send("b", {"n": n}).json()["message_id"] for n in range(3)]
    first = b.receive(max=2, auto_ack=True)
    assert [m["message_id"] for m in first] == ids[:2]
    assert set(Message.objects.filter(pk__in=ids[:2]).values_list("state", flat=True)) == {"acked"}
    assert [m["message_id"] for m in b.receive(max=2)] == ids[2:]


def test_free_form_payload_must_be_an_object(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    for bad in ["a string", [1, 2], 42, None]:
        response = a.send("b", payload=bad) if bad is not None else a.client.post(
            "/api/v1/messages/", {"recipient_id": "b", "payload": None}, format="json")
        assert response.status_code == 400, bad
        assert response.json()["error"] == "validation_error"
    assert Message.objects.count() == 0


def test_payload_over_ten_megabytes_is_refused(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    overhead = len('{"data":""}')
    too_big = a.send("b", {"data": "x" * (10 * 1024 * 1024 + 1 - overhead)})
    assert too_big.status_code == 413
    assert too_big.json()["details"] == {"field": "payload", "size": 10 * 1024 * 1024 + 1, "limit": 10 * 1024 * 1024}
    just_fits = a.send("b", {"data": "x" * (10 * 1024 * 1024 - overhead)})
    assert just_fits.status_code == 201


def test_bad_headers_and_unknown_fields(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    for extra in [{"priority": "asap"}, {"ttl": 0}, {"ttl": "soon"}, {"correlation_id": "x" * 129}, {"colour": 1}]:
        response = a.send("b", **extra)
        assert response.status_code == 400, extra
        assert response.json()["error"] == "validation_error"


def test_a_send_needs_a_session_and_one_that_left_comes_back_to_send(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    assert alpha.client().post("/api/v1/messages/", {"recipient_id": "b", "payload": {}}, format="json") \
        .status_code == 401
    session_disconnect(a.session)
    assert a.send("b").status_code == 201  # its X-Session-Token resumed it (tests/sessions/test_configured_identity)
    a.session.refresh_from_db()
    assert a.session.status == "active"
    session_end(a.session, caller=CLI)  # an operator's end sticks
    response = a.send("b")
    assert response.status_code == 409
    assert "resume" in response.json()["message"]


def test_unknown_recipient_is_not_found(alpha, agent):
    a = agent(alpha, "a")
    assert a.send("nobody").status_code == 404
    assert a.send("6f1c1f4e-5f59-4a5e-9a8e-2b1f0f6f0f6f").status_code == 404


def test_blocked_sender_is_refused(alpha, agent):
    a, b = agent(alpha, "a"), agent(alpha, "b")
    b.client.post("/api/v1/sessions/me/blocks/", {"session": "a"}, format="json")
    response = a.send("b")
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_another_projects_session_never_receives_and_the_attempt_is_audited(alpha, beta, agent):
    a = agent(alpha, "a")
    outsider = agent(beta, "outsider")
    response = a.send(str(outsider.session.id))
    assert response.status_code == 404
    assert outsider.receive() == []
    assert Message.objects.filter(recipient=outsider.session).count() == 0
    event = AuditEvent.objects.get(action="cross_project_send")
    assert (event.source_project, event.target_project, event.outcome) == ("alpha", "beta", "denied")
    agent(beta, "other")
    outsider.broadcast()
    assert a.receive() == []


def test_receive_needs_the_recipients_token(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    a.send("b")
    no_token = alpha.client().post("/api/v1/messages/receive/", {}, format="json")
    assert no_token.status_code == 401 and no_token.json()["error"] == "unauthorized"
    assert a.receive() == []


@pytest.mark.parametrize("options", [{"max": 0}, {"max": 101}, {"wait_seconds": 61}, {"wait_seconds": "long"},
                                     {"auto_ack": "maybe"}, {"colour": 1}])
def test_bad_receive_options(alpha, agent, options):
    b = agent(alpha, "b")
    response = b.client.post("/api/v1/messages/receive/", options, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_receive_with_bad_json_and_bad_key(alpha, agent):
    b = agent(alpha, "b")
    assert b.client.post("/api/v1/messages/receive/", "{", content_type="application/json").status_code == 400
    assert b.client.get("/api/v1/messages/receive/").status_code == 405
    bad = alpha.client("alpha_abc_" + "x" * 40, HTTP_X_SESSION_TOKEN=b.token)
    assert bad.post("/api/v1/messages/receive/", {}, format="json").json()["error"] == "unauthorized"


def test_ack_input_errors(alpha, agent):
    b = agent(alpha, "b")
    assert b.client.post("/api/v1/messages/ack/", {"message_ids": []}, format="json").status_code == 400
    assert b.client.post("/api/v1/messages/ack/", {"message_ids": ["nope"]}, format="json").status_code == 400
    assert b.client.post("/api/v1/messages/ack/", {}, format="json").status_code == 400
