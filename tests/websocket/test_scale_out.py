"""Two daphne processes sharing PostgreSQL and Redis act as one broker."""

import asyncio
import time

import pytest

from devtools.live import BrokerProcess, broker_env, keys_made, throwaway_database
from tests.websocket.conftest import LiveBroker, serve, stack_from_environment, uses_postgres_and_redis
from tests.websocket.test_key_validity import closed_for, new_agent_key
from tests.websocket.test_rate_limit import minute_with_room

pytestmark = pytest.mark.skipif(not uses_postgres_and_redis(),
                                reason="scale-out shares PostgreSQL and Redis between processes: the .ci/run second pass")
# Push, not the keep-alive's re-check of waiting mail (every 5 s), when a message arrives well inside this.
PUSHED_WITHIN_SECONDS = 2.5
# Keys are kept this long here, so only the event another process publishes can make one forget a key.
CREDENTIAL_CACHE = {"BROKER_CREDENTIAL_CACHE_SECONDS": "600"}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    stack = stack_from_environment()
    with throwaway_database(stack["database_url"], prefix="broker_ws") as url:
        a_dir, b_dir = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
        server_a, env = serve(a_dir, url, stack["redis_url"], migrate=False, **CREDENTIAL_CACHE)
        admin_key, agent_key = keys_made(env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
                                         ["broker_key", "create", "--project", "alpha", "--role", "agent"])
        server_b = BrokerProcess(broker_env(b_dir, database_url=url, redis_url=stack["redis_url"], **CREDENTIAL_CACHE),
                                 b_dir / "daphne.log")
        server_a.start()
        server_b.start()
        try:
            yield (LiveBroker(server_a, admin_key, agent_key, ""), LiveBroker(server_b, admin_key, agent_key, ""))
        finally:
            server_a.stop()
            server_b.stop()
        for server in (server_a, server_b):
            assert "Traceback" not in server.log_text(), server.log_text()[-5000:]


async def test_a_session_on_one_process_gets_what_a_session_on_the_other_sends_in_real_time(two_processes):
    on_a, on_b = two_processes
    async with on_a.connect() as recipient, on_b.connect() as sender:
        await asyncio.sleep(0.5)  # both listening
        for n in range(5):
            started = time.monotonic()
            sent = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": n}})
            assert sent["result"]["status"] == "pushing"  # process A holds the recipient's lease
            [message] = await recipient.messages(1)
            assert message["payload"] == {"n": n}
            assert time.monotonic() - started < PUSHED_WITHIN_SECONDS
            await recipient.ack([message])


async def test_broadcast_reaches_sessions_on_every_process(two_processes):
    on_a, on_b = two_processes
    async with on_a.connect() as a1, on_a.connect() as a2, on_b.connect() as b1, on_b.connect() as sender:
        result = await sender.request({"type": "broadcast", "payload": {"hello": "everyone"}})
        assert result["result"]["counts"]["pushing"] >= 3
        for peer in (a1, a2, b1):
            [message] = await peer.messages(1)
            assert message["payload"] == {"hello": "everyone"}


async def test_presence_crosses_processes(two_processes):
    on_a, on_b = two_processes
    async with on_a.connect() as watcher:
        async with on_b.connect() as visitor:
            await watcher.next("session_joined", session_id=visitor.session_id)
        await watcher.next("session_left", session_id=visitor.session_id)


async def test_a_key_revoked_on_one_process_closes_its_socket_on_the_other(two_processes):
    on_a, on_b = two_processes
    key, key_id = new_agent_key(on_b)
    async with on_a.connect(key) as client:
        with on_b.rest(on_b.admin_key) as admin:
            assert admin.post(f"/api/v1/projects/alpha/keys/{key_id}/revoke/").status_code == 200
        await closed_for(client, "revoked_key")


async def test_a_key_revoked_on_one_process_is_refused_on_the_other_though_it_kept_the_key(two_processes):
    on_a, on_b = two_processes
    key, key_id = new_agent_key(on_a)
    with on_b.rest(key) as agent:
        assert agent.get("/api/v1/sessions/").status_code == 200  # B has read the key, and keeps it
        with on_a.rest(on_a.admin_key) as admin:
            assert admin.post(f"/api/v1/projects/alpha/keys/{key_id}/revoke/").status_code == 200
        async with asyncio.timeout(PUSHED_WITHIN_SECONDS):  # the event, not the cache's 600 s
            while agent.get("/api/v1/sessions/").status_code != 401:
                await asyncio.sleep(0.05)


async def test_a_keys_frame_budget_holds_across_processes(two_processes):
    on_a, on_b = two_processes
    key, _ = new_agent_key(on_a)
    with on_a.configured(rate_limit_per_minute=20):
        await minute_with_room()
        async with on_a.connect(key) as first, on_b.connect(key) as second:
            taken = 0
            for client in (first, second):
                for n in range(15):
                    await client.send({"type": "heartbeat", "request_id": n})
                answers = [await client.next(request_id=n) for n in range(15)]
                taken += sum(a["type"] == "result" for a in answers)
            assert taken <= 20 - 2  # the two hellos counted too
