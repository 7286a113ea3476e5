"""A receive whose client has gone claims nothing: the mail waits for the next receive, attempts untouched.

The client gives up on a long `receive_messages` (a timeout, as when a user presses Esc during
a wait); then a message is sent. On the session-based protocol the official client says so
with `notifications/cancelled`; on the current (stateless) one it closes the POST, which the
server sees as an HTTP disconnect; a client that vanishes without a word is an HTTP disconnect
on either. Whichever it is, the abandoned wait must not take the message.
"""

import asyncio
import json

import httpx2
import pytest

from tests.mcp.helpers import call

WAIT = 8  # the abandoned wait is still open on the server when the message comes


async def _sent_during_an_abandoned_wait(live_broker, receiver_token: str, sender) -> str:
    await asyncio.sleep(1.5)  # the server has noticed the client went (or never will)
    sent = await call(sender, "send_message", recipient_id=receiver_token, payload={"n": 1})
    return sent["message_id"]


async def _fresh_receive(live_broker, token: str, auto_ack: bool) -> dict:
    async with live_broker.client(mode="auto") as again:
        return await call(again, "receive_messages", session_token=token, wait_seconds=5, auto_ack=auto_ack)


async def _check_delivered_once(live_broker, sender, message_id: str, token: str, auto_ack: bool) -> None:
    got = await _fresh_receive(live_broker, token, auto_ack)
    assert [m["message_id"] for m in got["messages"]] == [message_id], got
    # The abandoned wait burned no attempt: this is the first delivery.
    assert got["messages"][0]["attempts"] == 1
    receipt = await call(sender, "get_message_status", message_id=message_id)
    assert receipt["state"] == ("acked" if auto_ack else "delivered") and receipt["attempts"] == 1


@pytest.mark.parametrize("auto_ack", [True, False], ids=["auto_ack", "manual_ack"])
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_receive_the_client_gave_up_on_claims_nothing(live_broker, mode, auto_ack):
    name = f"gave-up-{mode}-{auto_ack}"
    async with live_broker.client(mode=mode) as receiver, live_broker.client() as sender:
        connected = await call(receiver, "connect_session", name=name)
        await call(sender, "connect_session", name=f"{name}-sender")
        with pytest.raises(Exception):  # the client's own timeout: it stops waiting and says so its way
            await receiver.call_tool("receive_messages", {"wait_seconds": WAIT, "auto_ack": auto_ack,
                                                          "session_token": connected["session_token"]},
                                     read_timeout_seconds=1)
        message_id = await _sent_during_an_abandoned_wait(live_broker, name, sender)
        await _check_delivered_once(live_broker, sender, message_id, connected["session_token"], auto_ack)


def _rpc(method: str, params: dict, request_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


@pytest.mark.parametrize("auto_ack", [True, False], ids=["auto_ack", "manual_ack"])
async def test_a_session_based_client_that_vanishes_mid_wait_takes_nothing(live_broker, auto_ack):
    """No notifications/cancelled, just a closed connection: only the HTTP disconnect tells the server."""
    name = f"vanished-{auto_ack}"
    headers = {"Authorization": f"Bearer {live_broker.agent_key}", "Accept": "application/json, text/event-stream"}
    async with live_broker.client() as sender, httpx2.AsyncClient(headers=headers, timeout=30) as http:
        opened = await http.post(live_broker.url, json=_rpc("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}, 1))
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
        await http.post(live_broker.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                        headers=session)
        connected = await http.post(live_broker.url, headers=session, json=_rpc(
            "tools/call", {"name": "connect_session", "arguments": {"name": name}}, 2))
        token = json.loads(connected.json()["result"]["content"][0]["text"])["session_token"]
        await call(sender, "connect_session", name=f"{name}-sender")
        with pytest.raises(httpx2.TimeoutException):  # the connection is dropped, nothing else is said
            await http.post(live_broker.url, headers=session, timeout=1, json=_rpc(
                "tools/call", {"name": "receive_messages", "arguments": {"wait_seconds": WAIT, "auto_ack": auto_ack}},
                3))
        message_id = await _sent_during_an_abandoned_wait(live_broker, name, sender)
        await _check_delivered_once(live_broker, sender, message_id, token, auto_ack)
