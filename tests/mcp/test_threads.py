"""Threads through the MCP tools on a live server: a conversation across three sessions, and a broadcast answered
in its thread; get_thread shows each session only its part, in order."""

from tests.mcp.helpers import call


async def test_a_thread_across_three_sessions_and_a_broadcast_answered_in_its_thread(live_broker):
    async with (live_broker.client() as ann, live_broker.client() as ben, live_broker.client() as cy):
        for client, name in ((ann, "thread-ann"), (ben, "thread-ben"), (cy, "thread-cy")):
            await call(client, "connect_session", name=name)
        asked = await call(ann, "send_message", recipient_id="thread-ben", payload={"q": "who owns auth?"})
        [question] = (await call(ben, "receive_messages", wait_seconds=5, auto_ack=True))["messages"]
        thread_id = question["thread_id"]
        assert thread_id == asked["message_id"]
        await call(ben, "send_message", recipient_id="thread-ann", payload={"a": "ask cy"},
                   reply_to=question["message_id"])
        await call(ann, "send_message", recipient_id="thread-cy", payload={"q": "you own auth?"}, thread_id=thread_id)
        [to_cy] = (await call(cy, "receive_messages", wait_seconds=5, auto_ack=True))["messages"]
        await call(cy, "send_message", recipient_id="thread-ann", payload={"a": "yes"}, reply_to=to_cy["message_id"])

        mine = await call(ann, "get_thread", thread_id=thread_id)
        assert [m["payload"] for m in mine["messages"]] == [
            {"q": "who owns auth?"}, {"a": "ask cy"}, {"q": "you own auth?"}, {"a": "yes"}]
        assert [m["payload"] for m in (await call(cy, "get_thread", thread_id=thread_id))["messages"]] == [
            {"q": "you own auth?"}, {"a": "yes"}]

        everyone = await call(ann, "broadcast_message", payload={"q": "standup?"})
        [copy] = [m for m in (await call(ben, "receive_messages", wait_seconds=5, auto_ack=True))["messages"]
                  if m["payload"] == {"q": "standup?"}]
        assert copy["thread_id"] == everyone["broadcast_id"]
        await call(ben, "send_message", recipient_id="thread-ann", payload={"a": "10:00"}, reply_to=copy["message_id"])
        seen = await call(ann, "get_thread", thread_id=everyone["broadcast_id"])
        assert [m["payload"] for m in seen["messages"]] == [{"q": "standup?"}, {"a": "10:00"}]  # the broadcast once
