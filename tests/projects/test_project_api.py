"""Projects over REST: creation by operators, visibility, settings, deactivation."""

from projects.models import AuditEvent, Project
from tests.conftest import api_client


def test_operator_creates_project_and_sees_first_admin_key_once(operator_key, db):
    response = api_client(operator_key).post("/api/v1/projects/", {"project_id": "gamma", "name": "Gamma"},
                                             format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    raw = body["admin_key"]["api_key"]
    assert raw.startswith("gamma_")
    listing = api_client(raw).get("/api/v1/projects/gamma/keys/").json()
    assert all("api_key" not in key and "digest" not in key for key in listing["keys"])
    assert listing["count"] == 1


def test_admin_key_cannot_create_project(alpha):
    response = alpha.admin().post("/api/v1/projects/", {"project_id": "zeta", "name": "Zeta"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert not Project.objects.filter(pk="zeta").exists()


def test_duplicate_project_id_is_conflict_with_suggestions(operator_key, alpha):
    response = api_client(operator_key).post("/api/v1/projects/", {"project_id": "alpha", "name": "Other"},
                                             format="json")
    assert response.status_code == 409
    assert response.json()["details"]["suggestions"]


def test_invalid_project_ids_are_validation_errors(operator_key, db):
    client = api_client(operator_key)
    for bad in ["Alpha", "a", "under_score", "-lead", "trail-", "x" * 65, 42]:
        response = client.post("/api/v1/projects/", {"project_id": bad, "name": f"N{bad}"}, format="json")
        assert response.status_code == 400, bad
        assert response.json()["error"] == "validation_error"
        assert "project_id" in response.json()["details"]["fields"]


def test_missing_and_overlong_fields_are_validation_errors(operator_key, db):
    client = api_client(operator_key)
    missing = client.post("/api/v1/projects/", {"project_id": "ok-id"}, format="json").json()
    assert "name" in missing["details"]["fields"]
    long_desc = client.post("/api/v1/projects/", {"project_id": "ok-id", "name": "N", "description": "d" * 501},
                            format="json").json()
    assert "description" in long_desc["details"]["fields"]
    unknown = client.post("/api/v1/projects/", {"project_id": "ok-id", "name": "N", "colour": "red"},
                          format="json").json()
    assert "colour" in unknown["details"]["fields"]


def test_non_operator_lists_only_own_and_discoverable_projects(alpha, make_tenant):
    make_tenant("hidden")
    make_tenant("public", discoverable=True)
    ids = {p["project_id"] for p in alpha.client().get("/api/v1/projects/").json()["projects"]}
    assert ids == {"alpha", "public"}


def test_listing_never_shows_keys(operator_key, alpha):
    body = api_client(operator_key).get("/api/v1/projects/?include_stats=true").content.decode()
    assert alpha.admin_key not in body and "digest" not in body


def test_other_projects_info_is_a_project_boundary_and_audited(alpha, beta):
    response = alpha.client().get("/api/v1/projects/beta/")
    assert response.status_code == 403
    assert response.json()["error"] == "project_boundary"
    assert AuditEvent.objects.filter(action="project_boundary", source_project="alpha",
                                     target_project="beta").exists()


def test_audit_view_hides_the_other_project_of_a_knock_but_names_operators(alpha, beta, operator_key):
    alpha.client().get("/api/v1/projects/beta/")
    beta.client().get("/api/v1/projects/alpha/")
    operator = api_client(operator_key, HTTP_X_PROJECT_ID="alpha")
    assert operator.patch("/api/v1/projects/alpha/", {"stale_after": 40}, format="json").status_code == 200
    events = alpha.admin().get("/api/v1/projects/alpha/audit/").json()["events"]
    body = str(events)
    assert "beta" not in body
    knocks = [e for e in events if e["action"] == "project_boundary"]
    assert {(e.get("actor"), e.get("target")) for e in knocks} == {(None, "another project"), ("another project", None)}
    operator_id = "_".join(operator_key.split("_")[:2])
    assert any(e["actor_key_id"] == operator_id and e["source_project"] == "ops" for e in events)


def test_audit_view_hides_the_tenant_an_operator_acted_in(alpha, beta, operator_key):
    """An operator acting in beta sends at alpha's session: alpha sees the operator's key, never beta."""
    target, _ = alpha.connect("target")
    operator = api_client(operator_key, HTTP_X_PROJECT_ID="beta")
    connected = operator.post("/api/v1/sessions/", {"name": "ops-agent"}, format="json").json()
    sent = api_client(operator_key, HTTP_X_PROJECT_ID="beta", HTTP_X_SESSION_TOKEN=connected["session_token"]).post(
        "/api/v1/messages/", {"recipient_id": str(target.id), "payload": {"text": "hi"}}, format="json")
    assert sent.status_code in (403, 404)
    body = str(alpha.admin().get("/api/v1/projects/alpha/audit/").json()["events"])
    assert "cross_project_send" in body
    assert "beta" not in body and connected["session_id"] not in body
    assert "_".join(operator_key.split("_")[:2]) in body


def test_project_info_includes_stats_config_and_permissions(alpha):
    alpha.connect("one")
    body = alpha.client().get("/api/v1/projects/alpha/?include_config=true&include_permissions=true").json()
    assert body["stats"]["sessions"]["active"] == 1
    assert body["config"]["max_queue_size"] == 100
    assert body["permissions"]["role"] == "agent"
    assert body["permissions"]["can_manage_keys"] is False


def test_admin_changes_settings_but_agent_cannot(alpha):
    agent = alpha.client().patch("/api/v1/projects/alpha/", {"max_queue_size": 5}, format="json")
    assert agent.status_code == 403
    admin = alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 5}, format="json")
    assert admin.status_code == 200
    assert admin.json()["config"]["max_queue_size"] == 5


def test_bad_settings_are_validation_errors(alpha):
    admin = alpha.admin()
    assert admin.patch("/api/v1/projects/alpha/", {"max_queue_size": 0}, format="json").status_code == 400
    assert admin.patch("/api/v1/projects/alpha/", {"max_queue_size": "many"}, format="json").status_code == 400
    inverted = admin.patch("/api/v1/projects/alpha/", {"stale_after": 90, "disconnect_after": 60}, format="json")
    assert inverted.status_code == 400
    assert "disconnect_after" in inverted.json()["details"]["fields"]


def test_deactivated_project_refuses_requests_and_disconnects_sessions(operator_key, alpha):
    session, _ = alpha.connect("worker")
    response = api_client(operator_key).post("/api/v1/projects/alpha/deactivate/")
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.status == "disconnected"
    refused = alpha.client().get("/api/v1/sessions/")
    assert refused.status_code == 403
    assert "inactive" in refused.json()["message"]
    # History is kept: the session row is still there for operators.
    assert api_client(operator_key, HTTP_X_PROJECT_ID="alpha").get(
        "/api/v1/projects/alpha/?include_stats=true").json()["stats"]["sessions"]["disconnected"] == 1
