"""Schemas are checked at registration; payloads are checked against them."""

import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import override_settings

from broker_site.errors import ValidationFailed
from projects.auth import CLI
from protocols.schemas import payload_validate
from protocols.services import protocol_register
from tests.protocols.conftest import CHAT_SCHEMA, assert_error, register


@pytest.mark.parametrize(("schema", "path"), [
    ({"type": "nope"}, "$.type"),
    ({"properties": {"a": {"type": 5}}}, "$.properties.a.type"),
    ({"type": "object", "properties": {"id": {"type": "string", "pattern": "(["}}}, "$.properties.id.pattern"),
])
def test_invalid_schema_names_the_path_and_constraint(alpha, schema, path):
    details = assert_error(register(alpha.client(), schema=schema), 400, "validation_error")
    assert details["field"] == "schema"
    assert details["path"] == path
    assert details["constraint"] in {"anyOf", "format", "type"}
    assert details["reason"]


@pytest.mark.parametrize("schema", [[], "object", 5, True, None])
def test_schema_must_be_a_json_object(alpha, schema):
    response = register(alpha.client(), schema=schema) if schema is not None else alpha.client().post(
        "/api/v1/protocols/", {"name": "chat", "version": "1.0.0", "schema": None}, format="json")
    details = assert_error(response, 400, "validation_error")
    assert details.get("field") == "schema" or "schema" in details.get("fields", {})


def test_unknown_schema_dialect_is_refused(alpha):
    details = assert_error(register(alpha.client(), schema={"$schema": "https://example.com/mine"}),
                           400, "validation_error")
    assert details["constraint"] == "$schema"


def test_older_dialect_is_checked_against_its_own_metaschema(alpha):
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}}
    assert register(alpha.client(), schema=draft7).status_code == 201
    bad = dict(draft7, properties={"n": {"type": "integer", "exclusiveMinimum": True}})
    assert_error(register(alpha.client(), version="2.0.0", schema=bad), 400, "validation_error")


@override_settings(BROKER={**settings.BROKER, "MAX_SCHEMA_BYTES": 1024})
def test_oversized_schema_is_refused(alpha):
    big = {"type": "object", "description": "x" * 2000}
    details = assert_error(register(alpha.client(), schema=big), 400, "validation_error")
    assert details["constraint"] == "max_bytes" and details["limit"] == 1024


def test_payload_validate_names_the_failing_path(alpha):
    protocol = protocol_register(alpha.project, CLI, name="chat", version="1.0.0", schema=CHAT_SCHEMA)
    payload_validate(protocol, {"text": "hello"})
    with pytest.raises(ValidationFailed) as missing:
        payload_validate(protocol, {"room": "lobby"})
    assert missing.value.details["constraint"] == "required"
    assert missing.value.details["path"] == "$"
    with pytest.raises(ValidationFailed) as too_long:
        payload_validate(protocol, {"text": "x" * 201})
    assert too_long.value.details["path"] == "$.text"
    assert too_long.value.details["constraint"] == "maxLength"
    assert len(too_long.value.message) <= 600
    with pytest.raises(ValidationFailed) as not_object:
        payload_validate(protocol, ["text"])
    assert not_object.value.details["constraint"] == "type"


def test_validator_cache_is_per_registration_not_per_name(alpha):
    first = protocol_register(alpha.project, CLI, name="chat", version="1.0.0", schema={"type": "object"})
    payload_validate(first, {"n": "anything"})
    first.delete()
    strict = {"type": "object", "properties": {"n": {"type": "integer"}}}
    again = protocol_register(alpha.project, CLI, name="chat", version="1.0.0", schema=strict)
    with pytest.raises(ValidationFailed):
        payload_validate(again, {"n": "anything"})


def test_remote_refs_are_refused_at_registration_and_never_fetched(alpha):
    with pytest.raises(ValidationFailed) as refused:
        protocol_register(alpha.project, CLI, name="remote", version="1.0.0",
                          schema={"$ref": "http://127.0.0.1:9/evil.json"})
    assert refused.value.details == {"field": "schema", "path": "$['$ref']", "constraint": "$ref",
                                     "ref": "http://127.0.0.1:9/evil.json"}
    # A schema stored before registrations checked their refs: refused at send, still not fetched.
    stored = SimpleNamespace(id=uuid.uuid4(), name="remote", version="1.0.0",
                             schema={"$ref": "http://127.0.0.1:9/evil.json"})
    with pytest.raises(ValidationFailed) as at_send:
        payload_validate(stored, {})
    assert at_send.value.details["constraint"] == "$ref"


def test_formats_are_asserted(alpha):
    protocol = protocol_register(alpha.project, CLI, name="ids", version="1.0.0",
                                 schema={"type": "object", "properties": {"at": {"type": "string",
                                                                                 "format": "uuid"}}})
    payload_validate(protocol, {"at": "6f1c2a34-8d0e-4b7a-9a51-0c2f3e4d5b6a"})
    with pytest.raises(ValidationFailed) as bad:
        payload_validate(protocol, {"at": "not-a-uuid"})
    assert bad.value.details["constraint"] == "format"
