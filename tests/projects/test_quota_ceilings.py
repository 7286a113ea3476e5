"""Against a live broker: a project's admins cannot raise its quotas; operators raise them up to the broker's ceilings.

Found in a probe: `PATCH /api/v1/projects/team-b/` with `rate_limit_per_minute: 1000000,
max_sessions: 100000, max_queue_size: 1000000` and team-b's own admin key answered 200. And a
broadcast stores one copy per recipient, so one request could write its payload a hundred times.
"""

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devtools.live import manage
from tests.live import Live, live_broker

CEILINGS = {"rate_limit_per_minute": 20_000, "max_sessions": 500, "max_queue_size": 5_000}
RAISE_EVERYTHING = {"rate_limit_per_minute": 1_000_000, "max_sessions": 100_000, "max_queue_size": 1_000_000}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    settings = {f"BROKER_CEILING_{name.upper()}": str(value) for name, value in CEILINGS.items()}
    with live_broker(tmp_path_factory.mktemp("quotas"), BROKER_MAX_BROADCAST_BYTES="10000", **settings) as broker:
        yield broker


def _config(live: Live, project_id: str) -> dict:
    with live.rest(live.operator) as operator:
        return operator.get(f"/projects/{project_id}/", params={"include_config": "true"}).json()["config"]


def test_a_project_admin_cannot_raise_its_own_quotas(live):
    with live.rest(live.beta_admin) as admin:
        answer = admin.patch("/projects/team-b/", json=RAISE_EVERYTHING)
    assert answer.status_code == 403, answer.text  # before the fix: 200
    error = answer.json()
    assert error["error"] == "forbidden"
    assert set(error["details"]["fields"]) == set(RAISE_EVERYTHING)
    assert error["details"]["limits"] == {"rate_limit_per_minute": 6000, "max_sessions": 100, "max_queue_size": 100}
    assert {name: _config(live, "team-b")[name] for name in RAISE_EVERYTHING} == error["details"]["limits"]


def test_a_project_admin_may_lower_a_quota_and_raise_it_again_up_to_its_grant(live):
    with live.rest(live.beta_admin) as admin:
        assert admin.patch("/projects/team-b/", json={"max_sessions": 10}).status_code == 200
        assert admin.patch("/projects/team-b/", json={"max_sessions": 100}).status_code == 200
        assert admin.patch("/projects/team-b/", json={"max_sessions": 101}).json()["error"] == "forbidden"


def test_an_operator_raises_quotas_up_to_the_ceiling_and_the_admin_then_has_that_much(live):
    with live.rest(live.operator) as operator, live.rest(live.beta_admin) as admin:
        over = operator.patch("/projects/team-b/", json=RAISE_EVERYTHING)
        assert over.status_code == 400, over.text
        assert over.json()["error"] == "validation_error"
        assert over.json()["details"]["limits"] == CEILINGS
        assert "BROKER_CEILING_MAX_SESSIONS" in over.json()["details"]["fields"]["max_sessions"][0]

        assert operator.patch("/projects/team-b/", json={"max_sessions": 400}).status_code == 200
        assert admin.patch("/projects/team-b/", json={"max_sessions": 50}).status_code == 200
        assert admin.patch("/projects/team-b/", json={"max_sessions": 400}).status_code == 200
        refused = admin.patch("/projects/team-b/", json={"max_sessions": 401}).json()
        assert refused["error"] == "forbidden" and refused["details"]["limits"] == {"max_sessions": 400}


async def test_mcp_project_creation_stays_under_the_ceiling(live):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {live.operator}"}, timeout=30)
    async with http, Client(streamable_http_client(f"{live.url}/mcp", http_client=http), mode="legacy") as client:
        refused = await client.call_tool("create_project", {"project_id": "gamma", "name": "Gamma",
                                                            "config": {"max_queue_size": 5_001}})
        created = await client.call_tool("create_project", {"project_id": "gamma", "name": "Gamma",
                                                            "config": {"max_queue_size": 5_000}})
    assert refused.is_error and refused.structured_content["error"] == "validation_error"
    assert refused.structured_content["details"]["limits"] == {"max_queue_size": 5_000}
    assert not created.is_error, created.content[0].text
    assert _config(live, "gamma")["max_queue_size"] == 5_000


def test_the_command_line_sets_quotas_up_to_the_ceiling(live):
    with pytest.raises(RuntimeError, match="ceiling"):
        manage(live.server.env, "broker_project", "configure", "--id", "alpha", "--set", "rate_limit_per_minute=20001")
    manage(live.server.env, "broker_project", "configure", "--id", "alpha", "--set", "rate_limit_per_minute=20000")
    assert _config(live, "alpha")["rate_limit_per_minute"] == 20_000


def test_a_broadcast_that_would_store_too_many_bytes_is_refused_before_anything_is_stored(live):
    with live.rest(live.alpha_agent) as rest:
        tokens = [rest.post("/sessions/", json={"name": f"listener-{n}"}).json()["session_token"] for n in range(3)]
        sender = rest.post("/sessions/", json={"name": "announcer"}).json()["session_token"]
        refused = rest.post("/messages/broadcast/", headers={"X-Session-Token": sender},
                            json={"payload": {"blob": "x" * 4_000}})
        fits = rest.post("/messages/broadcast/", headers={"X-Session-Token": sender},
                         json={"payload": {"blob": "x" * 3_000}})
        inbox = rest.post("/messages/receive/", headers={"X-Session-Token": tokens[0]},
                          json={"wait_seconds": 0, "max": 10}).json()["messages"]
    assert refused.status_code == 413, refused.text  # before the fix: 201, three copies stored
    assert refused.json()["error"] == "payload_too_large"
    assert refused.json()["details"]["copies"] == 3 and refused.json()["details"]["limit"] == 10_000
    assert fits.status_code == 201 and fits.json()["counts"]["queued"] == 3
    assert [len(m["payload"]["blob"]) for m in inbox] == [3_000]
