"""A receive waiting on an empty queue wakes as soon as a message is committed for it."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from routing import hub as hub_module
from routing import receive
from routing.contracts import SendIn
from routing.hub import Hub
from routing.sending import message_send


async def close_thread_connections() -> None:
    # sync_to_async ran the ORM in its own thread; close that thread's connections so the
    # test database can be dropped at the end of the run.
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_long_poll_returns_soon_after_the_send_not_at_the_deadline(make_tenant):
    tenant = await sync_to_async(make_tenant)("alpha")
    sender, _ = await sync_to_async(tenant.connect)("sender")
    _, token = await sync_to_async(tenant.connect)("recipient")
    client, headers = AsyncClient(), {"Authorization": f"Bearer {tenant.agent_key}", "X-Session-Token": token}
    sent_at: list[float] = []

    async def send_later():
        await asyncio.sleep(0.3)
        await sync_to_async(message_send)(sender, SendIn(recipient_id="recipient", payload={"text": "wake up"}))
        sent_at.append(time.monotonic())

    started = time.monotonic()
    response, _ = await asyncio.gather(
        client.post("/api/v1/messages/receive/", {"wait_seconds": 30}, content_type="application/json",
                    headers=headers),
        send_later())
    returned = time.monotonic()
    assert response.status_code == 200
    assert [m["payload"] for m in response.json()["messages"]] == [{"text": "wake up"}]
    # It waited for the send rather than answering at once...
    assert sent_at[0] - started >= 0.3
    # ...and woke on the event, well before both the 30 s deadline and the 5 s safety re-check.
    assert returned - sent_at[0] < 2.0
    await close_thread_connections()


@pytest.mark.django_db(transaction=True)
async def test_long_poll_times_out_empty(make_tenant):
    tenant = await sync_to_async(make_tenant)("alpha")
    _, token = await sync_to_async(tenant.connect)("recipient")
    client, headers = AsyncClient(), {"Authorization": f"Bearer {tenant.agent_key}", "X-Session-Token": token}
    response = await client.post("/api/v1/messages/receive/", {"wait_seconds": 0.5}, content_type="application/json",
                                 headers=headers)
    assert response.json() == {"messages": [], "count": 0}
    await close_thread_connections()


class UnreachableLayer:
    """A channel layer whose every call fails, as with Redis gone."""

    def __getattr__(self, name):
        async def failing(*args, **kwargs):
            raise ConnectionError("Redis is unreachable")
        return failing


@pytest.mark.django_db(transaction=True)
async def test_long_poll_polls_the_database_while_the_layer_is_down(make_tenant, monkeypatch):
    # A hub of its own on a dead layer: no event reaches the wait, only its own polling can.
    monkeypatch.setattr(hub_module, "get_channel_layer", UnreachableLayer)
    own_hub = Hub()
    monkeypatch.setattr(hub_module, "hub", own_hub)
    tenant = await sync_to_async(make_tenant)("alpha")
    sender, _ = await sync_to_async(tenant.connect)("sender")
    recipient, _ = await sync_to_async(tenant.connect)("recipient")
    sent_at: list[float] = []

    async def send_later():
        await asyncio.sleep(0.3)
        await sync_to_async(message_send)(sender, SendIn(recipient_id="recipient", payload={"text": "polled"}))
        sent_at.append(time.monotonic())

    messages, _ = await asyncio.gather(
        receive.messages_receive(recipient, max_messages=10, wait_seconds=30, auto_ack=True), send_later())
    returned = time.monotonic()
    assert [m.payload for m in messages] == [{"text": "polled"}]
    # Found by the fallback poll (every 0.5 s), not by the 5 s safety re-check of a listening wait.
    assert returned - sent_at[0] < receive.LONG_POLL_PACE.recheck - 2
    own_hub.task.cancel()
    await close_thread_connections()
