"""/metrics of a live broker: what its WebSocket face counted (in prometheus-client's multi-process mode), and
its gauges of open MCP sessions and waiting long polls."""

import asyncio
import json

import httpx
import httpx2
import websockets
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from tests.live import live_broker


def _scrape(url: str, key: str) -> dict[tuple[str, tuple], float]:
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


async def _hello(ws_url: str, key: str, name: str):
    socket = await websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"})
    await socket.send(json.dumps({"type": "hello", "name": name}))
    while json.loads(await socket.recv())["type"] != "welcome":
        pass
    return socket


async def _next_message(socket) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 15))
        if frame["type"] == "message":
            return frame["message"]


async def test_a_push_is_counted_with_its_latency_rounds_and_connections(tmp_path):
    counted = tmp_path / "prometheus"
    counted.mkdir()
    with live_broker(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(counted)) as live:
        sender = await _hello(live.server.ws_url, live.alpha_agent, "sender")
        recipient = await _hello(live.server.ws_url, live.alpha_agent, "recipient")
        await sender.send(json.dumps({"type": "send", "recipient_id": "recipient", "payload": {"n": 1}}))
        pushed = await _next_message(recipient)
        await recipient.send(json.dumps({"type": "ack", "message_ids": [pushed["message_id"]], "request_id": "a"}))
        while json.loads(await asyncio.wait_for(recipient.recv(), 15)).get("request_id") != "a":
            pass
        samples = _scrape(live.url, live.operator)
        await sender.close()
        await recipient.close()

    assert any(counted.glob("*.db")), "multi-process mode keeps its counts in files"
    assert samples[("broker_websocket_connections", ())] == 2
    assert samples[("broker_sessions_on_websocket", (("project", "alpha"),))] == 2
    assert samples[("broker_send_to_push_seconds_count", ())] == 1
    assert samples[("broker_message_events_total", (("event", "sent"), ("project", "alpha")))] == 1
    assert samples[("broker_message_events_total", (("event", "delivered"), ("project", "alpha")))] == 1
    assert samples[("broker_message_events_total", (("event", "acked"), ("project", "alpha")))] == 1
    assert samples[("broker_requests_total", (("code", "ok"), ("face", "websocket"), ("project", "alpha")))] >= 4
    assert samples[("broker_db_round_size_count", (("operation", "send"),))] >= 1
    assert samples[("broker_db_round_size_count", (("operation", "claim"),))] >= 1
    # What the database holds, beside what the process did.
    assert samples[("broker_messages", (("project", "alpha"), ("state", "acked")))] == 1


async def test_open_mcp_sessions_and_waiting_long_polls_are_gauged(tmp_path):
    with live_broker(tmp_path) as live:
        headers = {"Authorization": f"Bearer {live.alpha_agent}"}
        http = httpx2.AsyncClient(headers=headers, timeout=30)
        async with http, Client(streamable_http_client(f"{live.url}/mcp", http_client=http), mode="legacy") as mcp:
            await mcp.call_tool("heartbeat", {})  # the session-based connection is open; no broker session needed
            async with httpx.AsyncClient(base_url=f"{live.url}/api/v1", headers=headers, timeout=30) as rest:
                token = (await rest.post("/sessions/", json={"name": "poller"})).json()["session_token"]
                waiting = asyncio.create_task(rest.post("/messages/receive/", json={"wait_seconds": 10},
                                                        headers={"X-Session-Token": token}))
                for _ in range(50):  # until the poll is waiting
                    samples = await asyncio.to_thread(_scrape, live.url, live.operator)
                    if samples[("broker_long_polls_waiting", ())] == 1:
                        break
                    await asyncio.sleep(0.1)
                waiting.cancel()
        assert samples[("broker_long_polls_waiting", ())] == 1
        assert samples[("broker_mcp_sessions", ())] == 1
        after = await asyncio.to_thread(_scrape, live.url, live.operator)
        assert after[("broker_mcp_sessions", ())] == 0  # the client closed its session (DELETE /mcp)
