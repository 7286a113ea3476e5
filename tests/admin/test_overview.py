"""The live dashboard's JSON views and compose form: what the pages' scripts read and send.

The pages themselves are driven in a real browser in tests/admin/test_dashboard_browser.py.
"""

import json

import pytest
from django.contrib.auth.models import Permission, User

from projects.models import AuditEvent
from routing.contracts import SendIn
from routing.models import Message
from routing.sending import message_send
from routing.services import messages_claim
from sessions_app.models import AgentSession
from tests.conftest import api_client


def _post(client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_overview_counts_live_sessions_queues_and_sent_messages(admin_client, alpha):
    one, _ = alpha.connect("one")
    two, _ = alpha.connect("two")
    for n in range(3):
        message_send(one, SendIn(recipient_id="two", payload={"n": n}))
    data = admin_client.get("/admin/broker/now.json").json()
    [row] = [p for p in data["projects"] if p["project_id"] == "alpha"]
    assert row["sessions"]["active"] == 2
    assert row["messages"]["queued"] == 3
    assert data["top_queues"][0] == {"project_id": "alpha", "session_id": str(two.pk), "name": "two", "pending": 3}
    assert sum(minute["sent"] for minute in data["rate"]) == 3
    assert len(data["rate"]) == 10


def test_overview_needs_a_staff_login(client, alpha):
    response = client.get("/admin/broker/now.json")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_project_view_lists_sessions_with_queue_depth_and_dead_letters(admin_client, alpha):
    one, _ = alpha.connect("one")
    alpha.connect("two")
    message_send(one, SendIn(recipient_id="two", payload={"x": 1}))
    data = admin_client.get("/admin/broker/projects/alpha/now.json").json()
    by_name = {s["name"]: s for s in data["sessions"]}
    assert by_name["two"]["pending"] == 1 and by_name["one"]["pending"] == 0
    assert by_name["two"]["status"] == "active" and by_name["two"]["face"] == "polling"
    assert data["dead_letters"] == []


def test_unknown_project_is_not_found(admin_client):
    assert admin_client.get("/admin/broker/projects/nope/").status_code == 404
    response = admin_client.get("/admin/broker/projects/nope/now.json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_person_sends_as_human_and_the_agent_sees_who_wrote(admin_client, alpha):
    agent, _ = alpha.connect("frontend")
    response = _post(admin_client, "/admin/broker/projects/alpha/send",
                     {"recipient_id": "frontend", "payload": {"text": "status?"}})
    assert response.status_code == 200, response.content
    [got] = messages_claim(agent)
    assert got.payload == {"text": "status?"}
    assert got.sender_human == "admin"
    human = AgentSession.objects.get(project=alpha.project, human="admin")
    assert human.name == "human-admin" and got.sender_id == human.pk
    event = AuditEvent.objects.get(action="human_message")
    assert event.actor_key_id == "admin:admin" and event.details["recipient"] == "frontend"
    # The agent reads who wrote it on the wire, and sees the person among the sessions.
    listed = api_client(alpha.agent_key).get("/api/v1/sessions/").json()
    [person] = [s for s in listed["sessions"] if s["name"] == "human-admin"]
    assert person["kind"] == "human" and person["human"] == "admin"


def test_agents_reply_shows_on_the_session_page_as_read(admin_client, alpha):
    agent, _ = alpha.connect("frontend")
    _post(admin_client, "/admin/broker/projects/alpha/send", {"recipient_id": "frontend", "payload": {"q": 1}})
    [question] = messages_claim(agent, auto_ack=True)
    reply = message_send(agent, SendIn(recipient_id=str(question.sender_id), payload={"a": 2}))
    data = admin_client.get(f"/admin/broker/projects/alpha/sessions/{agent.pk}/now.json").json()
    rows = {m["message_id"]: m for m in data["messages"]}
    answer = rows[str(reply.message.pk)]
    assert answer["sender_name"] == "frontend" and answer["recipient_name"] == "human-admin"
    assert answer["state"] == "acked"  # the person's page read it
    assert "payload" not in answer
    asked = rows[str(question.pk)]
    assert asked["sender_kind"] == "human" and asked["sender_name"] == "admin"


def test_broadcast_from_the_project_page_reaches_every_agent(admin_client, alpha):
    one, _ = alpha.connect("one")
    two, _ = alpha.connect("two")
    result = _post(admin_client, "/admin/broker/projects/alpha/send", {"payload": {"all": True}}).json()
    assert result["counts"]["queued"] == 2
    assert [m.payload for m in messages_claim(one)] == [{"all": True}]
    assert [m.payload for m in messages_claim(two)] == [{"all": True}]


def test_compose_errors_come_back_in_the_spec_shape(admin_client, alpha):
    alpha.connect("frontend")
    unknown = _post(admin_client, "/admin/broker/projects/alpha/send", {"recipient_id": "ghost", "payload": {}})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    bad = _post(admin_client, "/admin/broker/projects/alpha/send", {"recipient_id": "frontend", "payload": "text"})
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"
    large = _post(admin_client, "/admin/broker/projects/alpha/send",
                  {"recipient_id": "frontend", "payload": {"x": "y" * 300_000}})
    assert large.status_code == 400 and large.json()["details"]["limit"] == 256 * 1024
    assert not Message.objects.exists()


@pytest.fixture
def viewer_client(client, db):
    """A staff user without the permission to send."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(user)
    return client


def test_staff_without_the_send_permission_may_look_but_not_send(viewer_client, alpha):
    alpha.connect("frontend")
    assert viewer_client.get("/admin/broker/projects/alpha/now.json").status_code == 200
    page = viewer_client.get("/admin/broker/projects/alpha/sessions/frontend/").content.decode()
    assert 'id="compose"' not in page
    refused = _post(viewer_client, "/admin/broker/projects/alpha/send", {"recipient_id": "frontend", "payload": {}})
    assert refused.status_code == 403
    assert not Message.objects.exists() and not AgentSession.objects.filter(human="viewer").exists()


def test_payload_is_shown_on_its_own_and_cut(admin_client, alpha):
    one, _ = alpha.connect("one")
    alpha.connect("two")
    sent = message_send(one, SendIn(recipient_id="two", payload={"big": "z" * 30_000}))
    data = admin_client.get(f"/admin/broker/projects/alpha/messages/{sent.message.pk}/payload.json").json()
    assert data["cut"] is True and len(data["payload"]) == 20_000 and data["characters"] > 30_000
    other = admin_client.get(f"/admin/broker/projects/beta/messages/{sent.message.pk}/payload.json")
    assert other.status_code == 404


def test_dead_letter_replayed_from_the_project_page(admin_client, alpha):
    one, _ = alpha.connect("one")
    two, _ = alpha.connect("two")
    sent = message_send(one, SendIn(recipient_id="two", payload={"x": 1}))
    Message.objects.filter(pk=sent.message.pk).update(state=Message.State.DEAD, dead_reason="expired")
    [letter] = admin_client.get("/admin/broker/projects/alpha/now.json").json()["dead_letters"]
    assert letter["message_id"] == str(sent.message.pk) and letter["dead_reason"] == "expired"
    replayed = _post(admin_client, f"/admin/broker/projects/alpha/dead-letters/{sent.message.pk}/replay", {})
    assert replayed.status_code == 200, replayed.content
    assert [m.payload for m in messages_claim(two)] == [{"x": 1}]


def test_person_session_comes_back_after_it_timed_out(admin_client, alpha):
    alpha.connect("frontend")
    _post(admin_client, "/admin/broker/projects/alpha/send", {"recipient_id": "frontend", "payload": {}})
    human = AgentSession.objects.get(human="admin")
    AgentSession.objects.filter(pk=human.pk).update(disconnected_at=human.last_heartbeat_at, disconnect_reason="timeout")
    _post(admin_client, "/admin/broker/projects/alpha/send", {"recipient_id": "frontend", "payload": {}})
    human.refresh_from_db()
    assert human.disconnected_at is None and human.connection_epoch == 2
    assert AgentSession.objects.filter(human="admin").count() == 1


def test_looking_at_a_session_page_does_not_make_the_person_a_session(admin_client, alpha):
    alpha.connect("frontend")
    assert admin_client.get("/admin/broker/projects/alpha/sessions/frontend/now.json").status_code == 200
    assert not AgentSession.objects.filter(human="admin").exists()


def test_a_compose_body_that_is_not_json_is_a_validation_error(admin_client, alpha):
    alpha.connect("frontend")
    response = admin_client.post("/admin/broker/projects/alpha/send", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"
