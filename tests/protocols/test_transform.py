"""Converting payloads to the version a recipient supports: transform_for, and the REST dry run."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker_site.errors import Incompatible
from projects.auth import CLI
from protocols.services import adapter_register, protocol_register
from protocols.transform import built_in_adapt, operations_apply, transform_for
from tests.protocols.conftest import CHAT_SCHEMA, assert_error

CHAT_1_1 = {
    "type": "object",
    "properties": {**CHAT_SCHEMA["properties"], "mood": {"type": "string"}},
    "required": ["text"],
}
CHAT_2 = {
    "type": "object",
    "properties": {"body": {"type": "string"}, "room": {"type": "string"}},
    "required": ["body"],
    "additionalProperties": False,
}


@pytest.fixture
def chat(alpha):
    """chat 1.0.0, 1.1.0 (adds mood) and 2.0.0 (text renamed body) registered in alpha; returns them by version."""
    return {version: protocol_register(alpha.project, CLI, name="chat", version=version, schema=schema)
            for version, schema in [("1.0.0", CHAT_SCHEMA), ("1.1.0", CHAT_1_1), ("2.0.0", CHAT_2)]}


def test_newer_field_is_dropped_for_a_recipient_on_the_older_version(alpha, chat):
    recipient, _ = alpha.connect("old", protocols={"chat": ["1.0.0"]})
    payload = {"text": "hi", "room": "general", "mood": "happy"}
    result = transform_for(alpha.project, chat["1.1.0"], payload, recipient)
    assert result.payload == {"text": "hi", "room": "general"}
    assert result.protocol == chat["1.0.0"]
    assert (result.transformed_from, result.transformed_to) == ("1.1.0", "1.0.0")
    assert payload == {"text": "hi", "room": "general", "mood": "happy"}  # the sender's copy is untouched


def test_recipient_on_the_senders_version_gets_the_payload_unchanged_without_queries(alpha, chat):
    recipient, _ = alpha.connect("same", protocols={"chat": ["1.0.0", "1.1.0"]})
    payload = {"text": "hi", "mood": "happy"}
    with CaptureQueriesContext(connection) as queries:
        result = transform_for(alpha.project, chat["1.1.0"], payload, recipient)
    assert result.payload is payload and result.protocol == chat["1.1.0"]
    assert result.transformed_from is None and result.transformed_to is None
    assert len(queries) == 0


def test_conversion_costs_at_most_two_queries(alpha, chat):
    recipient, _ = alpha.connect("old", protocols={"chat": ["1.0.0", "0.9.0", "3.0.0"]})
    with CaptureQueriesContext(connection) as queries:
        transform_for(alpha.project, chat["1.1.0"], {"text": "hi"}, recipient)
    assert len(queries) <= 2


def test_declared_rename_adapter_converts_2_to_1(alpha, chat):
    adapter_register(alpha.project, CLI, protocol_name="chat", from_version="2.0.0", to_version="1.0.0",
                     operations=[{"op": "rename", "from": "body", "to": "text"}])
    recipient, _ = alpha.connect("old", protocols={"chat": ["1.0.0"]})
    result = transform_for(alpha.project, chat["2.0.0"], {"body": "hello", "room": "r1"}, recipient)
    assert result.payload == {"text": "hello", "room": "r1"}
    assert (result.transformed_from, result.transformed_to) == ("2.0.0", "1.0.0")


def test_set_default_fills_a_field_the_target_requires(alpha, chat):
    adapter_register(alpha.project, CLI, protocol_name="chat", from_version="1.0.0", to_version="2.0.0",
                     operations=[{"op": "rename", "from": "text", "to": "body"},
                                 {"op": "set_default", "field": "room", "value": "lobby"}])
    recipient, _ = alpha.connect("new", protocols={"chat": ["2.0.0"]})
    result = transform_for(alpha.project, chat["1.0.0"], {"text": "hi"}, recipient)
    assert result.payload == {"body": "hi", "room": "lobby"}
    kept = transform_for(alpha.project, chat["1.0.0"], {"text": "hi", "room": "dev"}, recipient)
    assert kept.payload["room"] == "dev"  # a default never overwrites


def test_same_major_is_tried_before_a_higher_major(alpha, chat):
    protocol_register(alpha.project, CLI, name="chat", version="1.2.0", schema=CHAT_SCHEMA)
    recipient, _ = alpha.connect("mixed", protocols={"chat": ["1.0.0", "1.2.0", "2.0.0"]})
    result = transform_for(alpha.project, chat["1.1.0"], {"text": "hi", "mood": "ok"}, recipient)
    assert result.transformed_to == "1.2.0"


def test_falls_back_to_the_next_version_when_the_best_one_rejects_the_payload(alpha, chat):
    protocol_register(alpha.project, CLI, name="chat", version="1.2.0",
                      schema={**CHAT_SCHEMA, "required": ["text", "author"]})
    recipient, _ = alpha.connect("mixed", protocols={"chat": ["1.0.0", "1.2.0"]})
    result = transform_for(alpha.project, chat["1.1.0"], {"text": "hi"}, recipient)
    assert result.transformed_to == "1.0.0"


def test_no_valid_result_is_incompatible_naming_every_version_tried(alpha, chat):
    recipient, _ = alpha.connect("new", protocols={"chat": ["2.0.0", "2.5.0"]})
    with pytest.raises(Incompatible) as raised:
        transform_for(alpha.project, chat["1.0.0"], {"text": "hi"}, recipient)
    error = raised.value
    assert error.code == "incompatible"
    assert "new" in error.message and "2.0.0" in error.message
    tried = error.details["tried"]
    assert [t["version"] for t in tried] == ["2.5.0", "2.0.0"]
    assert tried[0]["adapter"] is None and "not registered" in tried[0]["reason"]
    assert tried[1]["adapter"] == "built_in" and "body" in tried[1]["reason"]
    assert error.details["recipient_versions"] == ["2.5.0", "2.0.0"]
    assert "adapter from chat 1.0.0 to 2.0.0" in error.details["suggestion"]


def test_a_failing_declared_adapter_is_reported_as_declared(alpha, chat):
    adapter_register(alpha.project, CLI, protocol_name="chat", from_version="1.0.0", to_version="2.0.0",
                     operations=[{"op": "drop", "field": "room"}])
    recipient, _ = alpha.connect("new", protocols={"chat": ["2.0.0"]})
    with pytest.raises(Incompatible) as raised:
        transform_for(alpha.project, chat["1.0.0"], {"text": "hi"}, recipient)
    assert raised.value.details["tried"][0]["adapter"] == "declared"


def test_recipient_without_the_protocol_is_incompatible_with_a_suggestion(alpha, chat):
    recipient, _ = alpha.connect("stranger", protocols={"files": ["1.0.0"]})
    with pytest.raises(Incompatible) as raised:
        transform_for(alpha.project, chat["1.0.0"], {"text": "hi"}, recipient)
    details = raised.value.details
    assert details["protocol"] == "chat" and details["version"] == "1.0.0"
    assert details["recipient_versions"] == []
    assert details["suggestion"] == "session stranger should add chat 1.0.0"
    assert "stranger does not support chat" in raised.value.message


def test_another_projects_adapters_and_protocols_are_not_used(alpha, beta, chat):
    protocol_register(beta.project, CLI, name="chat", version="1.0.0", schema=CHAT_SCHEMA)
    protocol_register(beta.project, CLI, name="chat", version="2.0.0", schema=CHAT_2)
    adapter_register(beta.project, CLI, protocol_name="chat", from_version="2.0.0", to_version="1.0.0",
                     operations=[{"op": "rename", "from": "body", "to": "text"}])
    recipient, _ = alpha.connect("old", protocols={"chat": ["1.0.0"]})
    with pytest.raises(Incompatible) as raised:
        transform_for(alpha.project, chat["2.0.0"], {"body": "hello"}, recipient)
    assert raised.value.details["tried"][0]["adapter"] == "built_in"


def test_built_in_adapter_keeps_what_the_schema_admits():
    payload = {"text": "hi", "x-trace": "1", "extra": True}
    assert built_in_adapt({"type": "object"}, payload) == payload
    assert built_in_adapt({"properties": {"text": {}}, "additionalProperties": True}, payload) == payload
    assert built_in_adapt({"properties": {"text": {}}, "patternProperties": {"^x-": {}}}, payload) == {
        "text": "hi", "x-trace": "1"}
    assert built_in_adapt({"properties": {"text": {}}, "additionalProperties": False}, payload) == {"text": "hi"}


def test_dotted_paths_reach_nested_objects_and_inputs_stay_untouched():
    payload = {"meta": {"by": "ann", "at": 1}, "text": "hi"}
    ops = [{"op": "rename", "from": "meta.by", "to": "author"}, {"op": "drop", "field": "meta.at"},
           {"op": "set_default", "field": "meta.lang", "value": "en"}, {"op": "drop", "field": "missing.deep"}]
    assert operations_apply(ops, payload) == {"meta": {"lang": "en"}, "text": "hi", "author": "ann"}
    assert payload == {"meta": {"by": "ann", "at": 1}, "text": "hi"}


# --- the REST dry run ------------------------------------------------------------------------------

def dry_run(tenant, version: str, body: dict):
    return tenant.client().post(f"/api/v1/protocols/chat/{version}/transform/", body, format="json")


def test_dry_run_shows_the_built_in_conversion(alpha, chat):
    response = dry_run(alpha, "1.1.0", {"payload": {"text": "hi", "mood": "ok"}, "target_version": "1.0.0"})
    assert response.status_code == 200, response.json()
    assert response.json() == {"payload": {"text": "hi"}, "transformed_from": "1.1.0", "transformed_to": "1.0.0",
                               "adapter": "built_in", "adapter_id": None}


def test_dry_run_uses_a_declared_adapter(alpha, chat):
    adapter = adapter_register(alpha.project, CLI, protocol_name="chat", from_version="2.0.0", to_version="1.0.0",
                               operations=[{"op": "rename", "from": "body", "to": "text"}])
    body = dry_run(alpha, "2.0.0", {"payload": {"body": "yo"}, "target_version": "1.0.0"}).json()
    assert body["payload"] == {"text": "yo"}
    assert body["adapter"] == "declared" and body["adapter_id"] == str(adapter.pk)


def test_dry_run_to_the_same_version_is_unchanged(alpha, chat):
    body = dry_run(alpha, "1.0.0", {"payload": {"text": "hi"}, "target_version": "1.0.0"}).json()
    assert body == {"payload": {"text": "hi"}, "transformed_from": None, "transformed_to": None, "adapter": None,
                    "adapter_id": None}


def test_dry_run_errors(alpha, beta, chat):
    details = assert_error(dry_run(alpha, "1.0.0", {"payload": {"text": "hi"}, "target_version": "2.0.0"}),
                           422, "incompatible")
    assert details["tried"][0]["version"] == "2.0.0" and details["tried"][0]["adapter"] == "built_in"
    assert_error(dry_run(alpha, "1.0.0", {"payload": {"room": "no text"}, "target_version": "1.1.0"}),
                 400, "validation_error")
    assert_error(dry_run(alpha, "1.0.0", {"payload": {"text": "hi"}, "target_version": "9.0.0"}), 404, "not_found")
    assert_error(dry_run(alpha, "1.0.0", {"payload": {"text": "hi"}, "target_version": "latest"}),
                 400, "validation_error")
    assert_error(dry_run(alpha, "1.0.0", {"payload": {"text": "hi"}}), 400, "validation_error")
    assert_error(dry_run(alpha, "1.0.0", {"payload": {}, "target_version": "1.1.0", "x": 1}), 400, "validation_error")
    # Another project's key sees none of alpha's protocols.
    assert_error(dry_run(beta, "1.1.0", {"payload": {"text": "hi"}, "target_version": "1.0.0"}), 404, "not_found")
