"""Every call that acts as a session resolves it one way: one liveness rule, one heartbeat.

A session whose status is disconnected (marked so, or silent past disconnect_after and not
yet swept) is refused by every session call before anything is done, with a pointer to
resume, unless the call names it by the client's configured identity (the X-Session-Token
header), which resumes it first; every other session call counts as a heartbeat.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker_site.errors import Conflict
from broker_site.mcp.binding import bindings
from broker_site.mcp.inbox import inbox_owner
from projects.auth import CLI, authenticate
from routing.contracts import SendIn
from routing.lifecycle import session_acting
from routing.live import MAIL_WAITING_SECONDS, sessions_held_renewed
from routing.models import Message
from routing.sending import message_send
from sessions_app.models import LIVE, AgentSession
from sessions_app.services import session_disconnect, session_end
from tests.sessions.test_presence import age


def test_an_ack_from_a_session_an_operator_ended_is_refused_and_not_applied(pair):
    _, recipient, message_id = pair
    session_end(recipient.session, caller=CLI)
    response = recipient.ack([message_id])
    assert response.status_code == 409 and "resume" in response.json()["message"]
    assert Message.objects.get(pk=message_id).state == "delivered"


def test_a_session_silent_past_disconnect_after_is_refused_like_a_disconnected_one(pair):
    _, recipient, message_id = pair
    age(recipient.session, 61)  # the sweeper has not marked it yet; its status already says disconnected
    with pytest.raises(Conflict):  # named by a token argument (MCP's session_token): nothing resumes it
        session_acting(recipient.tenant.project, token=recipient.token)
    assert Message.objects.get(pk=message_id).state == "delivered"
    # Named by the X-Session-Token header, the client's configured identity, it is resumed first
    # (tests/sessions/test_configured_identity.py): the unacked message is queued again, not acked.
    assert recipient.ack([message_id]).json()["not_acked"] == [message_id]


def test_an_applied_ack_is_answered_as_applied(pair):
    _, recipient, message_id = pair
    age(recipient.session, 59)  # still live, if only just
    response = recipient.ack([message_id])
    assert response.status_code == 200 and response.json()["acked"] == [message_id]
    assert Message.objects.get(pk=message_id).state == "acked"


@pytest.mark.parametrize("call", ["receipt", "negotiate", "blocks", "block", "ack", "send", "receive"])
def test_every_session_call_counts_as_a_heartbeat(pair, call):
    sender, _, message_id = pair
    age(sender.session, 40)  # stale
    client = sender.client
    response = {
        "receipt": lambda: client.get(f"/api/v1/messages/{message_id}/"),
        "negotiate": lambda: client.post("/api/v1/negotiate/", {"target_session_id": "recipient"}, format="json"),
        "blocks": lambda: client.get("/api/v1/sessions/me/blocks/"),
        "block": lambda: client.post("/api/v1/sessions/me/blocks/", {"session": "recipient"}, format="json"),
        "ack": lambda: sender.ack([message_id]),
        "send": lambda: sender.send("recipient"),
        "receive": lambda: client.post("/api/v1/messages/receive/", {}, format="json"),
    }[call]()
    assert response.status_code < 300, response.content
    sessions = {s["name"]: s["status"] for s in client.get("/api/v1/sessions/?status_filter=all").json()["sessions"]}
    assert sessions["sender"] == "active"


def test_disconnecting_twice_is_harmless(alpha, agent):
    leaver = agent(alpha, "leaver")
    assert leaver.client.post("/api/v1/sessions/me/disconnect/").json()["status"] == "disconnected"
    again = leaver.client.post("/api/v1/sessions/me/disconnect/")
    assert again.status_code == 200 and again.json()["status"] == "disconnected"


@pytest.mark.parametrize("idle", [0, 29, 31, 59, 61, 3600])
def test_status_is_one_rule_in_python_and_in_sql(alpha, idle):
    session, _ = alpha.connect("timed")
    age(session, idle)
    session.refresh_from_db()
    [status] = [s for s in AgentSession.Status.values
                if AgentSession.objects.filter(pk=session.pk).filter(AgentSession.status_q(alpha.project, s)).exists()]
    assert status == session.status
    live = AgentSession.objects.filter(pk=session.pk).filter(AgentSession.status_q(alpha.project, LIVE)).exists()
    assert live == session.is_live_at()


def test_the_keep_alive_does_not_revive_a_session_past_disconnect_after(alpha):
    held, _ = alpha.connect("held")
    lapsed, _ = alpha.connect("lapsed")
    age(lapsed, 61)  # its process stalled longer than disconnect_after
    assert set(sessions_held_renewed([held.pk, lapsed.pk], {"alpha": alpha.project})) == {held.pk}
    lapsed.refresh_from_db()
    assert lapsed.status == "disconnected" and lapsed.push_until is None
    held.refresh_from_db()
    assert held.push_until is not None


@pytest.mark.parametrize("idle", [0, 31, 59, 61, 3600])
def test_the_keep_alive_renews_exactly_the_sessions_the_status_rule_calls_live(alpha, idle):
    session, _ = alpha.connect("timed")
    ended, _ = alpha.connect("ended")
    session_disconnect(ended, reason="test")
    age(session, idle)
    session.refresh_from_db()
    renewed = sessions_held_renewed([session.pk, ended.pk], {"alpha": alpha.project})
    assert set(renewed) == ({session.pk} if session.is_live_at() else set())


def test_the_keep_alive_says_which_sessions_have_mail_waiting(alpha):
    sender, _ = alpha.connect("sender")
    waiting, _ = alpha.connect("waiting")
    fresh, _ = alpha.connect("fresh")
    for recipient in ("waiting", "fresh"):
        message_send(sender, SendIn(recipient_id=recipient, payload={"n": 1}))
    Message.objects.filter(recipient=waiting).update(created_at=timezone.now() - timedelta(seconds=MAIL_WAITING_SECONDS + 1))
    renewed = sessions_held_renewed([sender.pk, waiting.pk, fresh.pk], {"alpha": alpha.project})
    assert renewed == {sender.pk: False, waiting.pk: True, fresh.pk: False}


def test_an_mcp_inbox_read_acts_as_its_session(alpha):
    session, _ = alpha.connect("reader")
    caller = authenticate(alpha.agent_key)
    bindings.bind("mcp-connection", "alpha", session.pk)
    assert inbox_owner(caller, "mcp-connection", "reader").pk == session.pk
    age(session, 61)
    with pytest.raises(Conflict):
        inbox_owner(caller, "mcp-connection", "reader")
    bindings.unbind("mcp-connection", session.pk)
