"""The ceiling for bench/mcp_load.py: a bare MCPServer with no-op tools of the broker's names.

No authentication, no database, no broker code: the SDK's own Streamable HTTP app, configured
as the broker configures it (JSON answers, both protocol generations), answering
`connect_session`, `send_message` and `receive_messages` with small constant results. It runs
on the same ASGI server as the broker in the same run, so the ratio between them is the cost
of the broker's own code.

    python -m daphne bench.mcp_bare:application
    python -m uvicorn bench.mcp_bare:application --lifespan on
"""

import asyncio
import uuid
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

server = MCPServer(name="bare")


@server.tool()
async def connect_session(name: str) -> dict[str, Any]:
    return {"session_id": str(uuid.uuid4()), "name": name, "session_token": "t" * 43}


@server.tool()
async def send_message(recipient_id: str, payload: dict, session_token: str | None = None) -> dict[str, Any]:
    return {"message_id": f"msg_{uuid.uuid4().hex}", "status": "queued"}


@server.tool()
async def receive_messages(max: int = 10, auto_ack: bool = False, session_token: str | None = None) -> dict[str, Any]:
    return {"messages": [], "count": 0}


mcp_app = server.streamable_http_app(
    json_response=True, transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
_running: asyncio.Task | None = None
_ready = asyncio.Event()


async def _run() -> None:
    async with server.session_manager.run():
        _ready.set()
        await asyncio.Event().wait()


async def application(scope, receive, send) -> None:
    """/healthz for the harness; everything else to the SDK, whose session manager starts on the first request
    (daphne sends no lifespan events; under uvicorn the lifespan is answered and ignored)."""
    global _running
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if _running is None:
        _running = asyncio.get_running_loop().create_task(_run())
    await _ready.wait()
    await mcp_app(scope, receive, send)
