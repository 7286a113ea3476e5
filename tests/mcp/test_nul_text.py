"""Text holding NUL (U+0000) is refused on /mcp with the SPEC error (PostgreSQL could not store it)."""

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.helpers import call


async def test_a_tool_call_holding_nul_is_refused_and_the_connection_keeps_working(live_broker):
    async with live_broker.client() as client:
        await call(client, "connect_session", name="nul-mcp")
        with pytest.raises(MCPError) as refused:
            await client.call_tool("send_message", {"recipient_id": "nul-mcp", "payload": {"t": "a\u0000"}})
        assert refused.value.error.data["error"] == "validation_error"
        assert refused.value.error.data["details"]["constraint"] == "no_nul"
        assert (await call(client, "heartbeat"))["status"] == "active"
