"""Dead letters over MCP: an expired message shows up for the admin, and a replay delivers it."""

import asyncio

from tests.mcp.helpers import call


async def test_expired_message_becomes_a_dead_letter_that_an_admin_replays(live_broker):
    async with live_broker.client() as sender, live_broker.client() as recipient, \
            live_broker.client(live_broker.admin_key) as admin:
        await call(sender, "connect_session", name="dl-sender")
        await call(recipient, "connect_session", name="dl-recipient")
        sent = await call(sender, "send_message", recipient_id="dl-recipient", payload={"late": True}, ttl=1)
        # The server's own sweeper (every 2 s) expires it; nobody received it in time.
        for _ in range(50):
            letters = (await call(admin, "list_dead_letters"))["dead_letters"]
            mine = [d for d in letters if d["message_id"] == sent["message_id"]]
            if mine:
                break
            await asyncio.sleep(0.2)
        assert [d["dead_reason"] for d in mine] == ["expired"]
        replayed = await call(admin, "replay_dead_letter", message_id=sent["message_id"])
        assert replayed["status"] == "queued"
        inbox = await call(recipient, "receive_messages", auto_ack=True)
        assert [(m["message_id"], m["payload"]) for m in inbox["messages"]] == [(sent["message_id"], {"late": True})]
