"""What a server process runs beside its requests, started and stopped here and nowhere else.

Called by the ASGI wiring (broker_site.asgi): `start_background` from the lifespan startup
(uvicorn) and before every request (daphne sends no lifespan events; each step is idempotent),
`stop_background` from the lifespan shutdown, and, under daphne, from Twisted's own shutdown.
"""

import asyncio
import gc
import logging
import os
import sys
import threading

from django.conf import settings

from broker_site import counters
from broker_site.mcp.inbox_push import subscriptions
from broker_site.mcp.server import ensure_mcp_running, stop_mcp
from routing.hub import hub
from routing.live import connections
from routing.sweeper import ensure_sweeper_running

log = logging.getLogger("broker.startup")
_twisted_trigger_added = False
_heap_frozen = False
# Beyond the grace period: closing handshakes, the MCP session manager's own stop, the interpreter's exit.
STOP_MARGIN_SECONDS = 4


def start_background() -> None:
    """In the server's event loop: bind the hub to it, start the sweeper and the MCP session manager."""
    hub.start()
    ensure_sweeper_running()
    ensure_mcp_running()
    _on_twisted_shutdown()
    freeze_heap_once()


def freeze_heap_once() -> None:
    """What is loaded by now (Django, the apps, the libraries: most of the heap, and it lives as long as the
    process) leaves the collector's view. Each full collection walked all of it: 150-480 ms with 1,000
    sockets open, every push waiting meanwhile (the p99 at 40 msg/s was 840 ms); now 40-60 ms. Garbage
    made later is collected as before. Once per process: daphne starts the background before every
    request, and a full collection per request was 3 % of a busy MCP server's time."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


async def stop_background() -> None:
    """Say goodbye to every WebSocket, end the MCP inbox subscriptions, stop the MCP session manager.

    Each step runs even if the one before failed.
    """
    for step in (connections.shut_down_all, subscriptions.close_all, stop_mcp):
        try:
            await step()
        except Exception:
            log.exception("shutdown step failed", extra={"step": step.__qualname__})
    counters.process_gone()


def _exit_when_overdue(seconds: float) -> None:
    """The last resort of a stop (under daphne, from SIGTERM): end the process if it is still here after `seconds`.

    The interpreter's exit waits for every non-daemon thread, and libraries start some the
    broker cannot end (an AnyIO worker thread, for one, ends only with the task it was started
    under). A daemon timer does not hold the exit up itself; it names what did, then exits.
    """
    def overdue() -> None:
        held = sorted(t.name for t in threading.enumerate()
                      if not t.daemon and t is not threading.main_thread() and t.is_alive())
        log.error("shutdown_overdue", extra={"seconds": seconds, "threads": held})
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, overdue)
    timer.daemon = True
    timer.name = "broker-stop-deadline"
    timer.start()


def _on_twisted_shutdown() -> None:
    """Under daphne: run the stop before Twisted closes any socket, and let it wait for the stop.

    daphne sends no lifespan shutdown. It (4.2) cancels every application on SIGTERM, but its
    own cancel step fails as soon as one connection has no application, and then nothing waits
    for anyone: the WebSockets' goodbyes (routing.live) would be cut off. And the MCP session
    manager has to stop here too: the SDK reads a resource on an AnyIO worker thread, a
    non-daemon thread that ends only when the manager's task does; left running, the process
    would wait for that thread for ever after daphne is done.
    """
    global _twisted_trigger_added
    if _twisted_trigger_added or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor  # the reactor daphne installed; never install one here

    def stop() -> defer.Deferred:
        # Whatever hangs (this stop, or a thread the exit waits for), the process ends in time.
        _exit_when_overdue(settings.BROKER["SHUTDOWN_GRACE_SECONDS"] + STOP_MARGIN_SECONDS)
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop_background()))

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    _twisted_trigger_added = True
