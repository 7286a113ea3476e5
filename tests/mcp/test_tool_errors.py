"""Failures are tool results with isError and the SPEC shape; the server keeps serving after each."""

import json

from tests.mcp.helpers import call, fails

ORDER_SCHEMA = {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}, "required": ["qty"]}


async def test_session_tools_before_connect_session_say_to_connect_first(live_broker):
    async with live_broker.client() as client:
        for tool, arguments in (("send_message", {"recipient_id": "x", "payload": {}}), ("receive_messages", {}),
                                ("heartbeat", {})):
            error = await fails(client, tool, **arguments)
            assert error["error"] == "unauthorized"
            assert "call connect_session first" in error["message"]
            assert error["details"] == {"next_step": "connect_session"}
        assert (await call(client, "list_sessions"))["status_filter"] == "live"


async def test_unknown_arguments_are_a_validation_error_naming_them(live_broker):
    async with live_broker.client() as client:
        result = await client.call_tool("list_sessions", {"status": "all", "verbose": True})
        assert result.is_error
        body = json.loads(result.content[0].text)
        assert body == result.structured_content
        assert body["error"] == "validation_error"
        assert body["details"]["fields"] == {"status": ["unknown field"], "verbose": ["unknown field"]}
        wrong_type = await fails(client, "receive_messages", wait_seconds=600)
        assert "wait_seconds" in wrong_type["details"]["fields"]
        assert (await call(client, "list_sessions"))["count"] >= 0


async def test_a_payload_failing_the_protocol_schema_is_a_clear_tool_error(live_broker):
    async with live_broker.client() as client:
        await call(client, "connect_session", name="orders-in",
                   capabilities={"supported_protocols": {"order": ["1.0.0"]}})
        await call(client, "connect_session", name="orders-out",
                   capabilities={"supported_protocols": {"order": ["1.0.0"]}})
        await call(client, "register_protocol", name="order", version="1.0.0", schema=ORDER_SCHEMA)
        error = await fails(client, "send_message", recipient_id="orders-in", payload={"qty": 0},
                            protocol_name="order", protocol_version="1.0.0")
        assert error["error"] == "validation_error"
        assert error["message"] and error["details"]
        duplicate = await fails(client, "register_protocol", name="order", version="1.0.0", schema=ORDER_SCHEMA)
        assert duplicate["error"] == "conflict" and duplicate["details"]["suggested_versions"]
        ok = await call(client, "send_message", recipient_id="orders-in", payload={"qty": 2}, protocol_name="order")
        assert ok["status"] == "queued"


async def test_another_projects_key_sees_nothing_of_this_project(live_broker):
    async with live_broker.client() as mine, live_broker.client(live_broker.other_project_key) as theirs:
        await call(mine, "connect_session", name="private-agent")
        assert "private-agent" not in {s["name"] for s in (await call(theirs, "list_sessions"))["sessions"]}
        await call(theirs, "connect_session", name="outsider")
        error = await fails(theirs, "send_message", recipient_id="private-agent", payload={"hi": 1})
        assert error["error"] == "not_found"


async def test_dead_letter_tools_need_an_admin_key(live_broker):
    async with live_broker.client() as agent, live_broker.client(live_broker.admin_key) as admin:
        refused = await fails(agent, "list_dead_letters")
        assert refused["error"] == "forbidden" and refused["details"]["required_role"] == "admin"
        missing = await fails(admin, "replay_dead_letter", message_id="00000000-0000-0000-0000-000000000000")
        assert missing["error"] == "not_found"
