"""search_messages through the MCP tool on a live server, on both protocols: an earlier decision found by its
words, ranked with a snippet, and nothing of another session's or project's."""

import pytest

from tests.mcp.helpers import acting_as, call, fails


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_agent_finds_an_earlier_decision_and_nothing_it_was_not_party_to(live_broker, mode):
    async with (live_broker.client(mode=mode) as lead, live_broker.client(mode=mode) as dev,
                live_broker.client(mode=mode) as other, live_broker.client(live_broker.other_project_key,
                                                                           mode=mode) as outsider):
        sessions = {}
        for name, client in (("lead", lead), ("dev", dev), ("other", other), ("outsider", outsider)):
            sessions[name] = await call(client, "connect_session", name=f"search-{name}-{mode}")
        tokens = {name: acting_as(s, mode) for name, s in sessions.items()}
        await call(lead, "send_message", recipient_id=f"search-dev-{mode}", **tokens["lead"],
                   payload={"decision": "Sessions are kept in Redis with a one-hour expiry", "adr": 7})
        await call(lead, "send_message", recipient_id=f"search-other-{mode}", **tokens["lead"],
                   payload={"text": "Redis is down for maintenance tonight"})
        await call(outsider, "send_message", recipient_id=f"search-outsider-{mode}", **tokens["outsider"],
                   payload={"text": "Redis expiry in the other project"})

        found = await call(dev, "search_messages", query="redis expiry", **tokens["dev"])
        assert [r["payload"]["adr"] for r in found["results"]] == [7]
        assert "[Redis]" in found["results"][0]["snippet"] and found["results"][0]["sender_name"] == f"search-lead-{mode}"
        assert (await call(lead, "search_messages", query="redis", **tokens["lead"]))["count"] == 2
        assert (await call(other, "search_messages", query="expiry", **tokens["other"]))["count"] == 0
        refused = await fails(dev, "search_messages", query="!!", **tokens["dev"])
        assert refused["error"] == "validation_error"
