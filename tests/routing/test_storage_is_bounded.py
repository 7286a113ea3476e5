"""Against a live broker: nothing a client does makes storage grow without bound.

Found in a probe: five refused 200 KB sends stored 1 MB of dead letters; sessions and audit
events were never deleted; and 150 requests with made-up keys named `team-b_...` filled
team-b's 100-row audit view with forged `auth_failed` rows.
"""

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.live import Live, live_broker

BIG = {"blob": "x" * 200_000}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    with live_broker(tmp_path_factory.mktemp("storage"), BROKER_MAX_REFUSED_DEAD_LETTERS="3",
                     BROKER_SESSION_RETENTION_SECONDS="3600", BROKER_AUDIT_RETENTION_SECONDS="3600") as broker:
        yield broker


def _session(rest: httpx.Client, name: str) -> tuple[str, str]:
    answer = rest.post("/sessions/", json={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()["session_id"], answer.json()["session_token"]


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.2)


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def test_refused_sends_store_no_large_payload_and_a_bounded_number_of_dead_letters(live):
    with live.rest(live.alpha_agent) as rest, live.rest(live.alpha_admin) as admin:
        assert admin.patch("/projects/alpha/", json={"max_queue_size": 1}).status_code == 200
        _, sender = _session(rest, "full-sender")
        _session(rest, "full-inbox")
        send = {"recipient_id": "full-inbox"}
        assert rest.post("/messages/", headers={"X-Session-Token": sender},
                         json={**send, "payload": {"n": 0}}).status_code == 201
        big = [rest.post("/messages/", headers={"X-Session-Token": sender}, json={**send, "payload": BIG})
               for _ in range(5)]
        small = [rest.post("/messages/", headers={"X-Session-Token": sender}, json={**send, "payload": {"n": n}})
                 for n in range(1, 6)]
        letters = admin.get("/dead-letters/").json()["dead_letters"]

    assert {r.json()["error"] for r in big + small} == {"queue_full"}
    assert [r.json()["details"]["kept_as_dead_letter"] for r in big] == [False] * 5
    assert [r.json()["details"]["kept_as_dead_letter"] for r in small] == [True, True, True, False, False]
    assert len(letters) == 3
    stored = live.sql("SELECT COUNT(*) FROM routing_message WHERE state = 'dead'")[0][0]
    assert stored == 3  # before the fix: ten rows, a megabyte of them refused 200 KB payloads


def test_a_session_disconnected_past_the_retention_is_deleted_with_its_mail(live):
    with live.rest(live.alpha_agent) as rest, live.rest(live.alpha_admin) as admin:
        assert admin.patch("/projects/alpha/", json={"max_queue_size": 100}).status_code == 200
        gone_id, gone = _session(rest, "long-gone")
        _, sender = _session(rest, "still-here")
        assert rest.post("/messages/", headers={"X-Session-Token": sender},
                         json={"recipient_id": "long-gone", "payload": {"for": "nobody"}}).status_code == 201
        assert rest.post("/sessions/me/disconnect/", headers={"X-Session-Token": gone}).status_code == 200
        # Eight days pass for this session only.
        live.sql("UPDATE sessions_app_agentsession SET disconnected_at = %s WHERE id = %s",
                 (_days_ago(8), uuid.UUID(gone_id)))
        _wait_for(lambda: rest.get(f"/sessions/{gone_id}/").status_code == 404, "the purge")
        assert rest.get("/sessions/still-here/").status_code == 200
        assert rest.post("/sessions/", json={"name": "long-gone"}).status_code == 201  # its name is free again
    assert live.sql("SELECT COUNT(*) FROM routing_message WHERE recipient_id = %s", (uuid.UUID(gone_id),))[0][0] == 0


def test_audit_events_past_the_retention_are_deleted(live):
    with live.rest(live.alpha_admin) as admin:
        assert admin.post("/projects/alpha/keys/", json={"role": "agent", "label": "old"}).status_code == 201
        live.sql("UPDATE projects_auditevent SET created_at = %s WHERE action = 'api_key_create'", (_days_ago(2),))
        assert admin.post("/projects/alpha/keys/", json={"role": "agent", "label": "new"}).status_code == 201

        def created_keys() -> int:
            events = admin.get("/projects/alpha/audit/").json()["events"]
            return len([e for e in events if e["action"] == "api_key_create"])

        _wait_for(lambda: created_keys() == 1, "the audit purge")


def test_made_up_keys_cannot_fill_a_project_audit_trail(live):
    forged = [httpx.get(f"{live.url}/api/v1/sessions/", headers={"Authorization": f"Bearer team-b_abcd{n}_{'x' * 40}"})
              for n in range(150)]
    assert {r.status_code for r in forged} == {401}
    with live.rest(live.beta_admin) as admin:
        events = admin.get("/projects/team-b/audit/").json()["events"]
    assert [e for e in events if e["action"] == "auth_failed"] == []  # before the fix: 100 forged rows
    rows = live.sql("SELECT target_project, count FROM projects_auditevent WHERE action = 'auth_failed'")
    assert {target for target, _ in rows} == {""}
    assert len(rows) <= 3 and sum(count for _, count in rows) >= 150  # one row a minute per address, counted


def test_a_real_but_revoked_key_is_audited_in_its_own_project(live):
    with live.rest(live.beta_admin) as admin:
        created = admin.post("/projects/team-b/keys/", json={"role": "agent"}).json()
        assert admin.post(f"/projects/team-b/keys/{created['key_id']}/revoke/").status_code == 200
        for _ in range(3):
            assert httpx.get(f"{live.url}/api/v1/sessions/",
                             headers={"Authorization": f"Bearer {created['api_key']}"}).status_code == 401
        events = [e for e in admin.get("/projects/team-b/audit/").json()["events"] if e["action"] == "auth_failed"]
    assert [(e["details"]["reason"], e["count"]) for e in events] == [("revoked_key", 3)]
    assert events[0]["actor_key_id"] == f"team-b_{created['key_id']}"
