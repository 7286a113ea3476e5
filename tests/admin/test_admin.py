"""The operators' dashboard: project creation shows its key once, key actions go through services."""

import re

import pytest

from broker_site.errors import QueueFull
from projects.keys import parse_key
from projects.models import ApiKey, AuditEvent, Project
from routing.contracts import SendIn
from routing.models import Message
from routing.sending import message_send
from sessions_app.models import AgentSession
from tests.conftest import api_client

KEY = re.compile(r"<code>([a-z][a-z0-9-]*[a-z0-9]_[a-z0-9-]{1,32}_[A-Za-z0-9]{40})</code>")

PROJECT_FORM = {
    "id": "team-x", "name": "Team X", "description": "", "max_sessions": 100, "max_protocols": 500,
    "max_queue_size": 100, "stale_after": 30, "disconnect_after": 60, "ack_timeout": 30, "max_attempts": 5,
    "rate_limit_per_minute": 6000, "max_payload_bytes": 10485760, "protocol_registration": "any",
    "link_visibility": "capabilities",
}


def test_admin_creates_project_and_shows_its_admin_key_once(admin_client):
    response = admin_client.post("/admin/projects/project/add/", PROJECT_FORM)
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    raw = KEY.findall(response.content.decode())[0]
    assert api_client(raw).get("/api/v1/projects/team-x/keys/").status_code == 200
    assert Project.objects.get(pk="team-x").name == "Team X"
    assert AuditEvent.objects.filter(action="project_create", target_project="team-x").exists()
    page = admin_client.get("/admin/projects/apikey/").content.decode()
    assert raw not in page


def test_admin_rejects_bad_project_id(admin_client):
    response = admin_client.post("/admin/projects/project/add/", {**PROJECT_FORM, "id": "Bad_Id"})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not Project.objects.filter(pk="Bad_Id").exists()


def test_admin_key_page_shows_digest_prefix_only(admin_client, alpha):
    key = ApiKey.objects.get(project_id="alpha", key_id=parse_key(alpha.agent_key).key_id)
    page = admin_client.get(f"/admin/projects/apikey/{key.pk}/change/").content.decode()
    assert key.digest[:12] in page and key.digest not in page and alpha.agent_key not in page


def test_admin_creates_key_and_shows_it_once(admin_client, alpha):
    response = admin_client.post("/admin/projects/apikey/add/", {"project": "alpha", "role": "agent", "label": "ci"})
    raw = KEY.findall(response.content.decode())[0]
    assert api_client(raw).get("/api/v1/sessions/").status_code == 200


def test_admin_rotate_and_revoke_actions(admin_client, alpha):
    key = ApiKey.objects.get(project_id="alpha", key_id=parse_key(alpha.agent_key).key_id)
    rotated = admin_client.post("/admin/projects/apikey/", {"action": "rotate", "_selected_action": [key.pk]})
    new_raw = KEY.findall(rotated.content.decode())[0]
    assert api_client(new_raw).get("/api/v1/sessions/").status_code == 200
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 200  # grace period
    admin_client.post("/admin/projects/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 401


def test_admin_deactivates_project_and_disconnects_sessions(admin_client, alpha):
    session, _ = alpha.connect("worker")
    admin_client.post("/admin/projects/project/", {"action": "deactivate", "_selected_action": ["alpha"]})
    assert Project.objects.get(pk="alpha").status == "inactive"
    assert AgentSession.objects.get(pk=session.pk).status == "disconnected"


def test_admin_disconnects_a_session(admin_client, alpha):
    session, _ = alpha.connect("worker")
    admin_client.post("/admin/sessions_app/agentsession/", {"action": "disconnect", "_selected_action": [session.pk]})
    assert AgentSession.objects.get(pk=session.pk).disconnect_reason == "operator"


def test_every_admin_page_renders(admin_client, alpha):
    alpha.connect("worker")
    for url in ["/admin/", "/admin/projects/project/", "/admin/projects/project/alpha/change/",
                "/admin/projects/apikey/", "/admin/projects/auditevent/", "/admin/sessions_app/agentsession/",
                "/admin/projects/projectlink/", "/admin/sessions_app/sessionblock/", "/admin/leases/filelease/"]:
        assert admin_client.get(url).status_code == 200, url


def test_admin_lists_messages_and_replays_a_dead_letter(admin_client, alpha):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 1}, format="json")
    alpha.project.refresh_from_db()
    sender, _ = alpha.connect("a")
    alpha.connect("b")
    message_send(sender, SendIn(recipient_id="b", payload={"n": 1}))
    with pytest.raises(QueueFull):
        message_send(sender, SendIn(recipient_id="b", payload={"n": 2}))
    dead = Message.objects.get(state="dead")
    assert admin_client.get("/admin/routing/message/?state=dead").status_code == 200
    assert admin_client.get(f"/admin/routing/message/{dead.pk}/change/").status_code == 200
    Message.objects.filter(state="queued").update(state="acked")
    admin_client.post("/admin/routing/message/", {"action": "replay", "_selected_action": [dead.pk]})
    assert Message.objects.get(pk=dead.pk).state == "queued"
