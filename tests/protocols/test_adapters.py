"""Registering, listing and deleting declarative protocol adapters over REST, and in the admin."""

import pytest
from django.test import Client

from projects.auth import CLI
from protocols.models import ProtocolAdapter
from protocols.services import adapter_register, protocol_register
from tests.protocols.conftest import assert_error

RENAME = [{"op": "rename", "from": "body", "to": "text"}]


@pytest.fixture
def versions(alpha):
    for version in ["1.0.0", "2.0.0"]:
        protocol_register(alpha.project, CLI, name="chat", version=version, schema={"type": "object"})


def add(client, from_version="2.0.0", to_version="1.0.0", operations=None, name="chat", **extra):
    body = {"from_version": from_version, "to_version": to_version,
            "operations": RENAME if operations is None else operations, **extra}
    return client.post(f"/api/v1/protocols/{name}/adapters/", body, format="json")


def test_admin_registers_an_adapter_and_anyone_in_the_project_lists_it(alpha, versions):
    response = add(alpha.admin())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["protocol_name"] == "chat"
    assert (body["from_version"], body["to_version"]) == ("2.0.0", "1.0.0")
    assert body["operations"] == RENAME
    assert body["author"].startswith("alpha_")
    listed = alpha.client().get("/api/v1/protocols/chat/adapters/").json()
    assert listed["count"] == 1 and listed["adapters"][0]["id"] == body["id"]


def test_empty_listing_says_so(alpha):
    body = alpha.client().get("/api/v1/protocols/chat/adapters/").json()
    assert body["count"] == 0 and body["adapters"] == [] and body["message"]


def test_agent_keys_may_not_register_or_delete_adapters(alpha, versions):
    details = assert_error(add(alpha.client()), 403, "forbidden")
    assert details["required_role"] == "admin"
    adapter_id = add(alpha.admin()).json()["id"]
    assert_error(alpha.client().delete(f"/api/v1/protocols/chat/adapters/{adapter_id}/"), 403, "forbidden")
    assert ProtocolAdapter.objects.count() == 1


def test_delete_removes_the_adapter(alpha, versions):
    adapter_id = add(alpha.admin()).json()["id"]
    deleted = alpha.admin().delete(f"/api/v1/protocols/chat/adapters/{adapter_id}/")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True, "id": adapter_id, "protocol_name": "chat", "from_version": "2.0.0",
                              "to_version": "1.0.0"}
    assert not ProtocolAdapter.objects.exists()
    assert_error(alpha.admin().delete(f"/api/v1/protocols/chat/adapters/{adapter_id}/"), 404, "not_found")


def test_delete_under_another_protocols_name_is_not_found(alpha, versions):
    adapter_id = add(alpha.admin()).json()["id"]
    assert_error(alpha.admin().delete(f"/api/v1/protocols/files/adapters/{adapter_id}/"), 404, "not_found")
    assert ProtocolAdapter.objects.count() == 1


def test_duplicate_pair_is_a_conflict_naming_the_existing_adapter(alpha, versions):
    first = add(alpha.admin()).json()
    details = assert_error(add(alpha.admin(), operations=[]), 409, "conflict")
    assert details["adapter_id"] == first["id"]


def test_unregistered_versions_are_not_found_and_named(alpha, versions):
    details = assert_error(add(alpha.admin(), from_version="3.0.0"), 404, "not_found")
    assert details["missing_versions"] == ["3.0.0"] and details["field"] == "from_version"
    details = assert_error(add(alpha.admin(), from_version="3.0.0", to_version="4.0.0"), 404, "not_found")
    assert details["missing_versions"] == ["3.0.0", "4.0.0"]
    assert_error(add(alpha.admin(), name="files"), 404, "not_found")


def test_from_and_to_must_differ(alpha, versions):
    details = assert_error(add(alpha.admin(), from_version="1.0.0", to_version="1.0.0"), 400, "validation_error")
    assert details["field"] == "to_version"


@pytest.mark.parametrize(("operations", "field"), [
    ([{"op": "move", "from": "a", "to": "b"}], "operations[0].op"),
    ([{"from": "a", "to": "b"}], "operations[0].op"),
    (["rename"], "operations[0].op"),
    ([{"op": "drop", "field": "a", "value": 1}], "operations[0]"),
    ([{"op": "rename", "from": "a"}], "operations[0]"),
    ([{"op": "set_default", "field": "a"}], "operations[0]"),
    ([{"op": "drop", "field": "a"}, {"op": "drop", "field": ""}], "operations[1].field"),
    ([{"op": "drop", "field": "a..b"}], "operations[0].field"),
    ([{"op": "drop", "field": 5}], "operations[0].field"),
    ([{"op": "drop", "field": "x" * 101}], "operations[0].field"),
    ([{"op": "rename", "from": "a", "to": "a"}], "operations[0].to"),
    ([{"op": "rename", "from": "a", "to": "a.b"}], "operations[0].to"),
    ([{"op": "set_default", "field": "a", "value": "x" * (64 * 1024)}], "operations[0].value"),
    ([{"op": "drop", "field": f"f{i}"} for i in range(51)], "operations"),
    ({"op": "drop", "field": "a"}, "operations"),
])
def test_invalid_operations_are_refused_naming_the_operation(alpha, versions, operations, field):
    details = assert_error(add(alpha.admin(), operations=operations), 400, "validation_error")
    assert details["field"] == field
    assert not ProtocolAdapter.objects.exists()


def test_missing_and_unknown_body_fields_are_named(alpha, versions):
    client = alpha.admin()
    missing = client.post("/api/v1/protocols/chat/adapters/", {"from_version": "2.0.0"}, format="json")
    assert {"to_version", "operations"} <= set(assert_error(missing, 400, "validation_error")["fields"])
    unknown = add(client, note="hi")
    assert assert_error(unknown, 400, "validation_error")["fields"]["note"] == ["unknown field"]
    bad_version = add(client, from_version="v2")
    assert assert_error(bad_version, 400, "validation_error")["field"] == "from_version"


def test_another_projects_adapters_are_invisible_and_untouchable(alpha, beta, versions):
    adapter_id = add(alpha.admin()).json()["id"]
    listed = beta.admin().get("/api/v1/protocols/chat/adapters/").json()
    assert listed["count"] == 0
    assert_error(beta.admin().delete(f"/api/v1/protocols/chat/adapters/{adapter_id}/"), 404, "not_found")
    # beta cannot point an adapter at alpha's versions either.
    assert_error(add(beta.admin()), 404, "not_found")
    assert ProtocolAdapter.objects.filter(project=alpha.project).count() == 1


def test_the_same_pair_may_exist_in_two_projects(alpha, beta, versions):
    for version in ["1.0.0", "2.0.0"]:
        protocol_register(beta.project, CLI, name="chat", version=version, schema={"type": "object"})
    assert add(alpha.admin()).status_code == 201
    assert add(beta.admin()).status_code == 201


def test_adapter_endpoints_are_in_the_openapi_schema(alpha):
    schema = alpha.client().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/v1/protocols/{name}/adapters/" in paths
    assert "/api/v1/protocols/{name}/adapters/{adapter_id}/" in paths
    assert "/api/v1/protocols/{name}/{version}/transform/" in paths


def test_admin_lists_adapters_read_only(alpha, versions, django_user_model):
    adapter = adapter_register(alpha.project, CLI, protocol_name="chat", from_version="2.0.0", to_version="1.0.0",
                               operations=[*RENAME, {"op": "set_default", "field": "room", "value": "lobby"}])
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    listing = client.get("/admin/protocols/protocoladapter/?q=chat")
    assert listing.status_code == 200
    assert "rename body → text; default room".encode() in listing.content
    assert client.get(f"/admin/protocols/protocoladapter/{adapter.pk}/change/").status_code == 200
    assert client.get("/admin/protocols/protocoladapter/add/").status_code == 403
