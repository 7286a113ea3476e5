"""A client's configured identity: the session its X-Session-Token header names, on MCP and REST alike.

A call that names its session only through that header has no step in which to say it is back,
so when that session is disconnected (it left, timed out, or was provisioned and never used) the
call resumes it through the one resume path (connection_epoch moves on, unacked mail is queued
again, peers hear session_joined) and then acts. A token passed as an argument still finds a
disconnected session refused, and so does a session an operator ended: resuming those is a
deliberate step (connect_session). The live MCP tests are in tests/mcp/test_configured_identity.py.
"""

import pytest

from broker_site.errors import Conflict
from projects.auth import CLI
from routing.events import project_group
from routing.lifecycle import session_acting, session_connect
from routing.models import Message
from routing.services import messages_requeue_unacked
from sessions_app.models import AgentSession
from sessions_app.services import _take_back, session_disconnect, session_end, session_provision
from tests.routing.test_events import Listener
from tests.sessions.test_presence import age


def epoch(session) -> int:
    return AgentSession.objects.get(pk=session.pk).connection_epoch


def test_a_call_after_leaving_resumes_first_so_its_unacked_mail_comes_again(pair):
    _, recipient, message_id = pair
    before = epoch(recipient.session)
    assert recipient.client.post("/api/v1/sessions/me/disconnect/").json()["status"] == "disconnected"
    response = recipient.ack([message_id])
    # The resume queued the unacked message again before the ack ran: the ack does not apply to it,
    # and it is delivered again (same id), as after connect_session.
    assert response.status_code == 200 and response.json()["not_acked"] == [message_id]
    assert Message.objects.get(pk=message_id).state == "queued"
    assert epoch(recipient.session) == before + 1
    assert [m["message_id"] for m in recipient.receive()] == [message_id]
    assert recipient.ack([message_id]).json()["acked"] == [message_id]


def test_a_session_silent_past_disconnect_after_comes_back_on_its_next_call(pair):
    _, recipient, message_id = pair
    age(recipient.session, 61)  # timed out; the sweeper has not marked it yet
    response = recipient.client.post("/api/v1/sessions/me/heartbeat/")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert Message.objects.get(pk=message_id).state == "queued"


@pytest.mark.django_db(transaction=True)
def test_peers_are_told_the_session_came_back(make_tenant):
    tenant = make_tenant("alpha")
    connected = session_connect(tenant.project, name="worker")
    session_disconnect(connected.session)
    listener = Listener(project_group("alpha"))
    tenant.client(HTTP_X_SESSION_TOKEN=connected.token).post("/api/v1/sessions/me/heartbeat/")
    assert [(e["event"], e["name"]) for e in listener.events()] == [("session_joined", "worker")]


def test_two_calls_bring_the_session_back_once(alpha, agent):
    worker = agent(alpha, "worker")
    worker.client.post("/api/v1/sessions/me/disconnect/")
    before = epoch(worker.session)
    assert worker.client.post("/api/v1/sessions/me/heartbeat/").status_code == 200
    assert worker.client.post("/api/v1/sessions/me/heartbeat/").status_code == 200
    assert epoch(worker.session) == before + 1


def test_a_comeback_that_finds_the_session_live_under_its_lock_replaces_nothing(alpha):
    # The race: two first calls both read the session as disconnected; the first resumes it, and the
    # second, once it holds the row's lock, must find it live and leave it (no second epoch, no
    # session_replaced for the connection the first may already hold).
    session, _ = alpha.connect("worker")
    before = epoch(session)
    again, was_live = _take_back(session, messages_requeue_unacked, replace_live=False)
    assert was_live and again.connection_epoch == before == epoch(session)


def test_a_comeback_that_finds_an_operators_end_under_its_lock_is_refused(alpha):
    # The race: the call read the session as merely gone; an operator ended it before the lock was taken.
    session, _ = alpha.connect("worker")
    session_end(session, caller=CLI)
    with pytest.raises(Conflict):
        _take_back(session, messages_requeue_unacked, replace_live=False)
    assert AgentSession.objects.get(pk=session.pk).disconnect_reason == "operator"


def test_leaving_twice_does_not_resume_in_between(alpha, agent):
    leaver = agent(alpha, "leaver")
    assert leaver.client.post("/api/v1/sessions/me/disconnect/").json()["status"] == "disconnected"
    assert leaver.client.post("/api/v1/sessions/me/disconnect/").json()["status"] == "disconnected"
    assert AgentSession.objects.get(pk=leaver.session.pk).disconnect_reason == "client"


def test_a_session_an_operator_ended_stays_ended_until_resumed_on_purpose(alpha):
    session, token = alpha.connect("kicked")
    session_end(session, caller=CLI)
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    refused = client.post("/api/v1/sessions/me/heartbeat/")
    assert refused.status_code == 409 and refused.json()["details"]["reason"] == "operator"
    assert "resume" in refused.json()["message"]
    resumed = client.post("/api/v1/sessions/", {}, format="json")  # connect, naming no other session
    assert resumed.status_code == 200 and resumed.json()["session_id"] == str(session.pk)
    assert client.post("/api/v1/sessions/me/heartbeat/").status_code == 200


def test_a_token_passed_as_an_argument_keeps_the_old_rule(alpha):
    session, token = alpha.connect("explicit")
    session_disconnect(session)
    with pytest.raises(Conflict):
        session_acting(alpha.project, token=token)
    assert AgentSession.objects.get(pk=session.pk).status == "disconnected"


def test_a_connection_bound_to_the_configured_session_resumes_it_and_one_bound_elsewhere_does_not(alpha):
    configured, token = alpha.connect("configured")
    other, _ = alpha.connect("other")
    session_disconnect(configured)
    session_disconnect(other)
    with pytest.raises(Conflict):  # bound (connect_session) to another session: the header does not name it
        session_acting(alpha.project, bound_to=other.pk, configured_token=token)
    assert session_acting(alpha.project, bound_to=configured.pk, configured_token=token).pk == configured.pk
    assert AgentSession.objects.get(pk=configured.pk).status == "active"


def test_connect_with_the_header_naming_no_other_session_resumes_the_configured_one(alpha):
    session, token = alpha.connect("frontend")
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    bare = client.post("/api/v1/sessions/", {}, format="json").json()
    assert bare["session_id"] == str(session.pk) and bare["resumed"] is True and "session_token" not in bare
    caps = {"supported_protocols": {"chat": ["1.0.0"]}, "supported_features": []}
    named = client.post("/api/v1/sessions/", {"name": "frontend", "capabilities": caps}, format="json").json()
    assert named["session_id"] == str(session.pk) and named["capabilities"] == caps
    adhoc = client.post("/api/v1/sessions/", {"name": "scratch"}, format="json")
    assert adhoc.status_code == 201 and adhoc.json()["session_id"] != str(session.pk)


def test_another_projects_token_in_the_header_is_unknown_and_resumes_nothing(alpha, beta):
    theirs, beta_token = beta.connect("theirs")
    session_disconnect(theirs)
    client = alpha.client(HTTP_X_SESSION_TOKEN=beta_token)
    assert client.post("/api/v1/sessions/me/heartbeat/").status_code == 401
    assert client.post("/api/v1/sessions/", {}, format="json").status_code == 401
    assert AgentSession.objects.get(pk=theirs.pk).status == "disconnected"


def test_a_provisioned_session_comes_alive_on_its_first_call(alpha, agent):
    made = session_provision(alpha.project, name="frontend", caller=CLI)
    assert made.session.status == "disconnected" and made.session.disconnect_reason == "provisioned"
    sender = agent(alpha, "sender")
    assert sender.send("frontend").status_code == 201  # mail waits for it
    client = alpha.client(HTTP_X_SESSION_TOKEN=made.token)
    received = client.post("/api/v1/messages/receive/", {}, format="json").json()["messages"]
    assert [m["sender_id"] for m in received] == [str(sender.session.pk)]
    assert AgentSession.objects.get(pk=made.session.pk).status == "active"
