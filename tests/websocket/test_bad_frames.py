"""Bad input over the socket gets an error frame; the connection and everyone else carry on."""

import json

import pytest
import websockets


async def test_malformed_frames_get_error_frames_and_the_connection_stays_up(live_broker):
    async with live_broker.connect() as client:
        await client.connection.send("{not json")
        assert (await client.next("error"))["details"]["field"] == "frame"
        await client.send({"type": "teleport"})
        assert (await client.next("error"))["details"]["field"] == "type"
        await client.send(["a", "list"])
        assert (await client.next("error"))["error"] == "validation_error"
        unknown = await client.request({"type": "send", "recipient_id": "x", "payload": {}, "colour": "red"})
        assert (unknown["type"], unknown["details"]["field"]) == ("error", "colour")
        no_recipient = await client.request({"type": "send", "payload": {}})
        assert no_recipient["details"]["field"] == "recipient_id"
        not_text = await client.request({"type": "send", "recipient_id": {"id": 1}, "payload": {}})
        assert not_text["details"]["field"] == "recipient_id"
        not_object = await client.request({"type": "send", "recipient_id": client.session_id, "payload": [1, 2]})
        assert not_object["error"] == "validation_error"
        bad_ack = await client.request({"type": "ack", "message_ids": ["not-an-id"]})
        assert bad_ack["error"] == "validation_error"
        again = await client.request({"type": "hello"})
        assert again["error"] == "conflict"
        assert (await client.request({"type": "heartbeat"}))["result"]["status"] == "active"


async def test_frames_before_hello_are_refused_until_hello(live_broker):
    async with live_broker.raw(Authorization=f"Bearer {live_broker.agent_key}") as client:
        early = await client.request({"type": "send", "recipient_id": "x", "payload": {}})
        assert early["error"] == "unauthorized"
        welcome = await client.request({"type": "hello"})
        assert welcome["type"] == "welcome"


@pytest.mark.parametrize("key", ["alpha_nokey_" + "x" * 40, "garbage", ""])
async def test_a_bad_key_gets_unauthorized_and_the_socket_closes(live_broker, key):
    async with live_broker.raw() as client:
        refused = await client.request({"type": "hello", "key": key})
        assert refused["error"] == "unauthorized"
        if key:
            assert key not in json.dumps(refused)  # the error never echoes the key
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.next(timeout=5)
        assert closed.value.rcvd.code == 4401


async def test_another_projects_session_is_not_reachable(live_broker):
    async with live_broker.connect() as inside, live_broker.connect(live_broker.other_project_key) as outsider:
        refused = await outsider.request({"type": "send", "recipient_id": inside.session_id, "payload": {"x": 1}})
        assert refused["error"] == "not_found"
        result = await outsider.request({"type": "broadcast", "payload": {"x": 1}})
        reached = {e["session_id"] for e in result["result"]["pushing"] + result["result"]["queued"]}
        assert inside.session_id not in reached
        with pytest.raises(TimeoutError):
            await inside.next("message", timeout=0.5)


async def test_unknown_path_is_refused_at_the_handshake(live_broker):
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(live_broker.ws_url.replace("/ws/sessions/", "/ws/nowhere/")):
            pass


async def test_a_foreign_origin_is_refused_at_the_handshake(live_broker):
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(live_broker.ws_url, origin="http://evil.example"):
            pass
