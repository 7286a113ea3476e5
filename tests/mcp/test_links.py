"""Two projects' admins link them through the MCP tools, their agents talk across the link, and a revocation
holds at once, on a second server process too."""

import pytest

from tests.mcp.conftest import another_process
from tests.mcp.helpers import call, fails, projects_linked


async def _revoked(broker, link_id: str) -> None:
    async with broker.client(broker.other_project_key) as beta:
        assert (await call(beta, "manage_project_link", link_id=link_id, action="revoke"))["state"] == "revoked"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_two_projects_link_talk_and_revoke(live_broker, mode):
    link_id = await projects_linked(live_broker, rate_limit_per_minute=50)
    async with live_broker.client(live_broker.admin_key) as alpha:
        [link] = (await call(alpha, "list_project_links", state="active"))["links"]
        assert link["rate_limit_per_minute"] == 50 and link["requested_terms"]["rate_limit_per_minute"] == 100

    async with live_broker.client(mode=mode) as front, live_broker.client(live_broker.other_project_key,
                                                                          mode=mode) as platform:
        asker = await call(front, "connect_session", name=f"frontend-{mode}")
        answerer = await call(platform, "connect_session", name=f"platform-{mode}")
        as_asker, as_answerer = {"session_token": asker["session_token"]}, {"session_token": answerer["session_token"]}
        # Before a word is sent: who is there, and what the two sides can exchange over the link.
        listed = await call(front, "list_sessions", project_id="beta")
        assert f"platform-{mode}" in [s["name"] for s in listed["sessions"]]
        assert listed["link_id"] == link_id
        negotiated = await call(front, "negotiate_capabilities", target_session_id=f"beta/platform-{mode}",
                                **as_asker)
        assert (negotiated["compatible"], negotiated["link_id"]) == (True, link_id)
        await call(platform, "register_protocol", name=f"port_question_{mode}", version="1.0.0",
                   schema={"type": "object"})
        [found] = (await call(front, "discover_protocols", name=f"port_question_{mode}", include_linked=True))[
            "protocols"]
        assert (found["project_id"], found["link_id"]) == ("beta", link_id)
        sent = await call(front, "send_message", recipient_id=f"beta/platform-{mode}", payload={"q": "port?"},
                          **as_asker)
        [question] = (await call(platform, "receive_messages", wait_seconds=5, **as_answerer))["messages"]
        assert (question["sender_project_id"], question["sender_id"]) == ("alpha", asker["session_id"])
        await call(platform, "send_message", recipient_id=f"alpha/{question['sender_id']}", payload={"a": 8080},
                   reply_to=sent["message_id"], **as_answerer)
        await call(platform, "ack_messages", message_ids=[sent["message_id"]], **as_answerer)
        [reply] = (await call(front, "receive_messages", wait_seconds=5, **as_asker))["messages"]
        assert (reply["payload"], reply["reply_to"]) == ({"a": 8080}, sent["message_id"])
        receipt = await call(front, "get_message_status", message_id=sent["message_id"], **as_asker)
        assert receipt["state"] == "acked"

        await _revoked(live_broker, link_id)
        refused = await fails(front, "send_message", recipient_id=f"beta/platform-{mode}", payload={}, **as_asker)
        assert refused["error"] == "project_boundary"

    async with live_broker.client(live_broker.admin_key) as alpha:
        [link] = (await call(alpha, "list_project_links", state="revoked"))["links"][:1]
        assert link["traffic"]["sent"] == 2 and link["traffic"]["refused"]["inactive"] == 1
        stats = (await call(alpha, "get_project_info", project_id="alpha", include_stats=True))["stats"]
        assert stats["links"]["by_state"]["revoked"] >= 1


async def test_agent_keys_cannot_request_or_accept_links(live_broker):
    async with live_broker.client() as agent:
        refused = await fails(agent, "request_project_link", target_project_id="beta")
        assert refused["error"] == "forbidden"
        assert (await fails(agent, "accept_project_link", link_id="0" * 32))["error"] == "forbidden"


async def test_asking_does_not_tell_whether_a_project_exists(live_broker):
    async with live_broker.client(live_broker.admin_key) as alpha:
        real = await call(alpha, "request_project_link", target_project_id="beta")
        made_up = await call(alpha, "request_project_link", target_project_id="no-such-team")
        for answer in (real, made_up):
            await call(alpha, "manage_project_link", link_id=answer["link_id"], action="revoke")
    varying = {"link_id", "target_project_id", "other_project_id", "requested_at", "expires_at"}
    assert {k: v for k, v in real.items() if k not in varying} == {k: v for k, v in made_up.items()
                                                                   if k not in varying}


async def test_a_revocation_stops_sends_at_once_on_another_process(live_broker):
    link_id = await projects_linked(live_broker)
    with another_process(live_broker) as second:
        async with second.client() as front, live_broker.client(live_broker.other_project_key) as platform:
            await call(front, "connect_session", name="frontend-2")
            await call(platform, "connect_session", name="platform-2")
            before = await call(front, "send_message", recipient_id="beta/platform-2", payload={"n": 1})
            await _revoked(live_broker, link_id)
            after = await fails(front, "send_message", recipient_id="beta/platform-2", payload={"n": 2})
            assert after["error"] == "project_boundary"
            # Accepted before the revocation: still delivered.
            inbox = await call(platform, "receive_messages", wait_seconds=5)
            assert [m["message_id"] for m in inbox["messages"]] == [before["message_id"]]
