"""File leases over REST: granted whole or refused with the holders, shared beside shared, renewed, released,
ended with their TTL or their session; waiters are told by a lease_freed message; projects never see each other's."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from broker_site.errors import Forbidden
from leases.models import FileLease
from leases.services import lease_end, leases_ended
from projects.auth import CLI, authenticate
from sessions_app.services import session_disconnect


def lease(agent, *paths, **extra) -> dict:
    response = agent.client.post("/api/v1/leases/", {"paths": list(paths), **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def release(agent, *paths, **extra) -> dict:
    body = {"paths": list(paths)} if paths else {}
    response = agent.client.post("/api/v1/leases/release/", {**body, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def listed(tenant, **query) -> list[dict]:
    response = tenant.client().get("/api/v1/leases/", query)
    assert response.status_code == 200, response.content
    return response.json()["leases"]


def freed_news(agent) -> list[dict]:
    return [m["payload"]["lease_freed"] for m in agent.receive() if "lease_freed" in m["payload"]]


def test_an_exclusive_lease_refuses_an_overlapping_path_and_names_the_holder(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    granted = lease(ann, "src/*.py", reason="refactoring the parser", ttl_seconds=600)
    assert granted["granted"] and [g["path"] for g in granted["leases"]] == ["src/*.py"]
    refused = lease(ben, "./src/parser.py")
    assert refused["granted"] is False
    [conflict] = refused["conflicts"]
    assert conflict["path"] == "src/parser.py"
    assert {k: conflict["held_by"][k] for k in ("path", "mode", "session_name", "reason")} == {
        "path": "src/*.py", "mode": "exclusive", "session_name": "ann", "reason": "refactoring the parser"}
    assert lease(ben, "docs/readme.md")["granted"]  # elsewhere is free


def test_a_refused_lease_takes_nothing_and_shared_leases_sit_together(alpha, agent):
    ann, ben, cy = agent(alpha, "ann"), agent(alpha, "ben"), agent(alpha, "cy")
    assert lease(ann, "api/schema.json", mode="shared")["granted"]
    assert lease(ben, "api/schema.json", mode="shared")["granted"]
    refused = lease(cy, "free.txt", "api/schema.json")  # exclusive against two shared holders
    assert not refused["granted"]
    assert {c["held_by"]["session_name"] for c in refused["conflicts"]} == {"ann", "ben"}
    assert [x["path"] for x in listed(alpha, path="free.txt")] == []  # all or nothing


def test_leasing_again_renews_and_a_workspace_is_its_own_space(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    first = lease(ann, "a.py", ttl_seconds=60)["leases"][0]
    again = lease(ann, "a.py", ttl_seconds=3600)["leases"][0]
    assert again["lease_id"] == first["lease_id"] and again["expires_at"] > first["expires_at"]
    assert len(listed(alpha)) == 1
    assert lease(ben, "a.py", workspace="other-checkout")["granted"]
    assert [x["workspace"] for x in listed(alpha, path="a.py")] == ["", "other-checkout"]
    assert [x["session_name"] for x in listed(alpha, workspace="other-checkout")] == ["ben"]


def test_a_release_frees_the_path_and_the_waiter_is_told_at_once(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    lease(ann, "src/*.py", "README.md")
    assert not lease(ben, "src/main.py")["granted"]
    assert release(ann, "src/*.py") == {"released": ["src/*.py"], "count": 1}
    assert freed_news(ben) == [{"paths": ["src/main.py"], "workspace": "", "why": "released"}]
    assert lease(ben, "src/main.py")["granted"]
    assert [x["path"] for x in listed(alpha, path="README.md")] == ["README.md"]  # the rest still held


def test_a_disconnected_sessions_leases_hold_nothing_at_once_and_its_waiters_hear_at_the_sweep(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    lease(ann, "db/schema.sql")
    assert not lease(ben, "db/schema.sql")["granted"]
    session_disconnect(ann.session)
    assert listed(alpha) == []
    assert leases_ended() == 1
    assert freed_news(ben) == [{"paths": ["db/schema.sql"], "workspace": "", "why": "ended"}]
    assert lease(ben, "db/schema.sql")["granted"]


def test_a_lease_ends_with_its_ttl_and_the_waiter_is_told(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    lease(ann, "Makefile", ttl_seconds=5)
    assert not lease(ben, "Makefile")["granted"]
    assert leases_ended(timezone.now()) == 0  # not yet
    assert leases_ended(timezone.now() + timedelta(seconds=6)) == 1
    assert freed_news(ben) == [{"paths": ["Makefile"], "workspace": "", "why": "expired"}]


def test_another_project_neither_sees_nor_meets_these_leases(alpha, beta, agent):
    ann, outsider = agent(alpha, "ann"), agent(beta, "ann")
    lease(ann, "src/*.py")
    assert listed(beta) == []
    assert lease(outsider, "src/main.py")["granted"]  # its own project's space
    response = beta.client(HTTP_X_SESSION_TOKEN=ann.token).post("/api/v1/leases/", {"paths": ["x"]}, format="json")
    assert response.status_code == 401


def test_lease_input_and_the_projects_lease_count_are_bounded(alpha, agent, monkeypatch):
    ann = agent(alpha, "ann")
    too_many = ann.client.post("/api/v1/leases/", {"paths": [f"f{n}" for n in range(51)]}, format="json")
    assert too_many.status_code == 400 and too_many.json()["details"]["field"] == "paths"
    for bad in ({"paths": [""]}, {"paths": ["x" * 301]}, {"paths": ["a"], "ttl_seconds": 86_401},
                {"paths": ["a"], "mode": "mine"}):
        assert ann.client.post("/api/v1/leases/", bad, format="json").status_code == 400, bad
    monkeypatch.setitem(settings.BROKER, "MAX_LEASES_PER_PROJECT", 10)
    assert lease(ann, *[f"f{n}" for n in range(10)])["granted"]
    assert lease(ann, "f0", "f1")["granted"]  # renewals take no more room
    over = ann.client.post("/api/v1/leases/", {"paths": ["f10"]}, format="json")
    assert over.status_code == 409 and over.json()["error"] == "limit_reached"


def test_broker_leases_exits_1_when_another_session_leases_a_path(alpha, agent, capsys):
    ann = agent(alpha, "ann")
    lease(ann, "src/*.py")
    with pytest.raises(SystemExit) as stopped:
        call_command("broker_leases", "alpha", "src/app.py", "notes.txt")
    assert stopped.value.code == 1
    call_command("broker_leases", "alpha", "src/app.py", "--except-session", "ann")  # the holder's own commit
    call_command("broker_leases", "alpha", "notes.txt")
    assert '"session_name": "ann"' in capsys.readouterr().out


def test_a_refused_session_waits_only_for_the_paths_that_were_held(alpha, agent):
    ann, ben, cy = agent(alpha, "ann"), agent(alpha, "ben"), agent(alpha, "cy")
    lease(ann, "held.py")
    assert not lease(ben, "free.py", "held.py")["granted"]
    lease(cy, "free.py")
    release(cy)  # free.py was never what stopped ben: nothing to tell
    assert freed_news(ben) == []
    release(ann)
    assert freed_news(ben) == [{"paths": ["held.py"], "workspace": "", "why": "released"}]


def test_a_listing_can_leave_out_one_sessions_leases_by_name_or_id(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    lease(ann, "src/*.py")
    lease(ben, "docs/*.md")
    assert [x["session_name"] for x in listed(alpha, path="src/app.py", except_session="ann")] == []
    assert [x["session_name"] for x in listed(alpha, path="src/app.py", except_session=str(ann.session.id))] == []
    assert [x["session_name"] for x in listed(alpha, path="src/app.py", except_session="ben")] == ["ann"]
    assert [x["session_name"] for x in listed(alpha, except_session="ann")] == ["ben"]


def test_only_an_operator_ends_someone_elses_lease(alpha, agent):
    ann = agent(alpha, "ann")
    lease(ann, "src/*.py")
    held = FileLease.objects.get()
    with pytest.raises(Forbidden):
        lease_end(held, caller=authenticate(alpha.admin_key))
    lease_end(held, caller=CLI)
    assert listed(alpha) == []


def test_past_the_bound_on_waiters_a_refused_session_is_told_it_will_not_hear(alpha, agent, monkeypatch):
    monkeypatch.setitem(settings.BROKER, "MAX_LEASE_WAITERS_PER_PROJECT", 10)
    ann, ben, cy = agent(alpha, "ann"), agent(alpha, "ben"), agent(alpha, "cy")
    lease(ann, *[f"f{n}" for n in range(10)])
    assert "lease_freed message" in lease(ben, *[f"f{n}" for n in range(10)])["hint"]  # ten waits: the bound
    refused = lease(cy, "f0")
    assert not refused["granted"] and "ask again later" in refused["hint"]
    release(ann)
    assert freed_news(cy) == [] and len(freed_news(ben)) == 1
