"""Project tools: the same role checks and project boundaries as REST, and keys shown only once."""

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
    new_key = rotated["api_key"]
    assert new_key != live_broker.admin_key and "shown" in rotated["notice"]
    async with live_broker.client(new_key) as again:
        assert (await call(again, "get_project_info", project_id="alpha",
                           include_permissions=True))["permissions"]["can_manage_keys"] is True
    async with live_broker.client() as agent:
        assert (await fails(agent, "rotate_project_keys", project_id="alpha"))["error"] == "forbidden"
