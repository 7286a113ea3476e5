"""When Redis goes away the broker keeps accepting and delivering, and push comes back with Redis.

The test runs a Redis server of its own on another port and stops it: the machine's shared
Redis is never touched.
"""

import asyncio
import shutil
import subprocess

import pytest

from devtools.live import free_port, keys_made, throwaway_database
from tests.websocket.conftest import LiveBroker, serve, stack_from_environment, uses_postgres_and_redis

pytestmark = pytest.mark.skipif(not uses_postgres_and_redis() or not shutil.which("redis-server"),
                                reason="needs PostgreSQL and a redis-server binary: the .ci/run second pass")


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                return
            subprocess.run(["sleep", "0.05"])
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def broker_on_own_redis(tmp_path):
    redis = OwnRedis(free_port())
    redis.start()
    with throwaway_database(stack_from_environment()["database_url"], prefix="broker_ws") as url:
        server, env = serve(tmp_path, url, redis.url, migrate=False)
        admin_key, agent_key, operator_key = keys_made(
            env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
            ["broker_key", "create", "--project", "alpha", "--role", "agent"],
            ["broker_key", "create", "--project", "alpha", "--role", "operator"])
        server.start()
        try:
            yield LiveBroker(server, admin_key, agent_key, ""), redis, operator_key
        finally:
            server.stop()
            redis.stop()


async def wait_for_log(broker: LiveBroker, text: str, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while text not in broker.server.log_text():
            await asyncio.sleep(0.1)


async def test_sends_are_delivered_through_a_redis_outage_and_push_resumes(broker_on_own_redis):
    broker, redis, operator_key = broker_on_own_redis
    async with broker.connect() as recipient, broker.connect() as sender:
        before = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 0}})
        assert before["type"] == "result"
        await recipient.ack(await recipient.messages(1))

        redis.stop()
        during = []
        for n in range(1, 4):
            answer = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": n}})
            assert answer["type"] == "result", answer  # accepted and persisted without Redis
            during.append(answer["result"]["message_id"])
        # Delivered from the database by the consumer's short poll.
        received = await recipient.messages(3, timeout=15)
        assert sorted(m["message_id"] for m in received) == sorted(during)
        await recipient.ack(received)
        # The hub's own notice of the outage (its probe did not come back), not a publisher's: only
        # after it does the hub have an outage to come back from.
        await wait_for_log(broker, '"event": "push_fallback", "sessions"')
        with broker.rest(operator_key) as rest:  # and counted, for the operators' alert (deploy/alerts.yml)
            scraped = rest.get("/metrics").text
        assert 'broker_push_fallbacks_total{where="listen"} 1.0' in scraped, scraped[-3000:]
        # A REST send during the outage is accepted too (the rate limit fails open, logged).
        with broker.rest(session_token=sender.token) as rest:
            response = rest.post("/api/v1/messages/", json={"recipient_id": recipient.session_id, "payload": {"n": 4}})
            assert response.status_code == 201, response.text
        [by_rest] = await recipient.messages(1, timeout=15)
        assert by_rest["payload"] == {"n": 4}
        await recipient.ack([by_rest])

        redis.start()
        await wait_for_log(broker, "push_resumed")
        after = await sender.request({"type": "send", "recipient_id": recipient.session_id, "payload": {"n": 5}})
        assert after["type"] == "result"
        [message] = await recipient.messages(1, timeout=10)
        assert message["payload"] == {"n": 5}
    assert "Traceback" not in broker.server.log_text()
