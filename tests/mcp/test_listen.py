"""Push on the stateless protocol: a 2026-07-28 client listens on its session's inbox (subscriptions/listen),
authorised by its session token (the X-Session-Token header, or the listen's _meta), and hears mail the moment
it is committed; a client declaring Claude Code's `claude/channel` also hears each message announced."""

import asyncio
import json
import uuid
from contextlib import asynccontextmanager

import pytest
from mcp.client.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import another_process, serve_live_broker
from tests.mcp.helpers import ChannelClient, ChannelEvents, InboxUpdates, call, with_listen_token

# resources/subscribe (the session-based channel test) is deprecated for 2026-07-28 in the SDK.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

LISTENS_PER_KEY = 2


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory):
    # A small per-key cap, so a test can see a closed listen give its place back. (Legacy sessions have the
    # same cap: tests here hold at most two legacy connections per key at a time.)
    yield from serve_live_broker(tmp_path_factory,
                                 BROKER_MCP_SESSIONS_PER_KEY=str(LISTENS_PER_KEY))


def token_header(token: str) -> dict[str, str]:
    return {"X-Session-Token": token}


async def connected(broker, name: str, key: str | None = None) -> dict:
    """A session made on a stateless connection: its id, token and inbox URI."""
    async with broker.client(key, mode="auto") as client:
        session = await call(client, "connect_session", name=name)
    session["inbox"] = f"broker://sessions/{session['session_id']}/inbox"
    return session


async def next_event(subscription, timeout: float = 10):
    return await asyncio.wait_for(subscription.__anext__(), timeout)


async def refused_listen(client, uri: str | list[str]) -> dict:
    with pytest.raises(MCPError) as caught:
        async with client.listen(resource_subscriptions=[uri] if isinstance(uri, str) else uri):
            pass
    assert set(caught.value.data) == {"error", "message", "details"}, caught.value
    return caught.value.data


async def test_a_listen_with_the_session_header_hears_mail_and_the_header_reads_the_inbox(live_broker):
    bob = await connected(live_broker, "listen-bob")
    alice = await connected(live_broker, "listen-alice")
    async with (live_broker.client(mode="auto", **token_header(bob["session_token"])) as listener,
                live_broker.client(mode="auto", **token_header(alice["session_token"])) as sender):
        capabilities = listener.server_capabilities
        assert capabilities.resources.subscribe is True
        # Our lists never change, so no list-change events are promised; the channel contract is declared.
        assert not capabilities.tools.list_changed and not capabilities.resources.list_changed
        assert "claude/channel" in capabilities.experimental

        async with listener.listen(resource_subscriptions=[bob["inbox"]], tools_list_changed=True) as sub:
            assert sub.honored.resource_subscriptions == [bob["inbox"]] and not sub.honored.tools_list_changed
            sent = await call(sender, "send_message", recipient_id="listen-bob", payload={"n": 1})
            assert await next_event(sub) == ResourceUpdated(uri=bob["inbox"])

        # The header also proves the session for a read, which a stateless client could not do before.
        view = json.loads((await listener.read_resource(bob["inbox"], cache_mode="bypass")).contents[0].text)
        assert view["queued"] == 1 and view["next"][0]["message_id"] == sent["message_id"]


async def test_mail_sent_through_another_server_process_reaches_a_listen(live_broker):
    if "REDIS_URL" not in live_broker.env:
        pytest.skip("push between processes goes through Redis; this run uses the in-memory layer")
    bob = await connected(live_broker, "xlisten-bob")
    alice = await connected(live_broker, "xlisten-alice")
    with another_process(live_broker) as elsewhere:
        async with (live_broker.client(mode="auto", **token_header(bob["session_token"])) as listener,
                    elsewhere.client(mode="auto", **token_header(alice["session_token"])) as sender):
            async with listener.listen(resource_subscriptions=[bob["inbox"]]) as sub:
                await call(sender, "send_message", recipient_id="xlisten-bob", payload={"n": 1})
                assert await next_event(sub) == ResourceUpdated(uri=bob["inbox"])


async def test_a_listen_may_carry_the_session_token_in_its_meta(live_broker):
    bob = await connected(live_broker, "meta-bob")
    alice = await connected(live_broker, "meta-alice")
    async with (live_broker.client(mode="auto") as listener,
                live_broker.client(mode="auto", **token_header(alice["session_token"])) as sender):
        with_listen_token(listener, bob["session_token"])
        async with listener.listen(resource_subscriptions=["broker://sessions/meta-bob/inbox"]) as sub:  # by name
            await call(sender, "send_message", recipient_id="meta-bob", payload={"n": 1})
            assert await next_event(sub) == ResourceUpdated(uri="broker://sessions/meta-bob/inbox")


async def test_a_listen_ends_gracefully_when_its_session_is_disconnected(live_broker):
    bob = await connected(live_broker, "ending-bob")
    async with live_broker.client(mode="auto", **token_header(bob["session_token"])) as listener:
        async with listener.listen(resource_subscriptions=[bob["inbox"]]) as sub:
            await call(listener, "disconnect_session")  # as the header's session
            # The server closes the stream with the listen's result (a graceful end, not SubscriptionLost).
            with pytest.raises(StopAsyncIteration):
                await next_event(sub)
        data = await refused_listen(listener, bob["inbox"])  # until it is resumed
        assert data["error"] == "conflict"


async def test_a_listen_is_refused_for_another_inbox_without_a_session_and_across_projects(live_broker):
    bob = await connected(live_broker, "refused-bob")
    carol = await connected(live_broker, "refused-carol")
    outsider = await connected(live_broker, "refused-outsider", live_broker.other_project_key)
    async with (live_broker.client(mode="auto", **token_header(carol["session_token"])) as as_carol,
                live_broker.client(mode="auto") as no_session,
                live_broker.client(live_broker.other_project_key, mode="auto",
                                   **token_header(outsider["session_token"])) as other_project):
        for client in (as_carol, no_session):
            data = await refused_listen(client, bob["inbox"])
            assert data["error"] == "forbidden" and data["details"]["next_step"] == "connect_session"
        # A token in _meta is held to the same rule as the header.
        with_listen_token(no_session, carol["session_token"])
        assert (await refused_listen(no_session, bob["inbox"]))["error"] == "forbidden"

        # Another project's session is not found, exactly as one that does not exist: nothing tells them apart.
        missing = await refused_listen(other_project, "broker://sessions/00000000-0000-0000-0000-000000000000/inbox")
        theirs = await refused_listen(other_project, bob["inbox"])
        assert theirs["error"] == missing["error"] == "not_found" and theirs["message"] == missing["message"]

        assert (await refused_listen(as_carol, "broker://sessions/x/outbox"))["error"] == "validation_error"
        assert (await refused_listen(as_carol, [carol["inbox"], bob["inbox"]]))["error"] == "validation_error"
        async with as_carol.listen(resource_subscriptions=[carol["inbox"]]):  # and her own inbox she may
            pass


async def test_listens_are_capped_per_key_and_a_closed_listen_gives_its_place_back(live_broker):
    bob = await connected(live_broker, "capped-bob")
    async with live_broker.client(mode="auto", **token_header(bob["session_token"])) as listener:
        for _ in range(3):  # the cap never fills up with listens that were closed
            async with listener.listen(resource_subscriptions=[bob["inbox"]]), \
                    listener.listen(resource_subscriptions=[bob["inbox"]]):
                data = await refused_listen(listener, bob["inbox"])
                assert data["error"] == "limit_reached"
                assert (data["details"]["per"], data["details"]["limit"]) == ("key", LISTENS_PER_KEY)
            # The server frees a place when it sees the stream close, a moment after the client closed it.
            await _until_listen_opens(listener, bob["inbox"])


async def test_a_closed_listen_takes_its_process_out_of_the_sessions_group_on_redis(live_broker):
    if "REDIS_URL" not in live_broker.env:
        pytest.skip("the in-memory layer's groups live inside the server process")
    import redis.asyncio as redis

    bob = await connected(live_broker, "redis-bob")
    # channels_redis's pub/sub layer: a process in a group is a subscriber of the group's Redis channel.
    group_channel = f"asgi__group__session.{uuid.UUID(bob['session_id']).hex}"
    store = redis.from_url(live_broker.env["REDIS_URL"])

    async def subscribers() -> int:
        return dict(await store.pubsub_numsub(group_channel))[group_channel.encode()]

    try:
        async with live_broker.client(mode="auto", **token_header(bob["session_token"])) as listener:
            async with listener.listen(resource_subscriptions=[bob["inbox"]]):
                assert await subscribers() == 1
            async with asyncio.timeout(10):  # the server leaves when it sees the stream close
                while await subscribers():
                    await asyncio.sleep(0.05)
    finally:
        await store.aclose()


async def _until_listen_opens(client, uri: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with client.listen(resource_subscriptions=[uri]), client.listen(resource_subscriptions=[uri]):
                    return
            except MCPError as exc:
                assert exc.data["error"] == "limit_reached", exc.data
                await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_claude_channel_client_hears_each_message_announced_and_it_stays_queued(live_broker, mode):
    bob = await connected(live_broker, f"channel-bob-{mode}")
    alice = await connected(live_broker, f"channel-alice-{mode}")
    events, updates = ChannelEvents(), InboxUpdates()
    async with (live_broker.client(mode=mode, client_class=ChannelClient, extensions=[events],
                                   message_handler=updates, **token_header(bob["session_token"])) as listener,
                live_broker.client(live_broker.admin_key, mode="auto", **token_header(alice["session_token"])) as sender):
        async with _watching(listener, mode, bob["inbox"], updates) as next_update:
            long_text = "x" * 1000
            first = await call(sender, "send_message", recipient_id=bob["session_id"], payload={"text": long_text},
                               priority="high")
            assert await next_update() == bob["inbox"]
            heard = await events.next()
            assert heard.meta == {"message_id": first["message_id"], "sender_id": alice["session_id"],
                                  "sender_name": alice["name"], "protocol": "", "priority": "high"}
            prefix = f"{alice['name']} sent a message {first['message_id']}: "
            assert heard.content.startswith(prefix + '{"text": "xxx') or heard.content.startswith(prefix + '{"text":"xxx')
            assert len(heard.content) <= len(prefix) + 201  # a preview, capped: 200 characters and an ellipsis
            # Announcing is not delivering: the message waits for receive_messages.
            assert (await call(sender, "get_message_status", message_id=first["message_id"]))["state"] == "queued"

            # The next wake-up announces the next message only: the first is not announced again.
            second = await call(sender, "send_message", recipient_id=bob["session_id"], payload={"say": "hi"})
            assert await next_update() == bob["inbox"]
            heard = await events.next()
            assert heard.meta["message_id"] == second["message_id"] and heard.content.endswith('"hi"}')
            third = await call(sender, "send_message", recipient_id=bob["session_id"], payload={"say": "again"})
            assert await next_update() == bob["inbox"]
            assert (await events.next()).meta["message_id"] == third["message_id"]
            assert events.events.empty()


async def test_a_client_not_declaring_claude_channel_hears_only_the_update(live_broker):
    bob = await connected(live_broker, "plain-bob")
    alice = await connected(live_broker, "plain-alice")
    events = ChannelEvents()  # it would hear channel events, but it does not declare claude/channel
    async with (live_broker.client(mode="auto", extensions=[events], **token_header(bob["session_token"])) as listener,
                live_broker.client(mode="auto", **token_header(alice["session_token"])) as sender):
        async with listener.listen(resource_subscriptions=[bob["inbox"]]) as sub:
            for n in range(2):
                # By the second update, a channel event sent for the first would have come before it.
                await call(sender, "send_message", recipient_id="plain-bob", payload={"n": n})
                assert await next_event(sub) == ResourceUpdated(uri=bob["inbox"])
    assert events.events.empty()


@asynccontextmanager
async def _watching(client, mode: str, inbox: str, updates: InboxUpdates):
    """Watch the inbox on the client's protocol: subscribe (session-based) or listen (2026-07-28); yields
    a function that waits for the next update's URI."""
    if mode == "legacy":
        await client.subscribe_resource(inbox)
        yield updates.next
        return
    async with client.listen(resource_subscriptions=[inbox]) as sub:
        async def next_update() -> str:
            return (await next_event(sub)).uri

        yield next_update
