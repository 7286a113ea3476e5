"""Project tools: the same role checks and project boundaries as REST, and keys shown only once."""

import httpx
import pytest

from tests.mcp.helpers import call, fails


async def test_only_operators_create_and_deactivate_projects(live_broker):
    async with live_broker.client() as agent, live_broker.client(live_broker.operator_key) as operator:
        refused = await fails(agent, "create_project", project_id="gamma", name="Gamma")
        assert refused["error"] == "forbidden" and refused["details"]["required_role"] == "operator"
        created = await call(operator, "create_project", project_id="gamma", name="Gamma",
                             config={"max_sessions": 5})
        assert created["admin_key"]["api_key"].startswith("gamma_")
        assert (await fails(agent, "deactivate_project", project_id="alpha"))["error"] == "forbidden"
        assert (await call(operator, "deactivate_project", project_id="gamma"))["status"] == "inactive"
        listed = await call(operator, "list_projects", include_inactive=True)
        assert "gamma" in {p["project_id"] for p in listed["projects"]}


async def test_listings_never_show_keys_and_stop_at_the_project_boundary(live_broker):
    async with live_broker.client() as agent:
        listed = await call(agent, "list_projects", include_stats=True)
        assert [p["project_id"] for p in listed["projects"]] == ["alpha"]
        assert "api_key" not in str(listed) and live_broker.agent_key not in str(listed)
        info = await call(agent, "get_project_info", project_id="alpha")
        assert info["project_id"] == "alpha"
        outside = await fails(agent, "get_project_info", project_id="beta")
        assert outside["error"] == "project_boundary"


async def test_admin_rotates_a_key_and_the_new_key_works(live_broker):
    async with live_broker.client(live_broker.admin_key) as admin:
        rotated = await call(admin, "rotate_project_keys", project_id="alpha", grace_period_seconds=60)
    [new] = rotated["keys"]
    new_key = new["api_key"]
    assert new_key != live_broker.admin_key and "shown" in rotated["notice"]
    async with live_broker.client(new_key) as again:
        assert (await call(again, "get_project_info", project_id="alpha",
                           include_permissions=True))["permissions"]["can_manage_keys"] is True
    async with live_broker.client() as agent:
        assert (await fails(agent, "rotate_project_keys", project_id="alpha"))["error"] == "forbidden"


def _rest(broker, key: str) -> httpx.Client:
    return httpx.Client(base_url=broker.process.http_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _works(broker, key: str) -> bool:
    with _rest(broker, key) as rest:
        return rest.get("/api/v1/sessions/").status_code == 200


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_operator_without_key_id_rotates_every_active_key_of_another_project(live_broker, mode):
    project_id = f"rot-{mode}"
    async with live_broker.client(live_broker.operator_key, mode=mode) as operator:
        admin_key = (await call(operator, "create_project", project_id=project_id, name=f"Rot {mode}"))["admin_key"]
        with _rest(live_broker, admin_key["api_key"]) as rest:
            agent = rest.post(f"/api/v1/projects/{project_id}/keys/", json={"role": "agent"}).json()
            revoked = rest.post(f"/api/v1/projects/{project_id}/keys/", json={"role": "agent"}).json()
            rest.post(f"/api/v1/projects/{project_id}/keys/{revoked['key_id']}/revoke/")
        rotated = await call(operator, "rotate_project_keys", project_id=project_id, grace_period_seconds=120)

    assert rotated["count"] == 2 and "shown" in rotated["notice"]
    by_old = {k["replaces"]: k for k in rotated["keys"]}
    assert set(by_old) == {admin_key["key_id"], agent["key_id"]}  # not the revoked one
    assert {by_old[admin_key["key_id"]]["role"], by_old[agent["key_id"]]["role"]} == {"admin", "agent"}
    for new in rotated["keys"]:
        assert new["api_key"].startswith(f"{project_id}_{new['key_id']}_") and new["old_key_expires_at"]
        assert _works(live_broker, new["api_key"])
    assert _works(live_broker, agent["api_key"])  # the old keys still work for the grace period
    with _rest(live_broker, admin_key["api_key"]) as rest:
        events = rest.get(f"/api/v1/projects/{project_id}/audit/").json()["events"]
    audited = {e["details"]["key_id"] for e in events if e["action"] == "api_key_rotate" and e["outcome"] == "success"}
    assert audited == set(by_old)


async def test_admin_without_key_id_rotates_its_own_key_and_not_another_projects(live_broker):
    async with live_broker.client(live_broker.operator_key) as operator:
        first = (await call(operator, "create_project", project_id="rot-own", name="Rot own"))["admin_key"]
    with _rest(live_broker, first["api_key"]) as rest:
        rest.post("/api/v1/projects/rot-own/keys/", json={"role": "agent"}).raise_for_status()
    async with live_broker.client(first["api_key"]) as admin:
        rotated = await call(admin, "rotate_project_keys", project_id="rot-own", grace_period_seconds=120)
        assert [k["replaces"] for k in rotated["keys"]] == [first["key_id"]] and rotated["count"] == 1
        refused = await fails(admin, "rotate_project_keys", project_id="alpha")
        assert refused["error"] == "project_boundary"
