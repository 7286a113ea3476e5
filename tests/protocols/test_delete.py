"""Deleting protocols: who may, and not while a live session declares it."""

from protocols.models import Protocol
from sessions_app.services import session_disconnect
from tests.protocols.conftest import assert_error, register


def test_deletion_is_refused_while_a_live_session_declares_it_and_allowed_after(alpha):
    assert register(alpha.client()).status_code == 201
    session, _ = alpha.connect("frontend", protocols={"chat": ["1.0.0"]})
    alpha.connect("bystander", protocols={"chat": ["2.0.0"]})
    refused = alpha.client().delete("/api/v1/protocols/chat/1.0.0/")
    details = assert_error(refused, 409, "conflict")
    assert [s["name"] for s in details["sessions"]] == ["frontend"]
    assert "frontend" in refused.json()["message"]
    assert Protocol.objects.filter(name="chat").exists()

    session_disconnect(session)
    deleted = alpha.client().delete("/api/v1/protocols/chat/1.0.0/")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True, "name": "chat", "version": "1.0.0"}
    assert not Protocol.objects.filter(name="chat").exists()
    assert_error(alpha.client().get("/api/v1/protocols/chat/1.0.0/"), 404, "not_found")


def test_only_the_author_or_an_admin_may_delete(alpha, make_tenant):
    from projects.models import ApiKey
    from projects.services import api_key_create
    from tests.conftest import api_client

    assert register(alpha.client(), version="1.0.0").status_code == 201
    assert register(alpha.client(), version="1.1.0").status_code == 201
    _, other_agent = api_key_create(alpha.project, role=ApiKey.Role.AGENT, label="another agent")
    details = assert_error(api_client(other_agent).delete("/api/v1/protocols/chat/1.0.0/"), 403, "forbidden")
    assert details["required_role"] == "admin"
    assert alpha.client().delete("/api/v1/protocols/chat/1.0.0/").status_code == 200
    assert alpha.admin().delete("/api/v1/protocols/chat/1.1.0/").status_code == 200


def test_deleting_an_unknown_protocol_is_not_found(alpha):
    assert_error(alpha.admin().delete("/api/v1/protocols/chat/1.0.0/"), 404, "not_found")
