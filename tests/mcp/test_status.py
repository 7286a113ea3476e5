"""set_status through the MCP tool, on both protocol versions, and through REST: one service, one answer."""

import pytest

from tests.mcp.helpers import call, fails


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_set_status_is_shown_in_list_sessions(live_broker, mode):
    async with live_broker.client(mode=mode) as client:
        me = await call(client, "connect_session", name=f"status-{mode}")
        token = {} if mode == "legacy" else {"session_token": me["session_token"]}
        said = await call(client, "set_status", summary="waiting on review", state="waiting", **token)
        assert said["activity"]["state"] == "waiting" and said["activity"]["at"]
        listed = await call(client, "list_sessions")
        [mine] = [s for s in listed["sessions"] if s["session_id"] == me["session_id"]]
        assert mine["activity"] == said["activity"]


async def test_set_status_before_connecting_says_to_connect_first(live_broker):
    async with live_broker.client() as client:
        refused = await fails(client, "set_status", summary="hello")
    assert refused["details"]["next_step"] == "connect_session"
