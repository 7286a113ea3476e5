"""Registering protocols over REST: the rules, the limits and who may do it."""

import pytest

from protocols.models import Protocol
from tests.protocols.conftest import CHAT_SCHEMA, assert_error, register


def test_register_returns_the_protocol_with_author_and_defaults(alpha):
    response = register(alpha.client(), tags=["chat", "v1"], description="Chat lines")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "chat" and body["version"] == "1.0.0"
    assert body["schema"] == CHAT_SCHEMA
    assert body["capabilities"] == ["point_to_point"]
    assert body["tags"] == ["chat", "v1"]
    assert body["author"].startswith("alpha_")
    assert body["shared"] is False and body["read_only"] is False
    assert body["project_id"] == "alpha"


def test_duplicate_version_is_conflict_suggesting_versions_after_the_highest(alpha):
    client = alpha.client()
    for version in ["1.0.0", "1.4.2", "1.10.0"]:
        assert register(client, version=version).status_code == 201
    details = assert_error(register(client, version="1.4.2"), 409, "conflict")
    assert details["suggested_versions"] == ["1.10.1", "1.11.0", "2.0.0"]
    assert Protocol.objects.filter(project=alpha.project, name="chat").count() == 3


@pytest.mark.parametrize("name", ["Chat", "chat-room", "1chat", "chat_", "_chat", "c", "x" * 101, "", "chat room"])
def test_invalid_names_are_refused(alpha, name):
    response = register(alpha.client(), name=name)
    assert_error(response, 400, "validation_error")
    details = response.json()["details"]
    assert details.get("field") == "name" or "name" in details.get("fields", {})


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-beta", "1.0.0+build.1", "01.0.0", "1.0.0.0", "latest"])
def test_invalid_versions_are_refused(alpha, version):
    details = assert_error(register(alpha.client(), version=version), 400, "validation_error")
    assert details["field"] == "version"
    assert "MAJOR.MINOR.PATCH" in details["constraint"]


def test_capabilities_must_be_known_and_are_kept(alpha):
    ok = register(alpha.client(), capabilities=["broadcast", "request_response"])
    assert ok.status_code == 201
    assert ok.json()["capabilities"] == ["broadcast", "request_response"]
    bad = register(alpha.client(), version="2.0.0", capabilities=["telepathy"])
    assert "capabilities.0" in assert_error(bad, 400, "validation_error")["fields"]  # the first item


def test_too_many_or_too_long_tags_are_refused(alpha):
    many = register(alpha.client(), tags=[f"t{i}" for i in range(21)])
    assert "tags" in assert_error(many, 400, "validation_error")["fields"]
    long = register(alpha.client(), tags=["ok", "x" * 51])
    assert "tags.1" in assert_error(long, 400, "validation_error")["fields"]


def test_missing_wrong_typed_and_unknown_fields_are_named(alpha):
    client = alpha.client()
    missing = client.post("/api/v1/protocols/", {"name": "chat"}, format="json")
    fields = assert_error(missing, 400, "validation_error")["fields"]
    assert {"version", "schema"} <= set(fields)
    wrong = register(client, tags="chat", shared="maybe")
    assert {"tags", "shared"} <= set(assert_error(wrong, 400, "validation_error")["fields"])
    unknown = register(client, owner="me")
    assert assert_error(unknown, 400, "validation_error")["fields"]["owner"] == ["unknown field"]
    not_json = client.post("/api/v1/protocols/", "{nope", content_type="application/json")
    assert_error(not_json, 400, "validation_error")
    assert not Protocol.objects.exists()


def test_admin_only_registration_refuses_agent_keys(alpha):
    changed = alpha.admin().patch("/api/v1/projects/alpha/", {"protocol_registration": "admin"}, format="json")
    assert changed.status_code == 200
    details = assert_error(register(alpha.client()), 403, "forbidden")
    assert details["required_role"] == "admin"
    assert register(alpha.admin()).status_code == 201


def test_max_protocols_is_a_limit(alpha):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_protocols": 2}, format="json")
    client = alpha.client()
    assert register(client, version="1.0.0").status_code == 201
    assert register(client, name="other", version="1.0.0").status_code == 201
    details = assert_error(register(client, version="1.1.0"), 409, "limit_reached")
    assert details["limit"] == 2


def test_same_name_and_version_may_exist_in_two_projects(alpha, beta):
    assert register(alpha.client()).status_code == 201
    assert register(beta.client(), schema={"type": "object"}).status_code == 201
    assert Protocol.objects.get(project=alpha.project).schema == CHAT_SCHEMA
