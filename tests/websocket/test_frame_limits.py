"""How large a frame may be: small before hello (abusers are closed), up to a request body after it (daphne as run)."""

import asyncio
import json

import pytest
import websockets

from tests.websocket.test_key_validity import close_code

FIVE_MB = 5 * 1024 * 1024


async def test_before_hello_a_large_frame_is_refused_unread_and_closes_the_socket(live_broker):
    async with live_broker.raw(Authorization=f"Bearer {live_broker.agent_key}") as client:
        await client.send({"type": "hello", "name": "x" * 20_000, "request_id": "big"})
        refused = await client.next("error")
        assert refused["error"] == "payload_too_large"
        assert refused["details"]["limit_bytes"] == 16 * 1024
        assert refused["request_id"] is None  # too large to read even for its request id
        assert await close_code(client) == 4413


async def test_before_hello_a_far_larger_frame_closes_the_socket_with_1009_unanswered(live_broker):
    connection = await websockets.connect(live_broker.ws_url, max_size=None,
                                          additional_headers={"Authorization": f"Bearer {live_broker.agent_key}"})
    # No error frame, a close frame saying why: daphne's transport refuses it at its header, unread; under
    # uvicorn and granian the consumer closes once the server has read it (their limit is one for all sockets).
    with pytest.raises(websockets.ConnectionClosedError):
        await connection.send(json.dumps({"type": "hello", "name": "x" * (1024 * 1024)}))
        await asyncio.wait_for(connection.recv(), timeout=30)
    assert connection.protocol.close_rcvd is not None and connection.protocol.close_rcvd.code == 1009
    async with live_broker.connect() as after:  # and the server serves on
        assert (await after.request({"type": "heartbeat"}))["type"] == "result"


async def test_before_hello_the_fifth_refused_frame_closes_the_socket(live_broker):
    async with live_broker.raw() as client:
        for _ in range(4):
            early = await client.request({"type": "heartbeat"})
            assert early["error"] == "unauthorized"
        await client.connection.send("{not json")
        assert (await client.next("error"))["error"] == "validation_error"
        assert await close_code(client) == 4429


async def test_a_bad_hello_can_be_corrected_before_the_socket_is_closed(live_broker):
    async with live_broker.raw(Authorization=f"Bearer {live_broker.agent_key}") as client:
        bad = await client.request({"type": "hello", "name": "not a name!"})
        assert bad["error"] == "validation_error"
        assert (await client.request({"type": "hello"}))["type"] == "welcome"


async def test_a_five_megabyte_payload_travels_both_ways_over_websockets(live_broker):
    async with live_broker.connect() as sender, live_broker.connect() as recipient:
        payload = {"blob": "".join(chr(97 + i % 26) for i in range(FIVE_MB)), "unicode": "ünïcødé ✓"}
        sent = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": payload},
                                    timeout=60)
        assert sent["type"] == "result", sent
        [message] = await recipient.messages(1, timeout=60)
        assert message["payload"] == payload
        await recipient.ack([message])


async def test_a_payload_over_the_projects_limit_is_refused_and_the_socket_stays(live_broker):
    with live_broker.configured(max_payload_bytes=2 * 1024 * 1024):
        async with live_broker.connect() as sender:
            refused = await sender.request({"type": "send", "recipient_id": sender.session_id,
                                            "payload": {"blob": "x" * (3 * 1024 * 1024)}}, timeout=60)
            assert refused["error"] == "payload_too_large"
            assert (await sender.request({"type": "heartbeat"}))["type"] == "result"


async def test_a_frame_over_the_request_limit_closes_with_message_too_big(live_broker):
    async with live_broker.connect() as client:
        try:
            await client.connection.send(json.dumps({"type": "send", "recipient_id": client.session_id,
                                                     "payload": {"blob": "x" * (12 * 1024 * 1024)}}))
        except websockets.ConnectionClosed as closed:  # the server said 1009 before the client finished writing
            assert closed.rcvd is not None and closed.rcvd.code == 1009
            return
        assert await close_code(client) == 1009

