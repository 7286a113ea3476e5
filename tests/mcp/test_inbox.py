"""The inbox resource and push for MCP clients: a session subscribes to its inbox and hears when mail is committed."""

import json

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import another_process
from tests.mcp.helpers import InboxUpdates, call

# Subscriptions are a feature of the session-based protocol, which the SDK marks deprecated for 2026-07-28.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


async def read_inbox(client, uri: str) -> dict:
    result = await client.read_resource(uri, cache_mode="bypass")
    assert result.contents[0].mime_type == "application/json"
    return json.loads(result.contents[0].text)


async def refused(operation) -> dict:
    with pytest.raises(MCPError) as caught:
        await operation
    assert set(caught.value.data) == {"error", "message", "details"}
    return caught.value.data


async def test_subscriber_is_notified_when_mail_is_committed_and_reading_claims_nothing(live_broker):
    updates = InboxUpdates()
    async with live_broker.client(message_handler=updates) as bob, live_broker.client() as alice:
        assert bob.server_capabilities.resources.subscribe is True
        templates = (await bob.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["broker://sessions/{session_id}/inbox"]
        b = await call(bob, "connect_session", name="inbox-bob")
        await call(alice, "connect_session", name="inbox-alice")
        inbox = b["inbox"]
        assert inbox == f"broker://sessions/{b['session_id']}/inbox"
        assert await read_inbox(bob, inbox) == {"session_id": b["session_id"], "queued": 0, "awaiting_ack": 0,
                                                "next": []}

        await bob.subscribe_resource(inbox)
        sent = await call(alice, "send_message", recipient_id="inbox-bob", payload={"n": 1}, priority="high")
        assert await updates.next() == inbox

        view = await read_inbox(bob, inbox)
        assert (view["queued"], view["awaiting_ack"]) == (1, 0)
        assert view["next"][0]["message_id"] == sent["message_id"]
        assert view["next"][0]["sender_name"] == "inbox-alice" and view["next"][0]["priority"] == "high"
        assert await read_inbox(bob, inbox) == view  # reading twice changes nothing either

        received = await call(bob, "receive_messages")
        assert [m["message_id"] for m in received["messages"]] == [sent["message_id"]]
        view = await read_inbox(bob, inbox)
        assert (view["queued"], view["awaiting_ack"], view["next"]) == (0, 1, [])


async def test_mail_sent_through_another_server_process_notifies_the_subscriber(live_broker):
    if "REDIS_URL" not in live_broker.env:
        pytest.skip("push between processes goes through Redis; this run uses the in-memory layer")
    updates = InboxUpdates()
    with another_process(live_broker) as elsewhere:
        async with live_broker.client(message_handler=updates) as bob, elsewhere.client() as alice:
            inbox = (await call(bob, "connect_session", name="xproc-bob"))["inbox"]
            await call(alice, "connect_session", name="xproc-alice")
            await bob.subscribe_resource(inbox)
            await call(alice, "send_message", recipient_id="xproc-bob", payload={"n": 1})
            assert await updates.next() == inbox


async def test_unsubscribing_stops_notifications(live_broker):
    updates = InboxUpdates()
    async with live_broker.client(message_handler=updates) as bob, live_broker.client() as alice:
        by_id = (await call(bob, "connect_session", name="unsub-bob"))["inbox"]
        by_name = "broker://sessions/unsub-bob/inbox"  # the same inbox under a second URI
        await call(alice, "connect_session", name="unsub-alice")
        await bob.subscribe_resource(by_id)
        await bob.subscribe_resource(by_id)  # twice is still one subscription
        await call(alice, "send_message", recipient_id="unsub-bob", payload={"n": 1})
        assert await updates.next() == by_id

        await bob.unsubscribe_resource(by_id)
        await call(alice, "send_message", recipient_id="unsub-bob", payload={"n": 2})
        # A marker: by the time the by-name subscription reports message 3, a by-id subscription that
        # survived (or a duplicate from subscribing twice) would have reported message 2 on the same
        # stream, before it. So the marker must be the next notification, and the only one.
        await bob.subscribe_resource(by_name)
        await call(alice, "send_message", recipient_id="unsub-bob", payload={"n": 3})
        assert await updates.next() == by_name
        assert updates.uris.empty()
        assert (await read_inbox(bob, by_id))["queued"] == 3  # the mail itself was never in doubt


async def test_only_the_session_itself_reads_or_subscribes_to_its_inbox(live_broker):
    async with (live_broker.client() as bob, live_broker.client() as carol,
                live_broker.client(live_broker.admin_key) as unbound,
                live_broker.client(live_broker.other_project_key) as outsider,
                live_broker.client(mode="auto") as stateless):
        b = await call(bob, "connect_session", name="scoped-bob")
        inbox = b["inbox"]
        c = await call(carol, "connect_session", name="scoped-carol")
        await call(outsider, "connect_session", name="scoped-outsider")

        # Another project's key sees nothing: the same answer as for a session that does not exist.
        for data in (await refused(outsider.read_resource(inbox, cache_mode="bypass")),
                     await refused(outsider.subscribe_resource(inbox))):
            assert data["error"] == "not_found"
        # The same key on a connection bound to another session, and another key of the project on a
        # connection bound to none, are refused.
        for client in (carol, unbound):
            for data in (await refused(client.read_resource(inbox, cache_mode="bypass")),
                         await refused(client.subscribe_resource(inbox))):
                assert data["error"] == "forbidden" and data["details"]["next_step"] == "connect_session"
        # The stateless protocol has no connection to bind: without a session token header it cannot read.
        assert (await refused(stateless.read_resource(inbox, cache_mode="bypass")))["error"] == "forbidden"

        assert (await refused(bob.subscribe_resource("broker://sessions/x/outbox")))["error"] == "validation_error"
        await bob.subscribe_resource(inbox)  # and the session itself may

        # With the header, a stateless client acts as that session: bob's token reads bob's inbox, carol's does not.
        async with (live_broker.client(mode="auto", **{"X-Session-Token": b["session_token"]}) as as_bob,
                    live_broker.client(mode="auto", **{"X-Session-Token": c["session_token"]}) as as_carol):
            assert (await read_inbox(as_bob, inbox))["session_id"] == b["session_id"]
            data = await refused(as_carol.read_resource(inbox, cache_mode="bypass"))
            assert data["error"] == "forbidden" and data["details"]["next_step"] == "connect_session"
