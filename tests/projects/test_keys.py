"""API keys: shown once, stored as digests, roles bounded, rotation with a grace period."""

from datetime import timedelta
from unittest import mock

from django.utils import timezone

from projects.keys import digest, parse_key
from projects.models import ApiKey, AuditEvent
from tests.conftest import api_client


def test_created_key_is_shown_once_and_only_its_digest_is_stored(alpha):
    response = alpha.admin().post("/api/v1/projects/alpha/keys/", {"role": "agent", "label": "ci"}, format="json")
    assert response.status_code == 201
    raw = response.json()["api_key"]
    parsed = parse_key(raw)
    assert parsed is not None and parsed.project_id == "alpha"
    stored = ApiKey.objects.get(project_id="alpha", key_id=parsed.key_id)
    assert stored.digest == digest(raw) and raw not in stored.digest
    listed = alpha.admin().get("/api/v1/projects/alpha/keys/").content.decode()
    assert raw not in listed and stored.digest not in listed
    assert AuditEvent.objects.filter(action="api_key_create", details__key_id=parsed.key_id).exists()


def test_agent_cannot_manage_keys(alpha):
    client = alpha.client()
    assert client.get("/api/v1/projects/alpha/keys/").status_code == 403
    assert client.post("/api/v1/projects/alpha/keys/", {"role": "agent"}, format="json").status_code == 403


def test_admin_cannot_mint_operator_keys(alpha):
    response = alpha.admin().post("/api/v1/projects/alpha/keys/", {"role": "operator"}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.filter(project_id="alpha", role="operator").exists()


def test_bad_key_requests_are_validation_errors(alpha):
    admin = alpha.admin()
    assert admin.post("/api/v1/projects/alpha/keys/", {"role": "root"}, format="json").json()["error"] == \
        "validation_error"
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert admin.post("/api/v1/projects/alpha/keys/", {"expires_at": past}, format="json").status_code == 400
    assert admin.post("/api/v1/projects/alpha/keys/", {"label": "x" * 101}, format="json").status_code == 400
    assert admin.post("/api/v1/projects/alpha/keys/", "[1,2]", content_type="application/json").status_code == 400
    assert admin.post("/api/v1/projects/alpha/keys/", "{not json", content_type="application/json").status_code == 400


def test_rotation_issues_new_key_and_old_one_works_for_the_grace_period(alpha):
    old_id = parse_key(alpha.agent_key).key_id
    response = alpha.admin().post(f"/api/v1/projects/alpha/keys/{old_id}/rotate/", {"grace_period_seconds": 60},
                                  format="json")
    assert response.status_code == 201
    new_raw = response.json()["api_key"]
    assert new_raw != alpha.agent_key
    assert api_client(new_raw).get("/api/v1/sessions/").status_code == 200
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 200
    old = ApiKey.objects.get(project_id="alpha", key_id=old_id)
    assert timedelta(seconds=55) < old.expires_at - timezone.now() <= timedelta(seconds=60)
    with mock.patch("projects.auth.timezone.now", return_value=timezone.now() + timedelta(seconds=61)):
        assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 401
        assert api_client(new_raw).get("/api/v1/sessions/").status_code == 200


def test_rotation_with_zero_grace_ends_the_old_key_at_once(alpha):
    old_id = parse_key(alpha.agent_key).key_id
    alpha.admin().post(f"/api/v1/projects/alpha/keys/{old_id}/rotate/", {"grace_period_seconds": 0}, format="json")
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 401


def test_revoke_takes_effect_at_once(alpha):
    key_id = parse_key(alpha.agent_key).key_id
    response = alpha.admin().post(f"/api/v1/projects/alpha/keys/{key_id}/revoke/")
    assert response.status_code == 200 and response.json()["usable"] is False
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 401


def test_unknown_key_id_is_not_found(alpha):
    response = alpha.admin().post("/api/v1/projects/alpha/keys/nope/revoke/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_admin_of_a_cannot_touch_keys_of_b(alpha, beta):
    key_id = parse_key(beta.agent_key).key_id
    response = alpha.admin().post(f"/api/v1/projects/beta/keys/{key_id}/revoke/")
    assert response.status_code == 403
    assert response.json()["error"] == "project_boundary"
    assert api_client(beta.agent_key).get("/api/v1/sessions/").status_code == 200


def test_rotation_answer_names_the_key_it_replaces_and_when_that_one_ends(alpha):
    old_id = parse_key(alpha.agent_key).key_id
    body = alpha.admin().post(f"/api/v1/projects/alpha/keys/{old_id}/rotate/", {"grace_period_seconds": 60},
                              format="json").json()
    old = ApiKey.objects.get(project_id="alpha", key_id=old_id)
    assert body["replaces"] == old_id and body["old_key_expires_at"] == old.expires_at.isoformat()


def test_operator_rotating_another_projects_keys_without_a_key_id_rotates_every_active_one(alpha, operator_key):
    revoked = parse_key(alpha.admin().post("/api/v1/projects/alpha/keys/", {}, format="json").json()["api_key"])
    alpha.admin().post(f"/api/v1/projects/alpha/keys/{revoked.key_id}/revoke/")
    response = api_client(operator_key).post("/api/v1/projects/alpha/keys/rotate/", {"grace_period_seconds": 60},
                                             format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    replaced = {k["replaces"]: k for k in body["keys"]}
    assert set(replaced) == {parse_key(alpha.admin_key).key_id, parse_key(alpha.agent_key).key_id}
    assert body["count"] == 2 and "shown" in body["notice"]
    for new in body["keys"]:
        assert api_client(new["api_key"]).get("/api/v1/sessions/").status_code == 200
        assert new["role"] == ApiKey.objects.get(project_id="alpha", key_id=new["replaces"]).role
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 200  # grace period
    audited = AuditEvent.objects.filter(action="api_key_rotate", target_project="alpha", outcome="success")
    assert {e.details["key_id"] for e in audited} == set(replaced)
    again = api_client(operator_key).post("/api/v1/projects/alpha/keys/rotate/", {}, format="json").json()
    # Keys already replaced (in their grace period) are not rotated again: only the new ones are.
    assert {k["replaces"] for k in again["keys"]} == {k["key_id"] for k in body["keys"]}


def test_admin_rotating_without_a_key_id_rotates_its_own_key_only(alpha):
    response = alpha.admin().post("/api/v1/projects/alpha/keys/rotate/", {}, format="json")
    assert response.status_code == 201, response.content
    assert [k["replaces"] for k in response.json()["keys"]] == [parse_key(alpha.admin_key).key_id]
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 200
    assert ApiKey.objects.get(project_id="alpha", key_id=parse_key(alpha.agent_key).key_id).replaced_by is None


def test_rotating_without_a_key_id_stays_inside_the_project_and_the_role(alpha, beta):
    assert beta.admin().post("/api/v1/projects/alpha/keys/rotate/", {}, format="json").json()["error"] == \
        "project_boundary"
    assert alpha.client().post("/api/v1/projects/alpha/keys/rotate/", {}, format="json").json()["error"] == \
        "forbidden"
    assert not ApiKey.objects.filter(project_id="alpha", replaced_by__isnull=False).exists()


def test_rotating_every_key_at_once_is_bounded(alpha, operator_key, monkeypatch):
    monkeypatch.setattr("projects.services.MAX_KEYS_ROTATED", 1)
    response = api_client(operator_key).post("/api/v1/projects/alpha/keys/rotate/", {}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "limit_reached"
    assert response.json()["details"] == {"active_keys": 2, "limit": 1}
    assert not ApiKey.objects.filter(project_id="alpha", replaced_by__isnull=False).exists()
