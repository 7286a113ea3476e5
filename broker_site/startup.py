"""What a server process runs beside its requests, started and stopped here and nowhere else.

Called by the ASGI wiring (broker_site.asgi): `start_background` from the lifespan startup
(uvicorn) and before every request (daphne sends no lifespan events; each step is idempotent),
`stop_background` from the lifespan shutdown, and, under daphne, from Twisted's own shutdown.
"""

import asyncio
import sys

from broker_site.mcp.inbox_push import subscriptions
from broker_site.mcp.server import ensure_mcp_running, stop_mcp
from routing.hub import hub
from routing.live import connections
from routing.sweeper import ensure_sweeper_running

_twisted_trigger_added = False


def start_background() -> None:
    """In the server's event loop: bind the hub to it, start the sweeper and the MCP session manager."""
    hub.start()
    ensure_sweeper_running()
    ensure_mcp_running()
    _on_twisted_shutdown()


async def stop_background() -> None:
    """Say goodbye to every WebSocket, end the MCP inbox subscriptions, stop the MCP session manager."""
    await connections.shut_down_all()
    await subscriptions.close_all()
    await stop_mcp()


def _on_twisted_shutdown() -> None:
    """Under daphne: let Twisted wait for the WebSockets' goodbyes before it closes any socket (routing.live).

    daphne (4.2) cancels every application on SIGTERM, but its own cancel step fails as soon as
    one connection has no application, and then nothing waits for anyone.
    """
    global _twisted_trigger_added
    if _twisted_trigger_added or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor  # the reactor daphne installed; never install one here

    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: defer.Deferred.fromFuture(asyncio.ensure_future(connections.shut_down_all())))
    _twisted_trigger_added = True
