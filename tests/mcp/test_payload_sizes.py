"""Large payloads over MCP: 5 MB arrives intact; past the 10 MB limit is a clear tool error."""

from tests.mcp.helpers import call, fails

FIVE_MB = 5 * 1024 * 1024


async def test_a_five_megabyte_payload_is_delivered_intact(live_broker):
    async with live_broker.client() as sender, live_broker.client() as recipient:
        await call(sender, "connect_session", name="big-sender")
        await call(recipient, "connect_session", name="big-recipient")
        payload = {"blob": "".join(chr(97 + i % 26) for i in range(FIVE_MB)), "unicode": "ünïcødé ✓"}
        sent = await call(sender, "send_message", recipient_id="big-recipient", payload=payload)
        inbox = await call(recipient, "receive_messages", auto_ack=True)
        assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]
        assert inbox["messages"][0]["payload"] == payload


async def test_an_eleven_megabyte_payload_is_refused_and_the_server_keeps_serving(live_broker):
    async with live_broker.client() as sender, live_broker.client() as recipient:
        await call(sender, "connect_session", name="huge-sender")
        await call(recipient, "connect_session", name="huge-recipient")
        error = await fails(sender, "send_message", recipient_id="huge-recipient", payload={"blob": "x" * 11_000_000})
        assert error["error"] == "payload_too_large"
        assert error["details"]["limit"] == 10 * 1024 * 1024
        assert (await call(recipient, "receive_messages"))["count"] == 0
        assert (await call(sender, "heartbeat"))["status"] == "active"
