"""At-least-once over the socket: unacked mail comes back, a slow reader loses nothing."""

import asyncio

import pytest


async def test_unacked_message_is_pushed_again_on_reconnect_with_the_same_id(live_broker):
    async with live_broker.connect() as sender:
        async with live_broker.connect() as recipient:
            sent = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 1}})
            [first] = await recipient.messages(1)
            recipient_id, token = recipient.session_id, recipient.token
        # Closed without acking: the resumed connection gets it again at once, not after ack_timeout.
        async with live_broker.connect(session_id=recipient_id, session_token=token) as back:
            [again] = await back.messages(1, timeout=5)
            assert again["message_id"] == first["message_id"] == sent["result"]["message_id"]
            assert again["attempts"] == 2
            await back.ack([again])


async def test_unacked_message_is_pushed_again_after_ack_timeout(live_broker):
    with live_broker.configured(ack_timeout=1):
        async with live_broker.connect() as sender, live_broker.connect() as recipient:
            await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 2}})
            [first] = await recipient.messages(1)
            [again] = await recipient.messages(1, timeout=10)  # the sweeper runs every 2 s
            assert again["message_id"] == first["message_id"]
            assert again["attempts"] == first["attempts"] + 1
            await recipient.ack([again])


# The pipelined sends below outrun the default 100 frames a second once sends are answered in
# rounds; a per-connection budget that big keeps these tests about delivery, not rate limits.
PIPELINE_BUDGET = {"rate_limit_per_minute": 60_000}


async def test_a_reader_that_does_not_ack_gets_a_window_then_the_rest_after_acking(live_broker):
    with live_broker.configured(max_queue_size=500, **PIPELINE_BUDGET):
        async with live_broker.connect() as sender, live_broker.connect() as slow:
            for n in range(130):
                await sender.send({"type": "send", "recipient_id": slow.session_id, "payload": {"n": n}})
            answers = [await sender.next("result") for _ in range(130)]
            assert all(a["for"] == "send" for a in answers)
            window = await slow.messages(100)
            with pytest.raises(TimeoutError):  # the 101st waits for acks
                await slow.next("message", timeout=1)
            await slow.ack(window)
            rest = await slow.messages(30)
            assert sorted(m["payload"]["n"] for m in window + rest) == list(range(130))
            await slow.ack(rest)


async def test_many_messages_arrive_each_exactly_once_when_acked(live_broker):
    with live_broker.configured(max_queue_size=1000, **PIPELINE_BUDGET):
        async with live_broker.connect() as sender, live_broker.connect() as recipient:
            for n in range(300):
                await sender.send({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": n},
                                   "request_id": f"s{n}"})
            answers = [await sender.next(request_id=f"s{n}") for n in range(300)]
            assert [a["type"] for a in answers] == ["result"] * 300, [a for a in answers if a["type"] != "result"][:1]
            received = []
            while len(received) < 300:
                batch = await recipient.messages(min(50, 300 - len(received)))
                await recipient.send({"type": "ack", "message_ids": [m["message_id"] for m in batch]})
                received += batch
            assert sorted(m["payload"]["n"] for m in received) == list(range(300))
            assert len({m["message_id"] for m in received}) == 300


async def test_new_project_limits_reach_an_open_socket_without_a_reconnect(live_broker):
    async with live_broker.connect(presence=False) as sender, live_broker.connect(presence=False) as recipient:
        first = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 1}})
        assert first["result"]["queue_size"] == 1  # pushed, not yet acked: it still counts
        with live_broker.configured(max_queue_size=1):
            # The sender's socket learns the new limit at the next keep-alive (every 5 s).
            deadline = asyncio.get_running_loop().time() + 12
            while True:
                answer = await sender.request({"type": "send", "recipient_id": recipient.session_id,
                                               "payload": {"probe": True}})
                if answer["type"] == "error":
                    break
                assert asyncio.get_running_loop().time() < deadline, "the socket kept the old max_queue_size"
                await asyncio.sleep(1)
            assert (answer["error"], answer["details"]["capacity"]) == ("queue_full", 1)
