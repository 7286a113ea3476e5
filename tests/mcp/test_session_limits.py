"""One key (or one project) cannot fill the MCP session pool: past its cap an initialize is refused with
`limit_reached`, everyone else still gets in, and a session that ends or idles out frees its place."""

import asyncio
import time
import uuid

import httpx2
import pytest

from broker_site.errors import LimitReached
from broker_site.mcp.binding import bindings
from broker_site.mcp.session_limits import SessionLimits
from tests.mcp.conftest import serve_live_broker
from tests.mcp.helpers import call

PER_KEY, PER_PROJECT, IDLE = 3, 4, 10


@pytest.fixture(scope="module")
def capped_broker(tmp_path_factory):
    yield from serve_live_broker(tmp_path_factory, BROKER_MCP_SESSIONS_PER_KEY=str(PER_KEY),
                                 BROKER_MCP_SESSIONS_PER_PROJECT=str(PER_PROJECT),
                                 BROKER_MCP_SESSION_IDLE_SECONDS=str(IDLE))


async def _initialize(broker, key: str) -> httpx2.Response:
    """A bare initialize, as a session-based client opens its session (kept open: no DELETE follows)."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        return await http.post(broker.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})


async def _delete(broker, key: str, opened: httpx2.Response) -> None:
    headers = {"Authorization": f"Bearer {key}", "Mcp-Session-Id": opened.headers["mcp-session-id"],
               "MCP-Protocol-Version": "2025-06-18"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        assert (await http.delete(broker.url)).status_code == 200


def _refused(response: httpx2.Response, per: str, limit: int) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "limit_reached" and set(body) == {"error", "message", "details"}
    assert body["details"]["per"] == per and body["details"]["limit"] == limit


async def test_one_key_is_capped_and_another_project_still_gets_in(capped_broker):
    broker = capped_broker
    mine = [await _initialize(broker, broker.agent_key) for _ in range(PER_KEY)]
    assert all(r.status_code == 200 and r.headers["mcp-session-id"] for r in mine)

    _refused(await _initialize(broker, broker.agent_key), "key", PER_KEY)
    with pytest.raises(Exception):  # the official client is refused the same way
        async with broker.client():
            pass

    # Another project's key, and the official client, on either protocol, are not affected.
    async with broker.client(broker.other_project_key) as other:
        assert (await call(other, "connect_session", name="other"))["bound"]
    async with broker.client(broker.agent_key, mode="auto") as stateless:  # opens no session: not capped
        assert not (await call(stateless, "connect_session", name="stateless"))["bound"]

    # The project's cap counts every key of it: the admin key gets the one place left.
    assert (await _initialize(broker, broker.admin_key)).status_code == 200
    _refused(await _initialize(broker, broker.admin_key), "project", PER_PROJECT)

    # A session that ends frees its place.
    await _delete(broker, broker.agent_key, mine[0])
    again = await _initialize(broker, broker.admin_key)
    assert again.status_code == 200
    await _delete(broker, broker.admin_key, again)


async def test_an_idle_session_expires_and_frees_its_place(capped_broker):
    broker = capped_broker
    key = broker.other_project_key
    while (await _initialize(broker, key)).status_code == 200:  # fill the key (none of these is ever closed)
        pass
    deadline = time.monotonic() + IDLE + 60
    while (response := await _initialize(broker, key)).status_code != 200:
        _refused(response, "key", PER_KEY)
        assert time.monotonic() < deadline, "idle sessions were never closed"
        await asyncio.sleep(1)


def test_a_session_that_ends_frees_its_place_and_its_binding():
    limits = SessionLimits(per_key=1, per_project=5)
    limits.admit("alpha_k1", "alpha")
    limits.opened("mcp-1", "alpha_k1", "alpha")
    bindings.bind("mcp-1", "alpha", uuid.uuid4())
    with pytest.raises(LimitReached):
        limits.admit("alpha_k1", "alpha")
    limits.closed("mcp-1")
    limits.closed("mcp-1")  # the SDK may discard a session twice: counted once
    assert bindings.lookup("mcp-1", "alpha") is None
    limits.admit("alpha_k1", "alpha")
