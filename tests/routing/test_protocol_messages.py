"""Protocol messages: schema validation, compatibility, and version transformation on delivery."""

from routing.models import Message
from tests.protocols.conftest import register

V100 = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
V110 = {"type": "object", "properties": {"text": {"type": "string"}, "mood": {"type": "string"}},
        "required": ["text"]}


def test_sender_at_1_1_0_reaches_recipient_at_1_0_0_with_the_new_field_dropped(alpha, agent):
    register(alpha.admin(), "chat", "1.0.0", V100)
    register(alpha.admin(), "chat", "1.1.0", V110)
    new, old = agent(alpha, "new", {"chat": ["1.1.0"]}), agent(alpha, "old", {"chat": ["1.0.0"]})
    sent = new.send("old", {"text": "hi", "mood": "happy"}, protocol_name="chat", protocol_version="1.1.0")
    assert sent.status_code == 201, sent.content
    assert (sent.json()["transformed_from"], sent.json()["transformed_to"]) == ("1.1.0", "1.0.0")
    [message] = old.receive()
    assert message["payload"] == {"text": "hi"}
    assert message["protocol"] == {"name": "chat", "version": "1.0.0"}
    assert (message["transformed_from"], message["transformed_to"]) == ("1.1.0", "1.0.0")


def test_protocol_version_defaults_to_the_senders_highest_declared(alpha, agent):
    register(alpha.admin(), "chat", "1.0.0", V100)
    register(alpha.admin(), "chat", "1.1.0", V110)
    a, b = agent(alpha, "a", {"chat": ["1.0.0", "1.1.0"]}), agent(alpha, "b", {"chat": ["1.1.0"]})
    a.send("b", {"text": "x"}, protocol_name="chat")
    assert b.receive()[0]["protocol"] == {"name": "chat", "version": "1.1.0"}


def test_payload_failing_the_schema_is_refused_with_path_and_constraint(alpha, agent):
    register(alpha.admin(), "chat", "1.0.0", V100)
    a, _ = agent(alpha, "a", {"chat": ["1.0.0"]}), agent(alpha, "b", {"chat": ["1.0.0"]})
    response = a.send("b", {"text": 5}, protocol_name="chat", protocol_version="1.0.0")
    assert response.status_code == 400
    details = response.json()["details"]
    assert (details["path"], details["constraint"]) == ("$.text", "type")
    missing = a.send("b", {}, protocol_name="chat", protocol_version="1.0.0").json()["details"]
    assert missing["constraint"] == "required"
    assert Message.objects.count() == 0


def test_recipient_without_the_protocol_is_incompatible_with_a_suggestion(alpha, agent):
    register(alpha.admin(), "chat", "1.0.0", V100)
    a, _ = agent(alpha, "a", {"chat": ["1.0.0"]}), agent(alpha, "b")
    response = a.send("b", {"text": "hi"}, protocol_name="chat", protocol_version="1.0.0")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "incompatible"
    assert "should add chat 1.0.0" in body["details"]["suggestion"]
    assert Message.objects.count() == 0


def test_unknown_protocol_is_not_found(alpha, agent):
    a, _ = agent(alpha, "a"), agent(alpha, "b")
    assert a.send("b", protocol_name="ghost", protocol_version="1.0.0").status_code == 404
    assert a.send("b", protocol_name="ghost").status_code == 404
    assert a.send("b", protocol_version="1.0.0").status_code == 400
