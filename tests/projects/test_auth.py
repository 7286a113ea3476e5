"""Authentication: one generic 401 for every bad credential, audited; project boundaries are 403."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broker_site.errors import Unauthorized
from projects.auth import authenticate, authenticate_kept
from projects.models import AuditEvent
from projects.services import api_key_create, api_key_revoke
from tests.conftest import api_client

GENERIC = {"error": "unauthorized", "message": "Missing or invalid API key.", "details": {}}


@pytest.mark.parametrize("header", [
    {},
    {"HTTP_AUTHORIZATION": "Bearer "},
    {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
    {"HTTP_AUTHORIZATION": "Bearer not-a-key"},
    {"HTTP_AUTHORIZATION": "Bearer alpha_abc"},
    {"HTTP_AUTHORIZATION": "Bearer Alpha_abc_" + "x" * 40},
    {"HTTP_AUTHORIZATION": "Bearer alpha_ABC_" + "x" * 40},
    {"HTTP_AUTHORIZATION": "Bearer alpha_abc_short"},
    {"HTTP_AUTHORIZATION": "Bearer alpha_abc_" + "x" * 40 + "_extra_underscores"},
    {"HTTP_AUTHORIZATION": "Bearer " + "a" * 5000},
    {"HTTP_X_API_KEY": "alpha_abc_" + "x" * 40},
])
def test_malformed_or_unknown_keys_get_one_generic_401(alpha, header):
    response = api_client(None, **header).get("/api/v1/sessions/")
    assert response.status_code == 401
    assert response.json() == GENERIC
    assert response["WWW-Authenticate"] == "Bearer"


def test_key_with_right_ids_but_wrong_secret_is_401_and_same_message(alpha):
    project_id, key_id, secret = alpha.agent_key.split("_", 2)
    forged = f"{project_id}_{key_id}_{'Z' * len(secret)}"
    response = api_client(forged).get("/api/v1/sessions/")
    assert response.status_code == 401
    assert response.json() == GENERIC


def test_unknown_project_and_wrong_key_look_the_same(alpha):
    nowhere = api_client("nowhere_abc_" + "x" * 40).get("/api/v1/sessions/")
    wrong = api_client("alpha_abc_" + "x" * 40).get("/api/v1/sessions/")
    assert nowhere.status_code == wrong.status_code == 401
    assert nowhere.json() == wrong.json()


def test_every_auth_failure_is_audited_without_the_key(alpha):
    bad = "alpha_abc_" + "s" * 40
    api_client(bad).get("/api/v1/sessions/")
    event = AuditEvent.objects.get(action="auth_failed")
    assert event.outcome == "denied"
    assert event.details["reason"] == "unknown_key"
    assert "s" * 40 not in str(event.details)


def test_x_api_key_header_is_accepted(alpha):
    response = api_client(None, HTTP_X_API_KEY=alpha.agent_key).get("/api/v1/sessions/")
    assert response.status_code == 200


def test_expired_key_is_refused(alpha):
    _, raw = api_key_create(alpha.project, role="agent", expires_at=timezone.now() + timedelta(seconds=60))
    assert api_client(raw).get("/api/v1/sessions/").status_code == 200
    # A minute on: the key row this process read a moment ago (projects.credentials) expires all the same.
    later = timezone.now() + timedelta(seconds=61)
    with mock.patch("projects.auth.timezone.now", return_value=later):
        response = api_client(raw).get("/api/v1/sessions/")
    assert response.status_code == 401
    assert AuditEvent.objects.filter(action="auth_failed", details__reason="expired_key").exists()


def test_revoked_key_is_refused(alpha):
    key, raw = api_key_create(alpha.project, role="agent")
    api_key_revoke(key)
    response = api_client(raw).get("/api/v1/sessions/")
    assert response.status_code == 401
    assert response.json() == GENERIC


def test_key_of_project_a_naming_project_b_is_403_and_audited(alpha, beta):
    response = alpha.client(HTTP_X_PROJECT_ID="beta").get("/api/v1/sessions/")
    assert response.status_code == 403
    assert response.json()["error"] == "project_boundary"
    event = AuditEvent.objects.get(action="project_boundary")
    assert (event.source_project, event.target_project, event.outcome) == ("alpha", "beta", "denied")


def test_matching_x_project_id_is_fine(alpha):
    assert alpha.client(HTTP_X_PROJECT_ID="alpha").get("/api/v1/sessions/").status_code == 200


def test_operator_acts_in_another_project_with_x_project_id(operator_key, alpha):
    alpha.connect("worker")
    response = api_client(operator_key, HTTP_X_PROJECT_ID="alpha").get("/api/v1/sessions/")
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["sessions"]] == ["worker"]
    assert AuditEvent.objects.filter(action="operator_act_as", target_project="alpha").exists()


def test_rate_limit_refuses_past_the_projects_limit(alpha):
    alpha.admin().patch("/api/v1/projects/alpha/", {"rate_limit_per_minute": 3}, format="json")
    client = alpha.client()
    codes = [client.get("/api/v1/sessions/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/api/v1/sessions/")
    assert refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # Another key of the same project has its own window.
    assert alpha.admin().get("/api/v1/sessions/").status_code == 200


def test_a_key_read_a_moment_ago_is_checked_without_the_database_until_it_changes(alpha):
    key, raw = api_key_create(alpha.project, role="agent")
    assert authenticate(raw).key.pk == key.pk  # read, and kept (projects.credentials)
    with CaptureQueriesContext(connection) as queries:
        again = authenticate(raw)
        kept = authenticate_kept(raw)
    assert queries.captured_queries == []
    assert again.key.pk == kept.key.pk == key.pk
    assert authenticate_kept(raw[:-1] + ("x" if raw[-1] != "x" else "y")) is None  # the secret is still compared
    assert again.project is not kept.project  # each caller holds its own copy of the rows
    api_key_revoke(key)
    assert authenticate_kept(raw) is None
    with pytest.raises(Unauthorized):
        authenticate(raw)
