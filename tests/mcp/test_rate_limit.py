"""An MCP call counts in its key's one rate window, with the key's REST calls and sockets; past the
project's limit it is refused with `rate_limited` (HTTP 429, the SPEC shape, and retry_after), and
the project's other keys go on."""

import httpx
import pytest

from tests.mcp.helpers import call
from tests.websocket.test_rate_limit import minute_with_room

LIMIT = 20


def _rest(broker, key: str) -> httpx.Client:
    return httpx.Client(base_url=broker.process.http_url + "/api/v1", headers={"Authorization": f"Bearer {key}"},
                        timeout=30)


@pytest.fixture
def limited_key(live_broker):
    """A fresh agent key of project alpha, whose limit is LIMIT a minute for the test."""
    with _rest(live_broker, live_broker.admin_key) as admin:
        key = admin.post("/projects/alpha/keys/", json={"role": "agent"}).json()["api_key"]
        before = admin.get("/projects/alpha/", params={"include_config": "true"}).json()["config"]["rate_limit_per_minute"]
        assert admin.patch("/projects/alpha/", json={"rate_limit_per_minute": LIMIT}).status_code == 200
        yield key
        assert admin.patch("/projects/alpha/", json={"rate_limit_per_minute": before}).status_code == 200


async def test_mcp_calls_share_the_keys_window_with_rest_and_are_refused_past_it(live_broker, limited_key):
    await minute_with_room()
    served, refused = 0, []
    async with live_broker.client(limited_key, mode="auto") as agent:  # the official client, stateless
        for _ in range(LIMIT + 5):
            try:
                await call(agent, "list_sessions")
                served += 1
            except Exception as exc:  # the HTTP 429 reaches the client as an error
                refused.append(exc)
    assert 0 < served <= LIMIT and refused
    async with httpx.AsyncClient(timeout=30) as http:  # what the wire says: refused before any MCP handling
        answer = await http.post(live_broker.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                 headers={"Authorization": f"Bearer {limited_key}"})
    assert answer.status_code == 429
    body = answer.json()
    assert body["error"] == "rate_limited" and set(body) == {"error", "message", "details"}
    assert 0 < body["details"]["retry_after"] <= 60
    with _rest(live_broker, limited_key) as rest:  # the same window: REST is refused too
        assert rest.get("/sessions/").status_code == 429
    async with live_broker.client() as neighbour:  # another key of the project is not
        assert "sessions" in await call(neighbour, "list_sessions")
