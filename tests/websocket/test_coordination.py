"""Coordination on WebSockets: a send frame names its thread or answers in its parent's, every pushed message
says who wrote it and that it is a peer's words (get_thread over REST); leases are taken and released by frames."""


async def test_a_reply_frame_joins_the_thread_and_pushed_messages_carry_provenance(live_broker):
    async with live_broker.connect(name="ws-th-ann") as ann, live_broker.connect(name="ws-th-ben") as ben:
        asked = await ann.request({"type": "send", "recipient_id": "ws-th-ben", "payload": {"q": "port?"}})
        [question] = await ben.messages(1)
        assert question["thread_id"] == asked["result"]["message_id"]
        assert (question["sender_name"], question["sender_kind"], question["untrusted"]) == ("ws-th-ann", "agent", True)
        await ben.ack([question])
        await ben.request({"type": "send", "recipient_id": ann.session_id, "payload": {"a": 8080},
                           "reply_to": question["message_id"]})
        [answer] = await ann.messages(1)
        assert answer["thread_id"] == question["thread_id"] and answer["sender_name"] == "ws-th-ben"
        await ann.ack([answer])
        bad = await ann.request({"type": "send", "recipient_id": "ws-th-ben", "payload": {}, "thread_id": "nope"})
        assert bad["type"] == "error" and bad["error"] == "validation_error"
        with live_broker.rest(session_token=ann.token) as rest:
            thread = rest.get(f"/api/v1/threads/{question['thread_id']}/").json()
        assert [m["payload"] for m in thread["messages"]] == [{"q": "port?"}, {"a": 8080}]


async def test_leases_are_taken_and_released_over_frames_and_the_waiter_hears_by_push(live_broker):
    async with live_broker.connect(name="ws-lease-ann") as ann, live_broker.connect(name="ws-lease-ben") as ben:
        granted = await ann.request({"type": "lease_files", "paths": ["lib/*.rs"], "workspace": "ws-frames"})
        assert granted["for"] == "lease_files" and granted["result"]["granted"]
        refused = await ben.request({"type": "lease_files", "paths": ["lib/io.rs"], "workspace": "ws-frames"})
        assert refused["result"]["granted"] is False
        assert refused["result"]["conflicts"][0]["held_by"]["session_name"] == "ws-lease-ann"
        bad = await ben.request({"type": "lease_files", "paths": [], "workspace": "ws-frames"})
        assert bad["type"] == "error" and bad["error"] == "validation_error"
        released = await ann.request({"type": "release_files", "workspace": "ws-frames"})
        assert released["result"]["released"] == ["lib/*.rs"]
        [news] = await ben.messages(1)
        assert news["payload"] == {"lease_freed": {"paths": ["lib/io.rs"], "workspace": "ws-frames",
                                                   "why": "released"}}


async def test_a_socket_reads_its_threads_and_searches_its_messages_by_frame(live_broker):
    async with live_broker.connect(name="ws-read-ann") as ann, live_broker.connect(name="ws-read-ben") as ben:
        asked = await ann.request({"type": "send", "recipient_id": "ws-read-ben",
                                   "payload": {"text": "the cache keys expire hourly"}})
        [message] = await ben.messages(1)
        await ben.ack([message])
        thread = await ben.request({"type": "get_thread", "thread_id": message["thread_id"]})
        assert thread["for"] == "get_thread" and [m["message_id"] for m in thread["result"]["messages"]] == [
            asked["result"]["message_id"]]
        found = await ben.request({"type": "search_messages", "query": "cache expired"})
        assert [r["message_id"] for r in found["result"]["results"]] == [asked["result"]["message_id"]]
        bad = await ben.request({"type": "search_messages", "query": ""})
        assert bad["type"] == "error" and bad["error"] == "validation_error"
