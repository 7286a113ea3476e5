"""Derived status, heartbeats, listing, isolation."""

from datetime import timedelta

from django.utils import timezone

from sessions_app.kept import session_changed
from sessions_app.models import AgentSession


def age(session, seconds: int) -> None:
    """The session last heard from `seconds` ago: time passed, so no process still keeps it as it was."""
    AgentSession.objects.filter(pk=session.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=seconds))
    session_changed(session.pk)


def statuses(client, status_filter="all"):
    sessions = client.get(f"/api/v1/sessions/?status_filter={status_filter}").json()["sessions"]
    return {s["name"]: s["status"] for s in sessions}


def test_status_goes_active_stale_disconnected_with_project_thresholds(alpha):
    alpha.connect("fresh")
    idle, _ = alpha.connect("idle")
    gone, _ = alpha.connect("gone")
    age(idle, 31)
    age(gone, 61)
    assert statuses(alpha.client()) == {"fresh": "active", "idle": "stale", "gone": "disconnected"}
    assert statuses(alpha.client(), "active") == {"fresh": "active"}
    assert statuses(alpha.client(), "stale") == {"idle": "stale"}
    assert statuses(alpha.client(), "live") == {"fresh": "active", "idle": "stale"}


def test_per_project_thresholds_apply(alpha):
    alpha.admin().patch("/api/v1/projects/alpha/", {"stale_after": 5, "disconnect_after": 10}, format="json")
    session, _ = alpha.connect("quick")
    age(session, 6)
    assert statuses(alpha.client()) == {"quick": "stale"}
    age(session, 11)
    assert statuses(alpha.client()) == {"quick": "disconnected"}


def test_heartbeat_makes_a_stale_session_active(alpha):
    session, token = alpha.connect("idle")
    age(session, 40)
    response = alpha.client(HTTP_X_SESSION_TOKEN=token).post("/api/v1/sessions/me/heartbeat/")
    assert response.status_code == 200 and response.json()["status"] == "active"


def test_heartbeat_after_disconnect_brings_the_session_back(alpha):
    _, token = alpha.connect("leaver")
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    client.post("/api/v1/sessions/me/disconnect/")
    assert statuses(alpha.client()) == {"leaver": "disconnected"}
    response = client.post("/api/v1/sessions/me/heartbeat/")
    assert response.status_code == 200 and response.json()["status"] == "active"



def test_session_calls_without_token_say_to_connect_first(alpha):
    response = alpha.client().post("/api/v1/sessions/me/heartbeat/")
    assert response.status_code == 401
    assert "connect" in response.json()["message"]


def test_session_token_of_another_project_is_useless(alpha, beta):
    _, beta_token = beta.connect("spy")
    response = alpha.client(HTTP_X_SESSION_TOKEN=beta_token).post("/api/v1/sessions/me/heartbeat/")
    assert response.status_code == 401


def test_listing_is_scoped_to_the_project(alpha, beta):
    alpha.connect("mine")
    beta.connect("theirs")
    assert statuses(alpha.client()) == {"mine": "active"}
    assert alpha.client().get("/api/v1/sessions/theirs/").status_code == 404


def test_list_without_capabilities_and_unknown_filter(alpha):
    alpha.connect("one", protocols={"chat": ["1.0.0"]})
    sessions = alpha.client().get("/api/v1/sessions/?include_capabilities=false").json()["sessions"]
    assert "capabilities" not in sessions[0]
    bad = alpha.client().get("/api/v1/sessions/?status_filter=sleeping")
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"


def test_session_detail_by_id_and_by_name(alpha):
    session, _ = alpha.connect("named")
    by_id = alpha.client().get(f"/api/v1/sessions/{session.id}/").json()
    by_name = alpha.client().get("/api/v1/sessions/named/").json()
    assert by_id == by_name
    assert alpha.client().get("/api/v1/sessions/6f1c1f4e-5f59-4a5e-9a8e-2b1f0f6f0f6f/").status_code == 404
