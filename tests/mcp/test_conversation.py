"""Two agents talk through the tools, on the session-based and on the current (stateless) protocol."""

import asyncio

import pytest

from tests.mcp.helpers import call, fails

TASK_SCHEMA = {"type": "object", "properties": {"task": {"type": "string"}, "priority": {"type": "integer"}},
               "required": ["task"], "additionalProperties": False}


async def test_two_agents_converse_over_session_bound_connections(live_broker):
    caps = {"supported_protocols": {"code_review": ["1.0.0"]}, "supported_features": ["review"]}
    async with live_broker.client() as alice, live_broker.client() as bob:
        a = await call(alice, "connect_session", name="alice", capabilities=caps)
        b = await call(bob, "connect_session", name="bob", capabilities=caps)
        assert a["bound"] and b["bound"] and a["session_token"] and a["status"] == "active"

        registered = await call(alice, "register_protocol", name="code_review", version="1.0.0", schema=TASK_SCHEMA,
                                tags=["review"])
        assert registered["version"] == "1.0.0" and "schema" not in registered
        await call(alice, "register_protocol", name="code_review", version="2.0.0", schema=TASK_SCHEMA)
        found = await call(bob, "discover_protocols", name="code_review", version_range=">=1.0.0,<2.0.0")
        assert [p["version"] for p in found["protocols"]] == ["1.0.0"]
        assert found["protocols"][0]["schema"] == TASK_SCHEMA

        negotiated = await call(alice, "negotiate_capabilities", target_session_id="bob",
                                required_protocols=[{"name": "code_review", "version_range": ">=1.0.0"}])
        assert negotiated["compatible"] and negotiated["supported_protocols"] == {"code_review": "1.0.0"}

        # Bob waits first; Alice's send wakes him.
        waiting = asyncio.create_task(call(bob, "receive_messages", wait_seconds=10))
        await asyncio.sleep(0.3)
        sent = await call(alice, "send_message", recipient_id="bob", payload={"task": "review #1"},
                          protocol_name="code_review", protocol_version="1.0.0", correlation_id="c-1")
        assert sent["status"] == "queued" and sent["recipient_id"] == b["session_id"]
        inbox = await asyncio.wait_for(waiting, 15)
        assert inbox["count"] == 1
        message = inbox["messages"][0]
        assert message["payload"] == {"task": "review #1"}
        assert message["sender_id"] == a["session_id"] and message["correlation_id"] == "c-1"

        acked = await call(bob, "ack_messages", message_ids=[sent["message_id"]])
        assert acked["acked"] == [sent["message_id"]]
        receipt = await call(alice, "get_message_status", message_id=sent["message_id"])
        assert receipt["state"] == "acked" and receipt["acked_at"]

        listed = await call(alice, "list_sessions")
        assert {s["name"] for s in listed["sessions"]} >= {"alice", "bob"}
        assert (await call(alice, "heartbeat"))["session_id"] == a["session_id"]
        assert (await call(bob, "disconnect_session"))["status"] == "disconnected"
        after = await fails(bob, "heartbeat")
        assert after["details"]["next_step"] == "connect_session"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_session_token_argument_acts_as_the_session(live_broker, mode):
    async with live_broker.client(mode=mode) as client:
        carol = await call(client, "connect_session", name=f"carol-{mode}")
        dave = await call(client, "connect_session", name=f"dave-{mode}")
        assert carol["bound"] is (mode == "legacy")
        if mode == "auto":
            assert "session_token" in carol["hint"]
        sent = await call(client, "send_message", session_token=carol["session_token"], recipient_id=f"dave-{mode}",
                          payload={"hello": "dave"})
        inbox = await call(client, "receive_messages", session_token=dave["session_token"], auto_ack=True)
        assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]
        receipt = await call(client, "get_message_status", session_token=carol["session_token"],
                             message_id=sent["message_id"])
        assert receipt["state"] == "acked"


async def test_queued_mail_waits_for_a_resume_with_the_token(live_broker):
    async with live_broker.client() as sender, live_broker.client() as first:
        await call(sender, "connect_session", name="erin")
        frank = await call(first, "connect_session", name="frank")
        await call(first, "disconnect_session")
        sent = await call(sender, "send_message", recipient_id="frank", payload={"while": "away"})
    async with live_broker.client() as again:
        resumed = await call(again, "connect_session", session_id="frank", session_token=frank["session_token"])
        assert resumed["resumed"] and "session_token" not in resumed
        inbox = await call(again, "receive_messages")
        assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]


async def test_two_agents_converse_on_the_stateless_protocol(live_broker):
    caps = {"supported_protocols": {"stateless_task": ["1.0.0"]}}
    async with live_broker.client(mode="auto") as alice, live_broker.client(mode="auto") as bob:
        a = await call(alice, "connect_session", name="alice-stateless", capabilities=caps)
        b = await call(bob, "connect_session", name="bob-stateless", capabilities=caps)
        as_a, as_b = {"session_token": a["session_token"]}, {"session_token": b["session_token"]}
        await call(alice, "register_protocol", name="stateless_task", version="1.0.0", schema=TASK_SCHEMA)
        found = await call(bob, "discover_protocols", name="stateless_task", version_range=">=1.0.0,<2.0.0")
        assert [p["version"] for p in found["protocols"]] == ["1.0.0"]
        negotiated = await call(alice, "negotiate_capabilities", target_session_id="bob-stateless", **as_a)
        assert negotiated["supported_protocols"] == {"stateless_task": "1.0.0"}
        waiting = asyncio.create_task(call(bob, "receive_messages", wait_seconds=10, **as_b))
        await asyncio.sleep(0.3)
        sent = await call(alice, "send_message", recipient_id="bob-stateless", payload={"task": "t"},
                          protocol_name="stateless_task", **as_a)
        inbox = await asyncio.wait_for(waiting, 15)
        assert [m["message_id"] for m in inbox["messages"]] == [sent["message_id"]]
        assert (await call(bob, "ack_messages", message_ids=[sent["message_id"]], **as_b))["acked"]
        receipt = await call(alice, "get_message_status", message_id=sent["message_id"], **as_a)
        assert receipt["state"] == "acked"
        without = await fails(alice, "send_message", recipient_id="bob-stateless", payload={"task": "t"})
        assert without["details"]["next_step"] == "connect_session"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_negotiation_may_require_an_exact_version(live_broker, mode):
    async with live_broker.client(mode=mode) as client:
        mine = await call(client, "connect_session", name=f"sender-{mode}",
                          capabilities={"supported_protocols": {"file_transfer": ["2.0.0", "2.1.0"]}})
        await call(client, "connect_session", name=f"taker-{mode}",
                   capabilities={"supported_protocols": {"file_transfer": ["2.1.0"]}})
        as_mine = {"session_token": mine["session_token"]}  # the taker is bound now, on a legacy connection
        negotiated = await call(client, "negotiate_capabilities", target_session_id=f"taker-{mode}",
                                required_protocols=[{"name": "file_transfer", "version": "2.1.0"}], **as_mine)
        assert negotiated["compatible"] and negotiated["required_protocols"][0]["version"] == "2.1.0"
        refused = await fails(client, "negotiate_capabilities", target_session_id=f"taker-{mode}",
                              required_protocols=[{"name": "file_transfer", "version": "2.1"}], **as_mine)
        assert refused["error"] == "validation_error"
        assert refused["details"]["field"] == "required_protocols[0].version"
