"""Provisioned sessions (`broker_session create`): a team's configured identity survives any time off.

The sweeper deletes sessions disconnected longer than BROKER_SESSION_RETENTION_SECONDS, with
their mail; a provisioned one is kept however long its agent is away (its queue is still bounded
by max_queue_size), and the purge's read still runs on its index.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broker_site.errors import Conflict, Forbidden, ValidationFailed
from projects.auth import CLI
from projects.models import AuditEvent
from routing.models import Message
from sessions_app.models import AgentSession
from sessions_app.services import session_disconnect, session_provision, sessions_purge

WEEK = timedelta(days=7)


def away_for(session, duration: timedelta) -> None:
    """Time passes for `session` only: it was disconnected `duration` ago."""
    AgentSession.objects.filter(pk=session.pk).update(disconnected_at=timezone.now() - duration)


def test_the_purge_leaves_provisioned_sessions_and_their_mail(alpha, agent):
    frontend = session_provision(alpha.project, name="frontend", caller=CLI).session
    adhoc, _ = alpha.connect("adhoc")
    session_disconnect(adhoc)
    sender = agent(alpha, "sender")
    waiting = sender.send("frontend").json()["message_id"]
    away_for(frontend, 2 * WEEK)
    away_for(adhoc, 2 * WEEK)
    assert sessions_purge(timezone.now() - WEEK) == 1
    assert set(AgentSession.objects.values_list("name", flat=True)) == {"frontend", "sender"}
    assert Message.objects.get(pk=waiting).state == "queued"


def test_a_provisioned_session_that_was_used_and_left_is_still_kept(alpha):
    made = session_provision(alpha.project, name="frontend", caller=CLI)
    client = alpha.client(HTTP_X_SESSION_TOKEN=made.token)
    assert client.post("/api/v1/sessions/me/heartbeat/").status_code == 200
    assert client.post("/api/v1/sessions/me/disconnect/").status_code == 200
    away_for(made.session, 30 * WEEK)
    assert sessions_purge(timezone.now() - WEEK) == 0
    assert AgentSession.objects.filter(pk=made.session.pk).exists()


def test_the_purge_reads_its_index(alpha):
    session_provision(alpha.project, name="frontend", caller=CLI)
    with CaptureQueriesContext(connection) as queries:
        sessions_purge(timezone.now())
    [read] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A handful of rows: the planner would scan the table whatever the indexes. Forbid the scan to
            # see whether the index can answer the purge's read at all (it cannot if its condition drifts).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {read}")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {read}")
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "agentsession_purge_due" in plan, plan


def test_a_provisioned_sessions_queue_is_bounded_like_any_other(alpha, agent):
    alpha.admin().patch("/api/v1/projects/alpha/", {"max_queue_size": 2}, format="json")
    session_provision(alpha.project, name="frontend", caller=CLI)
    sender = agent(alpha, "sender")
    assert [sender.send("frontend").status_code for _ in range(2)] == [201, 201]
    refused = sender.send("frontend")
    assert refused.status_code == 429 and refused.json()["error"] == "queue_full", refused.content


def test_provisioning_is_audited_as_its_actor(alpha):
    made = session_provision(alpha.project, name="frontend", caller=CLI)
    event = AuditEvent.objects.get(action="session_provision")
    assert (event.actor_key_id, event.target_project, event.outcome) == ("cli", "alpha", "success")
    assert event.details == {"session_id": str(made.session.pk), "name": "frontend"}
    assert made.token not in str(event.details)


def test_provisioning_refuses_a_taken_name_a_bad_name_and_an_inactive_project(alpha):
    alpha.connect("taken")
    with pytest.raises(Conflict):
        session_provision(alpha.project, name="taken", caller=CLI)
    with pytest.raises(ValidationFailed):
        session_provision(alpha.project, name="no spaces", caller=CLI)
    alpha.project.status = "inactive"
    alpha.project.save()
    with pytest.raises(Forbidden):
        session_provision(alpha.project, name="late", caller=CLI)
    assert not AgentSession.objects.filter(name__in=["no spaces", "late"]).exists()
