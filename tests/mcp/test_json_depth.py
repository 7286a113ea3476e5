"""JSON nested deeper than BROKER_MAX_JSON_DEPTH (64) is refused on /mcp with the SPEC error, as a JSON-RPC error."""

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.helpers import call

LIMIT = 64
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_very_deep_request_is_a_json_rpc_error_carrying_validation_error(live_broker, depth):
    # Before the broker's own check, the SDK answered these with a bare parse error (no structured error).
    body = ('{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "send_message", '
            '"arguments": {"recipient_id": "x", "payload": {"a": ' + deep_text(depth) + "}}}}")
    answer = httpx.post(live_broker.url, content=body, timeout=30,
                        headers={**HEADERS, "Authorization": f"Bearer {live_broker.agent_key}"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["data"]["error"] == "validation_error"
    assert error["data"]["details"]["limit"] == LIMIT


@pytest.mark.parametrize("depth", [LIMIT, 150])
async def test_the_sdk_client_gets_the_structured_error_and_the_connection_keeps_working(live_broker, depth):
    # Shallower than the SDK's own parser refuses: before the broker's check, this was sent.
    deep = {}
    for _ in range(depth):
        deep = {"a": deep}
    async with live_broker.client() as client:
        await call(client, "connect_session", name=f"deep-sender-{depth}")
        with pytest.raises(MCPError) as refused:
            await client.call_tool("send_message", {"recipient_id": f"deep-sender-{depth}", "payload": deep})
        assert refused.value.error.data["error"] == "validation_error"
        assert (await call(client, "heartbeat"))["status"] == "active"


def test_a_bad_key_is_refused_before_the_body_is_read(live_broker):
    answer = httpx.post(live_broker.url, content="[" * 100_000, headers={**HEADERS, "Authorization": "Bearer nope"})
    assert answer.status_code == 401
