"""A second project's key sees and changes nothing of the first's, on every REST operation."""

from projects.keys import parse_key
from projects.models import ApiKey, Project
from protocols.models import Protocol
from sessions_app.models import AgentSession


def snapshot() -> dict:
    return {
        "project": Project.objects.filter(pk="alpha").values().get(),
        "keys": list(ApiKey.objects.filter(project_id="alpha").values().order_by("pk")),
        "sessions": list(AgentSession.objects.filter(project_id="alpha").values().order_by("pk")),
        "protocols": list(Protocol.objects.filter(project_id="alpha").values("pk", "name", "version")),
    }


def test_beta_can_neither_see_nor_change_alpha(alpha, beta):
    alpha.admin().post("/api/v1/protocols/", {"name": "secret_plan", "version": "1.0.0", "schema": {}},
                       format="json")
    worker, worker_token = alpha.connect("worker", protocols={"secret_plan": ["1.0.0"]})
    alpha.connect("other")
    alpha_key_id = parse_key(alpha.agent_key).key_id
    before = snapshot()

    for client in (beta.client(), beta.admin()):
        # Reads: nothing of alpha's shows up.
        assert client.get("/api/v1/sessions/?status_filter=all").json()["sessions"] == []
        assert client.get(f"/api/v1/sessions/{worker.id}/").status_code == 404
        assert client.get("/api/v1/sessions/worker/").status_code == 404
        assert client.get("/api/v1/protocols/?include_shared=true").json()["protocols"] == []
        assert client.get("/api/v1/protocols/secret_plan/1.0.0/").status_code == 404
        assert client.post("/api/v1/negotiate/", {"session_id": "worker", "target_session_id": "other"},
                           format="json").status_code == 404
        assert client.post("/api/v1/negotiate/matrix/", {"session_ids": ["worker", "other"]},
                           format="json").status_code == 404
        for path in ["/api/v1/projects/alpha/", "/api/v1/projects/alpha/keys/", "/api/v1/projects/alpha/audit/"]:
            assert client.get(path).json()["error"] == "project_boundary"
        assert "alpha" not in str(client.get("/api/v1/projects/").json())
        # Writes: refused, and nothing changes.
        assert client.delete("/api/v1/protocols/secret_plan/1.0.0/").status_code == 404
        assert client.patch("/api/v1/projects/alpha/", {"max_sessions": 1}, format="json").status_code == 403
        assert client.post("/api/v1/projects/alpha/keys/", {"role": "agent"}, format="json").status_code == 403
        assert client.post(f"/api/v1/projects/alpha/keys/{alpha_key_id}/rotate/").status_code == 403
        assert client.post("/api/v1/projects/alpha/keys/rotate/").status_code == 403
        assert client.post(f"/api/v1/projects/alpha/keys/{alpha_key_id}/revoke/").status_code == 403
        assert client.post("/api/v1/sessions/", {"session_id": str(worker.id), "session_token": worker_token},
                           format="json").status_code == 404
        as_worker = {"HTTP_X_SESSION_TOKEN": worker_token}
        assert client.post("/api/v1/sessions/me/heartbeat/", **as_worker).status_code == 401
        assert client.post("/api/v1/sessions/me/disconnect/", **as_worker).status_code == 401
        assert client.get("/api/v1/sessions/", HTTP_X_PROJECT_ID="alpha").status_code == 403

    assert snapshot() == before
