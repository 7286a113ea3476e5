"""Two sessions talk over WebSockets: hello, welcome, send, push, ack, receipt, presence."""

import uuid

import pytest
import websockets


async def test_hello_with_header_key_welcomes_a_new_session_with_its_token(live_broker):
    async with live_broker.connect(name=f"w-{uuid.uuid4().hex[:6]}") as client:
        assert client.welcome["resumed"] is False
        assert uuid.UUID(client.session_id)
        assert len(client.token) >= 32
        assert client.welcome["delivery"]["ack_timeout"] == 30


async def test_key_in_the_hello_frame_works_for_clients_that_cannot_set_headers(live_broker):
    async with live_broker.connect(in_hello=True) as client:
        with live_broker.rest() as rest:
            listed = rest.get("/api/v1/sessions/").json()["sessions"]
        assert client.session_id in [s["session_id"] for s in listed]


async def test_message_is_pushed_acked_and_its_receipt_says_acked(live_broker):
    async with live_broker.connect() as sender, live_broker.connect() as recipient:
        sent = await sender.request({"type": "send", "recipient_id": recipient.session_id,
                                     "payload": {"task": "review", "n": 1}, "priority": "high",
                                     "correlation_id": "c-1"})
        assert sent["type"] == "result" and sent["for"] == "send"
        # The recipient holds a live connection, so the send reports the message being pushed to it.
        assert sent["result"]["status"] == "pushing"
        [message] = await recipient.messages(1)
        assert message["message_id"] == sent["result"]["message_id"]
        assert message["payload"] == {"task": "review", "n": 1}
        assert (message["sender_id"], message["priority"], message["correlation_id"]) == (
            sender.session_id, "high", "c-1")
        acked = await recipient.ack([message])
        assert acked["result"]["acked"] == [message["message_id"]]
        with live_broker.rest(session_token=sender.token) as rest:
            receipt = rest.get(f"/api/v1/messages/{message['message_id']}/").json()
        assert receipt["state"] == "acked"


async def test_send_to_an_offline_session_is_queued_and_drained_in_order_on_resume(live_broker):
    async with live_broker.connect() as sender:
        async with live_broker.connect() as recipient:
            recipient_id, token = recipient.session_id, recipient.token
        await live_broker.wait_for_status(recipient_id, "disconnected")
        first = await sender.request({"type": "send", "recipient_id": recipient_id, "payload": {"n": 1}})
        assert first["result"]["status"] == "queued"
        await sender.request({"type": "send", "recipient_id": recipient_id, "payload": {"n": 2}})
        await sender.request({"type": "send", "recipient_id": recipient_id, "payload": {"n": 3}, "priority": "urgent"})
        async with live_broker.connect(session_id=recipient_id, session_token=token) as back:
            assert back.welcome["resumed"] is True
            drained = await back.messages(3)
        assert [m["payload"]["n"] for m in drained] == [3, 1, 2]  # priority first, then first in, first out


async def test_broadcast_reaches_every_other_live_session_and_reports_counts(live_broker):
    async with live_broker.connect() as a, live_broker.connect() as b, live_broker.connect() as c:
        result = await a.request({"type": "broadcast", "payload": {"all": True}})
        pushing = {entry["session_id"] for entry in result["result"]["pushing"]}
        assert {b.session_id, c.session_id} <= pushing
        assert a.session_id not in pushing
        for peer in (b, c):
            [message] = await peer.messages(1)
            assert message["payload"] == {"all": True}
            assert message["broadcast_id"] == result["result"]["broadcast_id"]


async def test_a_broadcast_frame_carries_every_header_a_send_frame_does(live_broker):
    async with live_broker.connect() as a, live_broker.connect() as b:
        result = await a.request({"type": "broadcast", "payload": {"n": 1}, "ttl": 600, "correlation_id": "c-1",
                                  "reply_to": a.session_id, "priority": "high"})
        assert result["type"] == "result", result
        [message] = await b.messages(1)
        assert (message["ttl"], message["correlation_id"], message["reply_to"], message["priority"]) == (
            600, "c-1", a.session_id, "high")


async def test_peers_see_a_session_join_and_leave(live_broker):
    async with live_broker.connect() as watcher:
        async with live_broker.connect() as visitor:
            joined = await watcher.next("session_joined", session_id=visitor.session_id)
            assert joined["name"] is None
        left = await watcher.next("session_left", session_id=visitor.session_id)
        assert left["session_id"] == visitor.session_id
        await live_broker.wait_for_status(visitor.session_id, "disconnected")


async def test_heartbeat_frame_answers_with_the_session_status(live_broker):
    async with live_broker.connect() as client:
        answer = await client.request({"type": "heartbeat"})
        assert answer["result"] == {"session_id": client.session_id, "status": "active"}


async def test_resume_from_another_connection_closes_the_old_one(live_broker):
    async with live_broker.connect() as first:
        async with live_broker.connect(session_id=first.session_id, session_token=first.token) as second:
            notice = await first.next("error")
            assert notice["error"] == "conflict"
            try:
                await first.next(timeout=5)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd.code == 4409
            else:
                raise AssertionError("the replaced connection stayed open")
            answer = await second.request({"type": "heartbeat"})
            assert answer["result"]["status"] == "active"


async def test_a_session_that_opts_out_of_presence_gets_no_join_frames(live_broker):
    async with live_broker.connect(presence=False) as quiet, live_broker.connect() as watcher:
        async with live_broker.connect() as visitor:
            await watcher.next("session_joined", session_id=visitor.session_id)
            answer = await quiet.request({"type": "heartbeat"})  # frames before this one have arrived
            assert answer["type"] == "result"
            assert not [f for f in quiet.backlog if f["type"].startswith("session_")]
    async with live_broker.raw(Authorization=f"Bearer {live_broker.agent_key}") as client:
        bad = await client.request({"type": "hello", "presence": "yes"})
        assert (bad["error"], bad["details"]["field"]) == ("validation_error", "presence")


async def test_a_session_disconnected_elsewhere_has_its_socket_closed_with_4410(live_broker):
    async with live_broker.connect(presence=False) as client, live_broker.connect() as peer:
        with live_broker.rest(session_token=client.token) as rest:
            assert rest.post("/api/v1/sessions/me/disconnect/").status_code == 200
        notice = await client.next("error")
        assert (notice["error"], notice["details"]["session_id"]) == ("conflict", client.session_id)
        try:
            extra = await client.next(timeout=5)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 4410
        else:
            raise AssertionError(f"the socket of a disconnected session stayed open: {extra}")
        # The one that stays is untouched, and a send to the gone session is queued for its resume.
        queued = await peer.request({"type": "send", "recipient_id": client.session_id, "payload": {"n": 1}})
        assert queued["result"]["status"] == "queued"


async def test_a_socket_that_never_says_hello_is_told_and_closed_with_4408(live_broker):
    async with live_broker.raw(Authorization=f"Bearer {live_broker.agent_key}") as client:
        told = await client.next("error", timeout=15)  # the server waits 10 s for a hello
        assert told["error"] == "unauthorized" and "hello" in told["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.connection.recv()
        assert closed.value.rcvd.code == 4408
