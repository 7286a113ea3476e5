"""An open socket lives only as long as its key may act: revoked, expired, rotated out (grace over) closes it with 4401."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import websockets

from devtools.live import manage, new_key

# The keep-alive checks the keys of every open socket every 5 s; generous for a loaded machine.
CLOSED_WITHIN = 30


def new_agent_key(live_broker, **fields) -> tuple[str, str]:
    """(key, key_id): a fresh agent key of project alpha, made over REST by its admin."""
    with live_broker.rest(live_broker.admin_key) as admin:
        created = admin.post("/api/v1/projects/alpha/keys/", json={"role": "agent", **fields})
        assert created.status_code == 201, created.text
    return created.json()["api_key"], created.json()["key_id"]


async def closed_for(client, reason: str) -> None:
    """The socket says why (an unauthorized error frame naming the reason), then closes with 4401."""
    refused = await client.next("error", timeout=CLOSED_WITHIN)
    assert (refused["error"], refused["details"]["reason"]) == ("unauthorized", reason)
    assert await close_code(client) == 4401


async def close_code(client) -> int:
    """Read (and drop) frames until the server closes the socket; its close code."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(CLOSED_WITHIN):
            while True:
                await client.connection.recv()
    return closed.value.rcvd.code


async def test_revoking_a_key_closes_its_open_socket(live_broker):
    key, key_id = new_agent_key(live_broker)
    async with live_broker.connect(key) as client, live_broker.connect() as bystander:
        assert (await client.request({"type": "heartbeat"}))["type"] == "result"
        with live_broker.rest(live_broker.admin_key) as admin:
            assert admin.post(f"/api/v1/projects/alpha/keys/{key_id}/revoke/").status_code == 200
        await closed_for(client, "revoked_key")
        assert (await bystander.request({"type": "heartbeat"}))["type"] == "result"  # another key's socket stays
    # The session was kept, for a resume with a key that may act.
    await live_broker.wait_for_status(client.session_id, "active")


async def test_a_rotated_key_closes_its_socket_when_the_grace_period_ends(live_broker):
    key, key_id = new_agent_key(live_broker)
    async with live_broker.connect(key) as client:
        with live_broker.rest(live_broker.admin_key) as admin:
            rotated = admin.post(f"/api/v1/projects/alpha/keys/{key_id}/rotate/", json={"grace_period_seconds": 1})
            assert rotated.status_code == 201, rotated.text
        await closed_for(client, "expired_key")
        async with live_broker.connect(rotated.json()["api_key"], session_id=client.session_id,
                                       session_token=client.token) as resumed:
            assert resumed.welcome["resumed"] is True


async def test_a_key_that_expires_closes_its_socket(live_broker):
    expires_at = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
    key, _ = new_agent_key(live_broker, expires_at=expires_at)
    async with live_broker.connect(key) as client:
        await closed_for(client, "expired_key")


async def test_an_operator_key_acting_in_a_project_closes_when_revoked(live_broker):
    env = live_broker.server.env
    key = new_key(env, "broker_key", "create", "--project", "beta", "--role", "operator")
    key_id = key.split("_")[1]
    async with live_broker.connect(key, project_id="alpha") as client:
        assert client.welcome["type"] == "welcome"
        await asyncio.to_thread(manage, env, "broker_key", "revoke", "--project", "beta", "--key-id", key_id)
        await closed_for(client, "revoked_key")
