"""The acting session is kept by the process for a second (sessions_app.kept): not read at every call, and never
kept past a change made here."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broker_site.errors import Conflict, Unauthorized
from projects.auth import CLI
from routing.lifecycle import session_acting, session_connect
from sessions_app.kept import kept_sessions, session_changed
from sessions_app.models import AgentSession
from sessions_app.services import session_disconnect, session_end


@pytest.fixture(autouse=True)
def _nothing_kept():
    kept_sessions.forget_all()
    yield
    kept_sessions.forget_all()


def _session_reads(run) -> int:
    with CaptureQueriesContext(connection) as queries:
        run()
    return sum(1 for q in queries if q["sql"].startswith("SELECT") and "sessions_app_agentsession" in q["sql"])


def test_a_second_call_within_the_second_reads_no_session_row(alpha):
    _, token = alpha.connect("agent")
    assert _session_reads(lambda: session_acting(alpha.project, token=token)) == 1
    assert _session_reads(lambda: session_acting(alpha.project, token=token)) == 0
    bound = session_acting(alpha.project, token=token).pk
    assert _session_reads(lambda: session_acting(alpha.project, bound_to=bound)) == 1
    assert _session_reads(lambda: session_acting(alpha.project, bound_to=bound)) == 0


def test_an_entry_older_than_the_second_is_read_again(alpha, monkeypatch):
    _, token = alpha.connect("agent")
    session_acting(alpha.project, token=token)
    monkeypatch.setattr(kept_sessions, "seconds", 0.000_001)
    assert _session_reads(lambda: session_acting(alpha.project, token=token)) == 1


def test_a_disconnect_here_is_seen_by_the_very_next_call(alpha):
    session, token = alpha.connect("agent")
    session_acting(alpha.project, token=token)
    session_disconnect(session, reason="client")
    with pytest.raises(Conflict):
        session_acting(alpha.project, token=token)


def test_an_operators_end_is_seen_by_the_very_next_call_even_with_the_configured_header(alpha):
    session, token = alpha.connect("agent")
    session_acting(alpha.project, configured_token=token)
    session_end(session, caller=CLI)
    with pytest.raises(Conflict):
        session_acting(alpha.project, configured_token=token)


def test_a_resume_with_new_capabilities_is_seen_at_once(alpha):
    session, token = alpha.connect("agent")
    session_acting(alpha.project, token=token)
    session_connect(alpha.project, session_id=str(session.pk), session_token=token,
                    capabilities={"supported_features": ["review"]})
    assert session_acting(alpha.project, token=token).supported_features == ["review"]


def test_a_deleted_session_is_not_kept(alpha):
    session, token = alpha.connect("agent")
    session_acting(alpha.project, token=token)
    AgentSession.objects.filter(pk=session.pk).delete()
    with pytest.raises(Unauthorized):
        session_acting(alpha.project, token=token)


def test_a_token_finds_nothing_in_another_project(alpha, beta):
    _, token = alpha.connect("agent")
    session_acting(alpha.project, token=token)
    with pytest.raises(Unauthorized):
        session_acting(beta.project, token=token)


def test_each_call_gets_its_own_copy_with_the_callers_project(alpha):
    _, token = alpha.connect("agent")
    first = session_acting(alpha.project, token=token)
    first.supported_features.append("mutated")  # a call's own business...
    first.name = "renamed"
    second = session_acting(alpha.project, token=token)
    assert second.name == "agent" and second.supported_features == []  # ...never another call's
    assert second.project is alpha.project


def test_a_written_heartbeat_is_kept_too_so_it_is_not_written_at_every_call(alpha):
    session, token = alpha.connect("agent")
    # Last heard from 10 s ago: past a quarter of stale_after (30 s), so the next call writes a heartbeat.
    AgentSession.objects.filter(pk=session.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=10))
    session_changed(session.pk)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(4):
            session_acting(alpha.project, token=token)
    writes = [q for q in queries if q["sql"].startswith("UPDATE") and "sessions_app_agentsession" in q["sql"]]
    assert len(writes) == 1
