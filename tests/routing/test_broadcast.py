"""Broadcast: one copy per live session, every session accounted for with a reason."""

from routing.models import Message
from sessions_app.services import session_disconnect
from tests.protocols.conftest import register

CHAT_V1 = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
CHAT_V2 = {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"],
           "additionalProperties": False}


def test_broadcast_with_feature_filter_block_and_incompatible_version(alpha, agent):
    register(alpha.admin(), "chat", "1.0.0", CHAT_V1)
    register(alpha.admin(), "chat", "2.0.0", CHAT_V2)
    sender = agent(alpha, "sender", {"chat": ["1.0.0"]})
    reviewer = agent(alpha, "reviewer", {"chat": ["1.0.0"]}, ["review"])
    plain = agent(alpha, "plain", {"chat": ["1.0.0"]})
    blocker = agent(alpha, "blocker", {"chat": ["1.0.0"]}, ["review"])
    modern = agent(alpha, "modern", {"chat": ["2.0.0"]}, ["review"])
    gone = agent(alpha, "gone", {"chat": ["1.0.0"]}, ["review"])
    session_disconnect(gone.session)
    blocker.client.post("/api/v1/sessions/me/blocks/", {"session": "sender"}, format="json")

    response = sender.broadcast({"text": "review please"}, protocol_name="chat", protocol_version="1.0.0",
                                capability_filter={"review": True})
    assert response.status_code == 201, response.content
    result = response.json()
    assert result["counts"] == {"pushing": 0, "queued": 1, "failed": 1, "skipped": 2}
    assert [q["name"] for q in result["queued"]] == ["reviewer"]
    assert {s["name"]: s["reason"] for s in result["skipped"]} == {
        "plain": "capability_filter: review missing", "blocker": "blocks the sender"}
    assert [(f["name"], f["reason"]) for f in result["failed"]] == [("modern", "incompatible")]
    [received] = reviewer.receive()
    assert received["broadcast_id"] == result["broadcast_id"]
    assert received["payload"] == {"text": "review please"}
    for nobody in (plain, blocker, modern, gone, sender):
        assert Message.objects.filter(recipient=nobody.session).count() == 0


def test_broadcast_excludes_the_sender_and_reaches_everyone_else(alpha, agent):
    sender = agent(alpha, "sender")
    others = [agent(alpha, f"peer{n}") for n in range(3)]
    result = sender.broadcast().json()
    assert result["counts"]["queued"] == 3
    assert all(len(peer.receive()) == 1 for peer in others)
    assert sender.receive() == []


def test_broadcast_to_nobody_says_why(alpha, agent):
    sender = agent(alpha, "alone")
    result = sender.broadcast().json()
    assert result["counts"]["queued"] == 0
    assert result["reason"] == "no other live session in the project"


def test_broadcast_must_have_not_filter_and_bad_filter(alpha, agent):
    sender = agent(alpha, "sender")
    agent(alpha, "streamer", features=["streaming"])
    agent(alpha, "quiet")
    result = sender.broadcast(capability_filter={"streaming": False}).json()
    assert [q["name"] for q in result["queued"]] == ["quiet"]
    for bad in [["streaming"], {"streaming": "yes"}]:
        response = sender.broadcast(capability_filter=bad)
        assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_broadcast_into_a_full_queue_fails_for_that_session_only(alpha, agent):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 1}, format="json")
    sender, full, free = agent(alpha, "sender"), agent(alpha, "full"), agent(alpha, "free")
    sender.send("full")
    result = sender.broadcast().json()
    assert [q["name"] for q in result["queued"]] == ["free"]
    [failure] = result["failed"]
    assert (failure["name"], failure["reason"]) == ("full", "queue_full")
    assert Message.objects.get(pk=failure["message_id"]).dead_reason == "queue_full"
    assert len(free.receive()) == 1 and len(full.receive()) == 1


def test_broadcast_carries_every_header_a_send_does(alpha, agent):
    sender, hearer = agent(alpha, "sender"), agent(alpha, "hearer")
    response = sender.broadcast(ttl=600, correlation_id="c-1", reply_to="sender", priority="urgent")
    assert response.status_code == 201, response.content
    [message] = hearer.receive()
    assert (message["ttl"], message["correlation_id"], message["reply_to"], message["priority"]) == (
        600, "c-1", "sender", "urgent")
