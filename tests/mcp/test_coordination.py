"""Coordination through the MCP tools on a live server, on both protocols: threads across sessions and a
broadcast answered in its thread; request_reply (on REST too, across server processes and a link; it times out
cleanly and the late reply is ordinary mail); search_messages finding an earlier decision and nothing of another
session's or project's."""

import asyncio

import httpx
import pytest

from tests.mcp.conftest import another_process
from tests.mcp.helpers import acting_as, call, fails, projects_linked

MODES = ["legacy", "auto"]
ASK = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def rest_of(broker, token: str = "") -> httpx.AsyncClient:
    """A REST client of `broker` with the agent key, acting as the session `token` names if given."""
    headers = {"Authorization": f"Bearer {broker.agent_key}", **({"X-Session-Token": token} if token else {})}
    return httpx.AsyncClient(base_url=broker.process.http_url + "/api/v1", timeout=30, headers=headers)


async def answer_next(client, payload: dict, **tokens: str) -> dict:
    """Take the next request and reply to it (reply_to = its message id): what a recipient does."""
    inbox = await call(client, "receive_messages", wait_seconds=15, auto_ack=True, **tokens)
    [request] = inbox["messages"]
    await call(client, "send_message", recipient_id=request["sender_id"], payload=payload,
               reply_to=request["message_id"], **tokens)
    return request


@pytest.mark.parametrize("mode", MODES)
async def test_request_reply_returns_the_reply_acked_and_the_thread_holds_both(live_broker, mode):
    async with live_broker.client(mode=mode) as asker, live_broker.client(mode=mode) as expert:
        a = await call(asker, "connect_session", name=f"rr-asker-{mode}")
        e = await call(expert, "connect_session", name=f"rr-expert-{mode}")
        tokens, expert_tokens = acting_as(a, mode), acting_as(e, mode)
        answering = asyncio.create_task(answer_next(expert, {"port": 8080}, **expert_tokens))
        result = await call(asker, "request_reply", recipient_id=f"rr-expert-{mode}", payload={"q": "which port?"},
                            timeout_seconds=20, **tokens)
        request = await answering
        assert result["status"] == "replied"
        reply = result["reply"]
        assert reply["payload"] == {"port": 8080} and reply["reply_to"] == result["request"]["message_id"]
        assert reply["state"] == "acked" and reply["sender_name"] == f"rr-expert-{mode}" and reply["untrusted"]
        assert request["correlation_id"]  # a fresh one, for a recipient that answers by correlation id

        # Acked: it is not in the inbox again.
        assert (await call(asker, "receive_messages", **tokens))["count"] == 0
        exchange = await call(asker, "get_thread", thread_id=reply["thread_id"], **tokens)
        assert [m["payload"] for m in exchange["messages"]] == [{"q": "which port?"}, {"port": 8080}]


async def test_a_request_that_times_out_says_so_and_the_late_reply_is_still_delivered(live_broker):
    async with live_broker.client() as asker, live_broker.client() as slow:
        await call(asker, "connect_session", name="late-asker")
        await call(slow, "connect_session", name="late-expert")
        result = await call(asker, "request_reply", recipient_id="late-expert", payload={"q": "?"},
                            timeout_seconds=0.5)
        assert result["status"] == "timeout" and result["message_id"] == result["request"]["message_id"]
        await answer_next(slow, {"a": "late"})
        inbox = await call(asker, "receive_messages", wait_seconds=10)
        assert [(m["payload"], m["reply_to"]) for m in inbox["messages"]] == [({"a": "late"}, result["message_id"])]


async def test_only_the_asked_session_can_answer(live_broker):
    async with (live_broker.client() as asker, live_broker.client() as expert,
                live_broker.client() as intruder):
        await call(asker, "connect_session", name="only-asker")
        await call(expert, "connect_session", name="only-expert")
        await call(intruder, "connect_session", name="only-intruder")
        asking = asyncio.create_task(call(asker, "request_reply", recipient_id="only-expert", payload={"q": "?"},
                                          timeout_seconds=20))
        request = (await call(expert, "receive_messages", wait_seconds=15))["messages"][0]
        # The intruder learns the id somehow and answers first: that is mail, not the reply.
        await call(intruder, "send_message", recipient_id="only-asker", payload={"a": "forged"},
                   reply_to=request["message_id"])
        await asyncio.sleep(0.5)
        assert not asking.done()
        await call(expert, "send_message", recipient_id="only-asker", payload={"a": "real"},
                   reply_to=request["message_id"])
        result = await asyncio.wait_for(asking, 15)
        assert result["reply"]["payload"] == {"a": "real"}
        inbox = await call(asker, "receive_messages")
        assert [m["payload"] for m in inbox["messages"]] == [{"a": "forged"}]


async def test_a_protocol_without_request_response_is_refused_for_request_reply(live_broker):
    async with live_broker.client(live_broker.admin_key) as admin, live_broker.client() as asker:
        await call(admin, "register_protocol", name="rr_notes", version="1.0.0", schema=ASK)
        await call(admin, "register_protocol", name="rr_ask", version="1.0.0", schema=ASK,
                   capabilities=["point_to_point", "request_response"])
        await call(asker, "connect_session", name="proto-asker",
                   capabilities={"supported_protocols": {"rr_notes": ["1.0.0"], "rr_ask": ["1.0.0"]}})
        refused = await fails(asker, "request_reply", recipient_id="proto-asker", payload={"q": "?"},
                              protocol_name="rr_notes")
        assert refused["error"] == "incompatible" and "request_response" in refused["message"]
        # One that declares it is sent (to itself here, so it times out at once: no one answers).
        result = await call(asker, "request_reply", recipient_id="proto-asker", payload={"q": "?"},
                            protocol_name="rr_ask", timeout_seconds=0.2)
        assert result["status"] == "timeout"


async def test_request_reply_over_rest_waits_for_an_answer_from_another_server_process(live_broker):
    if "REDIS_URL" not in live_broker.env:
        pytest.skip("wake-ups between processes go through Redis; this run uses the in-memory layer")
    async with live_broker.client() as expert:
        await call(expert, "connect_session", name="xproc-expert")
        with another_process(live_broker) as elsewhere:
            async with rest_of(elsewhere) as rest:
                connected = (await rest.post("/sessions/", json={"name": "xproc-asker"})).json()
                asking = asyncio.create_task(rest.post(
                    "/messages/request-reply/", headers={"X-Session-Token": connected["session_token"]},
                    json={"recipient_id": "xproc-expert", "payload": {"q": "?"}, "timeout_seconds": 20}))
                await answer_next(expert, {"a": "from the first process"})
                response = await asyncio.wait_for(asking, 20)
        assert response.status_code == 200, response.text
        assert response.json()["reply"]["payload"] == {"a": "from the first process"}


def test_request_reply_over_rest_refuses_bad_input_in_the_spec_shape(live_broker):
    rest = httpx.Client(base_url=live_broker.process.http_url + "/api/v1", timeout=30,
                        headers={"Authorization": f"Bearer {live_broker.agent_key}"})
    with rest:
        token = rest.post("/sessions/", json={"name": "rest-asker"}).json()["session_token"]
        response = rest.post("/messages/request-reply/", headers={"X-Session-Token": token},
                             json={"recipient_id": "rest-asker", "payload": {}, "timeout_seconds": 61})
        assert response.status_code == 400 and response.json()["details"]["field"] == "timeout_seconds"
        assert rest.post("/messages/request-reply/", json={"recipient_id": "x", "payload": {}}).status_code == 401
        timed_out = rest.post("/messages/request-reply/", headers={"X-Session-Token": token},
                              json={"recipient_id": "rest-asker", "payload": {}, "timeout_seconds": 0.2}).json()
        assert timed_out["status"] == "timeout"


async def test_request_reply_works_across_a_link_between_projects(live_broker):
    await projects_linked(live_broker)
    async with live_broker.client() as front, live_broker.client(live_broker.other_project_key) as platform:
        await call(front, "connect_session", name="linked-asker")
        await call(platform, "connect_session", name="linked-expert")
        asking = asyncio.create_task(call(front, "request_reply", recipient_id="beta/linked-expert",
                                          payload={"q": "port?"}, timeout_seconds=20))
        [question] = (await call(platform, "receive_messages", wait_seconds=15, auto_ack=True))["messages"]
        assert question["sender_project_id"] == "alpha"
        await call(platform, "send_message", recipient_id=f"alpha/{question['sender_id']}", payload={"a": 8443},
                   reply_to=question["message_id"])
        result = await asyncio.wait_for(asking, 20)
        assert result["status"] == "replied"
        assert (result["reply"]["payload"], result["reply"]["sender_project_id"]) == ({"a": 8443}, "beta")
        assert result["reply"]["thread_id"] == result["request"]["message_id"]


async def test_a_reply_that_comes_after_the_asker_gave_up_stays_in_its_inbox(live_broker):
    async with live_broker.client() as expert:
        await call(expert, "connect_session", name="quit-expert")
        async with rest_of(live_broker) as rest:
            token = (await rest.post("/sessions/", json={"name": "quit-asker"})).json()["session_token"]
        asker = rest_of(live_broker, token)
        asking = asyncio.create_task(asker.post("/messages/request-reply/", json={
            "recipient_id": "quit-expert", "payload": {"q": "?"}, "timeout_seconds": 30}))
        [request] = (await call(expert, "receive_messages", wait_seconds=15))["messages"]
        asking.cancel()  # the asker walks away mid-wait (Esc, a dropped connection)
        await asker.aclose()
        await asyncio.sleep(0.5)
        await call(expert, "send_message", recipient_id=request["sender_id"], payload={"a": "too late?"},
                   reply_to=request["message_id"])
        await asyncio.sleep(0.5)
        async with rest_of(live_broker, token) as back:
            inbox = (await back.post("/messages/receive/", json={"wait_seconds": 5})).json()
        assert [m["payload"] for m in inbox["messages"]] == [{"a": "too late?"}]


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


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_agent_finds_an_earlier_decision_and_nothing_it_was_not_party_to(live_broker, mode):
    async with (live_broker.client(mode=mode) as lead, live_broker.client(mode=mode) as dev,
                live_broker.client(mode=mode) as other, live_broker.client(live_broker.other_project_key,
                                                                           mode=mode) as outsider):
        sessions = {}
        for name, client in (("lead", lead), ("dev", dev), ("other", other), ("outsider", outsider)):
            sessions[name] = await call(client, "connect_session", name=f"search-{name}-{mode}")
        tokens = {name: acting_as(s, mode) for name, s in sessions.items()}
        await call(lead, "send_message", recipient_id=f"search-dev-{mode}", **tokens["lead"],
                   payload={"decision": "Sessions are kept in Redis with a one-hour expiry", "adr": 7})
        await call(lead, "send_message", recipient_id=f"search-other-{mode}", **tokens["lead"],
                   payload={"text": "Redis is down for maintenance tonight"})
        await call(outsider, "send_message", recipient_id=f"search-outsider-{mode}", **tokens["outsider"],
                   payload={"text": "Redis expiry in the other project"})

        found = await call(dev, "search_messages", query="redis expiry", **tokens["dev"])
        assert [r["payload"]["adr"] for r in found["results"]] == [7]
        assert "[Redis]" in found["results"][0]["snippet"] and found["results"][0]["sender_name"] == f"search-lead-{mode}"
        assert (await call(lead, "search_messages", query="redis", **tokens["lead"]))["count"] == 2
        assert (await call(other, "search_messages", query="expiry", **tokens["other"]))["count"] == 0
        refused = await fails(dev, "search_messages", query="!!", **tokens["dev"])
        assert refused["error"] == "validation_error"
