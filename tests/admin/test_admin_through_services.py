"""Every change made in the dashboard goes through the service that owns its rule.

Deleting a protocol is refused while a live session declares it; editing a key is audited;
deleting a session or a project tells the peers it left and leaves an audit event; messages
are deleted only as dead letters, through the purge; a lease released there tells its waiters.
"""

import pytest

from broker_site.errors import QueueFull
from leases.contracts import LeaseIn
from leases.models import FileLease
from leases.services import files_lease
from projects.keys import parse_key
from projects.models import ApiKey, AuditEvent, Project
from protocols.models import Protocol
from routing.contracts import SendIn
from routing.hub import project_group
from routing.models import Message
from routing.sending import message_send
from sessions_app.models import AgentSession
from sessions_app.services import session_disconnect
from tests.protocols.conftest import register
from tests.routing.test_events import Listener


def test_admin_refuses_to_delete_a_protocol_a_live_session_declares(admin_client, alpha):
    register(alpha.client())
    session, _ = alpha.connect("frontend", protocols={"chat": ["1.0.0"]})
    protocol = Protocol.objects.get(project=alpha.project, name="chat")
    page = admin_client.get(f"/admin/protocols/protocol/{protocol.pk}/delete/")
    assert page.status_code == 200 and "frontend" in page.content.decode()
    admin_client.post(f"/admin/protocols/protocol/{protocol.pk}/delete/", {"post": "yes"})
    admin_client.post("/admin/protocols/protocol/", {"action": "delete_selected", "_selected_action": [protocol.pk],
                                                     "post": "yes"})
    assert Protocol.objects.filter(pk=protocol.pk).exists()

    session_disconnect(session)
    admin_client.post(f"/admin/protocols/protocol/{protocol.pk}/delete/", {"post": "yes"})
    assert not Protocol.objects.filter(pk=protocol.pk).exists()


def test_editing_a_key_in_the_admin_is_audited(admin_client, alpha):
    key = ApiKey.objects.get(project_id="alpha", key_id=parse_key(alpha.agent_key).key_id)
    response = admin_client.post(f"/admin/projects/apikey/{key.pk}/change/", {"label": "renamed", "expires_at": ""})
    assert response.status_code == 302, response.content[:500]
    key.refresh_from_db()
    assert key.label == "renamed"
    event = AuditEvent.objects.get(action="api_key_update", target_project="alpha")
    assert event.actor_key_id == "admin:admin" and event.details == {"key_id": key.key_id, "fields": ["label"]}


@pytest.mark.django_db(transaction=True)
def test_deleting_a_session_in_the_admin_tells_its_peers_and_is_audited(admin_client, make_tenant):
    alpha = make_tenant("alpha")
    doomed, _ = alpha.connect("doomed")
    alpha.connect("peer")
    listener = Listener(project_group("alpha"))
    admin_client.post(f"/admin/sessions_app/agentsession/{doomed.pk}/delete/", {"post": "yes"})
    assert not AgentSession.objects.filter(pk=doomed.pk).exists()
    assert [(e["event"], e["name"]) for e in listener.events()] == [("session_left", "doomed")]
    assert AuditEvent.objects.filter(action="session_delete", target_project="alpha",
                                     details__session_id=str(doomed.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_project_in_the_admin_ends_its_sessions_and_is_audited(admin_client, make_tenant):
    alpha = make_tenant("alpha")
    alpha.connect("worker")
    listener = Listener(project_group("alpha"))
    response = admin_client.post("/admin/projects/project/alpha/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Project.objects.filter(pk="alpha").exists()
    assert [(e["event"], e["name"]) for e in listener.events()] == [("session_left", "worker")]
    assert AuditEvent.objects.filter(action="project_delete", target_project="alpha",
                                     actor_key_id="admin:admin").exists()


def test_the_admin_deletes_dead_letters_through_the_purge_and_nothing_else(admin_client, alpha):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 1}, format="json")
    alpha.project.refresh_from_db()
    sender, _ = alpha.connect("a")
    alpha.connect("b")
    queued = message_send(sender, SendIn(recipient_id="b", payload={"n": 1})).message
    with pytest.raises(QueueFull):
        message_send(sender, SendIn(recipient_id="b", payload={"n": 2}))
    dead = Message.objects.get(state="dead")
    assert admin_client.post(f"/admin/routing/message/{queued.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post("/admin/routing/message/", {"action": "delete_selected", "_selected_action": [queued.pk],
                                                  "post": "yes"})
    assert Message.objects.filter(pk=queued.pk).exists()
    admin_client.post(f"/admin/routing/message/{dead.pk}/delete/", {"post": "yes"})
    assert not Message.objects.filter(pk=dead.pk).exists()
    assert AuditEvent.objects.filter(action="dead_letters_purge", target_project="alpha",
                                     actor_key_id="admin:admin").exists()


def test_delete_pages_say_what_goes_with_the_object_without_walking_every_row(admin_client, alpha, agent):
    sender, doomed = agent(alpha, "sender"), agent(alpha, "doomed")
    for n in range(3):
        sender.send("doomed", {"n": n})
    page = admin_client.get("/admin/projects/project/alpha/delete/").content.decode()
    assert "Project alpha with 2 sessions" in page and "disconnected first" in page
    page = admin_client.get(f"/admin/sessions_app/agentsession/{doomed.session.pk}/delete/").content.decode()
    assert "its mailbox (3 messages)" in page
    response = admin_client.post("/admin/sessions_app/agentsession/", {
        "action": "delete_selected", "_selected_action": [doomed.session.pk]})
    assert response.status_code == 200 and "doomed" in response.content.decode()  # the confirmation, not a 403


def test_admin_actions_are_audited_as_the_signed_in_user(admin_client, make_tenant):
    beta = make_tenant("beta")
    key = ApiKey.objects.get(project_id="beta", key_id=parse_key(beta.agent_key).key_id)
    admin_client.post("/admin/projects/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    admin_client.post("/admin/projects/project/", {"action": "deactivate", "_selected_action": ["beta"]})
    actions = set(AuditEvent.objects.filter(target_project="beta", actor_key_id="admin:admin")
                  .values_list("action", flat=True))
    assert {"api_key_revoke", "project_deactivate"} <= actions


def test_releasing_a_lease_in_the_admin_tells_the_waiter_and_is_audited(admin_client, alpha, agent):
    holder, waiter = agent(alpha, "holder"), agent(alpha, "waiter")
    files_lease(holder.session, LeaseIn(paths=["src/*.py"], reason="refactor"))
    assert not files_lease(waiter.session, LeaseIn(paths=["src/app.py"]))["granted"]
    lease = FileLease.objects.get()
    page = admin_client.get("/admin/leases/filelease/")
    assert page.status_code == 200 and b"src/*.py" in page.content and b"refactor" in page.content
    admin_client.post(f"/admin/leases/filelease/{lease.pk}/delete/", {"post": "yes"})
    assert not FileLease.objects.exists()
    [news] = waiter.receive()
    assert news["payload"]["lease_freed"]["paths"] == ["src/app.py"]
    assert AuditEvent.objects.filter(action="lease_release", target_project="alpha",
                                     details__path="src/*.py").exists()
