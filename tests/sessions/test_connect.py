"""Connecting and resuming sessions: tokens shown once, identity that survives a restart."""

import logging

from projects.keys import digest as token_digest
from projects.models import Project
from sessions_app.models import AgentSession


def connect(client, **body):
    return client.post("/api/v1/sessions/", body, format="json")


def test_connect_returns_id_token_status_and_capabilities(alpha):
    caps = {"supported_protocols": {"chat": ["1.0.0", "1.1.0"]}, "supported_features": ["streaming"]}
    response = connect(alpha.client(), name="frontend-agent", capabilities=caps)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active" and body["name"] == "frontend-agent"
    assert body["capabilities"] == caps
    stored = AgentSession.objects.get(pk=body["session_id"])
    assert stored.token_digest == token_digest(body["session_token"])
    assert body["session_token"] not in str(AgentSession.objects.filter(pk=stored.pk).values().first())


def test_resume_by_name_with_token_keeps_identity_and_shows_no_new_token(alpha):
    first = connect(alpha.client(), name="worker").json()
    again = connect(alpha.client(), name="worker", session_token=first["session_token"])
    assert again.status_code == 200
    body = again.json()
    assert body["session_id"] == first["session_id"] and body["resumed"] is True
    assert "session_token" not in body


def test_resume_after_disconnect_by_id(alpha):
    first = connect(alpha.client(), name="worker").json()
    alpha.client(HTTP_X_SESSION_TOKEN=first["session_token"]).post("/api/v1/sessions/me/disconnect/")
    assert AgentSession.objects.get(pk=first["session_id"]).status == "disconnected"
    resumed = connect(alpha.client(), session_id=first["session_id"], session_token=first["session_token"]).json()
    assert resumed["status"] == "active"


def test_resume_of_live_session_replaces_connection_and_logs_it(alpha, caplog):
    first = connect(alpha.client(), name="worker").json()
    epoch = AgentSession.objects.get(pk=first["session_id"]).connection_epoch
    with caplog.at_level(logging.INFO, logger="broker.sessions"):
        connect(alpha.client(), session_id=first["session_id"], session_token=first["session_token"])
    assert AgentSession.objects.get(pk=first["session_id"]).connection_epoch == epoch + 1
    replaced = [r for r in caplog.records if r.getMessage() == "session_replaced"]
    assert replaced and replaced[0].session_id == first["session_id"]
    assert all(first["session_token"] not in r.getMessage() + str(vars(r)) for r in caplog.records)


def test_resume_with_wrong_token_is_forbidden(alpha):
    first = connect(alpha.client(), name="worker").json()
    response = connect(alpha.client(), session_id=first["session_id"], session_token="wrong-token")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_resume_without_token_is_validation_error(alpha):
    first = connect(alpha.client(), name="worker").json()
    response = connect(alpha.client(), session_id=first["session_id"])
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "session_token"


def test_taken_name_without_token_is_conflict_with_suggestions(alpha):
    connect(alpha.client(), name="worker")
    response = connect(alpha.client(), name="worker")
    assert response.status_code == 409
    assert response.json()["details"]["suggestions"][0] == "worker-2"


def test_unknown_session_id_is_not_found(alpha):
    response = connect(alpha.client(), session_id="6f1c1f4e-5f59-4a5e-9a8e-2b1f0f6f0f6f", session_token="t" * 43)
    assert response.status_code == 404


def test_another_projects_session_cannot_be_resumed(alpha, beta):
    first = connect(beta.client(), name="worker").json()
    response = connect(alpha.client(), session_id=first["session_id"], session_token=first["session_token"])
    assert response.status_code == 404
    assert AgentSession.objects.get(pk=first["session_id"]).project_id == "beta"


def test_bad_connect_input_is_validation_error(alpha):
    client = alpha.client()
    cases = [
        {"name": "x" * 101},
        {"name": "has space"},
        {"name": "6f1c1f4e-5f59-4a5e-9a8e-2b1f0f6f0f6f"},
        {"name": 5},
        {"capabilities": "all"},
        {"capabilities": {"supported_protocols": {"Bad-Name": ["1.0.0"]}}},
        {"capabilities": {"supported_protocols": {"chat": ["1.0"]}}},
        {"capabilities": {"supported_protocols": {"chat": []}}},
        {"capabilities": {"supported_protocols": ["chat"]}},
        {"capabilities": {"supported_features": "streaming"}},
        {"capabilities": {"supported_features": [""]}},
        {"capabilities": {"extra": True}},
        {"colour": "red"},
    ]
    for body in cases:
        response = connect(client, **body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "validation_error", body


def test_max_sessions_limits_live_sessions(alpha):
    Project.objects.filter(pk="alpha").update(max_sessions=2)
    client = alpha.client()
    first = connect(client).json()
    assert connect(client).status_code == 201
    refused = connect(client)
    assert refused.status_code == 409
    assert refused.json()["error"] == "limit_reached"
    client_as_first = alpha.client(HTTP_X_SESSION_TOKEN=first["session_token"])
    client_as_first.post("/api/v1/sessions/me/disconnect/")
    assert connect(client).status_code == 201
