"""The MCP tools take the same arguments as the other faces, and act as the session the same way."""

import pytest

from tests.mcp.helpers import call, fails


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_broadcast_carries_ttl_correlation_id_and_reply_to(live_broker, mode):
    async with live_broker.client(mode=mode) as client:
        caster = await call(client, "connect_session", name=f"caster-{mode}")
        hearer = await call(client, "connect_session", name=f"hearer-{mode}")
        sent = await call(client, "broadcast_message", session_token=caster["session_token"], payload={"n": 1},
                          ttl=600, correlation_id=f"c-{mode}", reply_to="caster", priority="high")
        assert sent["counts"]["queued"] >= 1
        inbox = await call(client, "receive_messages", session_token=hearer["session_token"], auto_ack=True)
        [message] = [m for m in inbox["messages"] if m["broadcast_id"] == sent["broadcast_id"]]
        assert (message["ttl"], message["correlation_id"], message["reply_to"], message["priority"]) == (
            600, f"c-{mode}", "caster", "high")


async def test_an_ack_from_a_disconnected_session_is_refused_and_not_applied(live_broker):
    async with live_broker.client() as recipient, live_broker.client() as sender:
        leaver = await call(recipient, "connect_session", name="acker")
        as_leaver = {"session_token": leaver["session_token"]}
        await call(sender, "connect_session", name="acker-peer")
        sent = await call(sender, "send_message", recipient_id="acker", payload={"n": 1})
        [received] = (await call(recipient, "receive_messages", **as_leaver))["messages"]
        assert received["message_id"] == sent["message_id"]
        await call(recipient, "disconnect_session", **as_leaver)
        refused = await fails(recipient, "ack_messages", message_ids=[sent["message_id"]], **as_leaver)
        assert refused["error"] == "conflict" and "resume" in refused["message"]
        receipt = await call(sender, "get_message_status", message_id=sent["message_id"])
        assert receipt["state"] == "delivered"
