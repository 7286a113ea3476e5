"""A receive whose client has gone claims nothing; what it claimed for an answer that never went out goes back.

The REST face against a live daphne (its client gives up on a long poll), and the two narrow
windows of the one rule (routing.receive): cancelled while a claim runs, and claimed but not sent.
"""

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async

from routing.contracts import SendIn
from routing.models import Message
from routing.receive import ClientLink, claim_and_beat, messages_receive
from routing.sending import message_send
from tests.mcp.conftest import live_broker  # noqa: F401  (the live server fixture)
from tests.routing.test_long_poll import close_thread_connections


async def test_a_rest_long_poll_the_client_gave_up_on_claims_nothing(live_broker):  # noqa: F811
    base = live_broker.process.http_url + "/api/v1"
    key = {"Authorization": f"Bearer {live_broker.agent_key}"}
    async with httpx.AsyncClient(headers=key, timeout=30) as http:
        receiver = (await http.post(f"{base}/sessions/", json={"name": "rest-gave-up"})).json()
        sender = (await http.post(f"{base}/sessions/", json={"name": "rest-gave-up-sender"})).json()
        as_receiver = {"X-Session-Token": receiver["session_token"]}
        with pytest.raises(httpx.TimeoutException):
            await http.post(f"{base}/messages/receive/", json={"wait_seconds": 8, "auto_ack": True},
                            headers=as_receiver, timeout=1)
        await asyncio.sleep(1.5)
        sent = await http.post(f"{base}/messages/", json={"recipient_id": "rest-gave-up", "payload": {"n": 1}},
                               headers={"X-Session-Token": sender["session_token"]})
        message_id = sent.json()["message_id"]
        got = (await http.post(f"{base}/messages/receive/", json={"wait_seconds": 5}, headers=as_receiver)).json()
        assert [m["message_id"] for m in got["messages"]] == [message_id]
        assert got["messages"][0]["attempts"] == 1


async def _queued_message(make_tenant):
    tenant = await sync_to_async(make_tenant)("alpha")
    sender, _ = await sync_to_async(tenant.connect)("sender")
    recipient, _ = await sync_to_async(tenant.connect)("recipient")
    sent = await sync_to_async(message_send)(sender, SendIn(recipient_id="recipient", payload={"n": 1}))
    return recipient, sent.message.pk


async def _state(message_id) -> tuple[str, int]:
    message = await Message.objects.aget(pk=message_id)
    return message.state, message.attempts


@pytest.mark.django_db(transaction=True)
async def test_a_receive_cancelled_while_its_claim_runs_puts_the_claim_back(make_tenant):
    recipient, message_id = await _queued_message(make_tenant)
    claimed, finish = asyncio.Event(), asyncio.Event()

    def slow_to_return(fn):
        run = sync_to_async(fn)

        async def call(*args):
            result = await run(*args)  # the claim is committed, as in a thread the cancel cannot stop
            claimed.set()
            await finish.wait()
            return result
        return call

    receiving = asyncio.create_task(messages_receive(recipient, max_messages=10, wait_seconds=0, auto_ack=True,
                                                     claim=slow_to_return(claim_and_beat)))
    await asyncio.wait_for(claimed.wait(), 10)
    assert await _state(message_id) == (Message.State.ACKED, 1)
    receiving.cancel()  # the client went while the claim ran
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert await _state(message_id) == (Message.State.QUEUED, 0)
    await close_thread_connections()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answered", [True, False], ids=["sent", "client_went_first"])
async def test_claimed_mail_goes_back_unless_the_answer_went_out(make_tenant, answered):
    recipient, message_id = await _queued_message(make_tenant)
    link = ClientLink()
    sent: list[dict] = []

    async def receive():
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    _, _, watched_send = link.watch({"type": "http"}, receive, send, read_ahead=False)
    messages = await messages_receive(recipient, max_messages=10, wait_seconds=0, auto_ack=False, link=link)
    assert [m.pk for m in messages] == [message_id]
    if not answered:
        link.went()  # the disconnect came after the claim, before the answer
    await watched_send({"type": "http.response.start", "status": 200, "headers": []})
    await watched_send({"type": "http.response.body", "body": b"{}"})
    await link.settle()
    assert len(sent) == 2
    assert await _state(message_id) == ((Message.State.DELIVERED, 1) if answered else (Message.State.QUEUED, 0))
    await close_thread_connections()


@pytest.mark.django_db(transaction=True)
async def test_a_receive_whose_client_has_gone_claims_nothing(make_tenant):
    recipient, message_id = await _queued_message(make_tenant)
    link = ClientLink()
    link.went()
    assert await messages_receive(recipient, max_messages=10, wait_seconds=5, auto_ack=True, link=link) == []
    assert await _state(message_id) == (Message.State.QUEUED, 0)
    await close_thread_connections()
