"""What a server process runs beside its requests, started and stopped here and nowhere else.

Called by the ASGI wiring (broker_site.asgi): `start_background` from the lifespan startup
(uvicorn, granian) and before every request (daphne sends no lifespan events; each step is
idempotent), `stop_background` before the server closes its sockets (under daphne, from
Twisted's own shutdown; under uvicorn, from its SIGTERM handler, which is handed the signal once
the stop is done), and again, doing nothing more, from the lifespan shutdown.
"""

import asyncio
import gc
import logging
import os
import signal
import sys
import threading

from django.conf import settings

from broker_site import counters
from broker_site.mcp.inbox_push import subscriptions
from broker_site.mcp.server import ensure_mcp_running, stop_mcp
from broker_site.sweeper import ensure_sweeper_running
from routing.hub import hub
from routing.live import connections
from routing.receive import waiting

log = logging.getLogger("broker.startup")
_twisted_trigger_added = False
_signals_hooked = False
_stopping: asyncio.Task | None = None
_heap_frozen = False
# Beyond the grace period: closing handshakes, the MCP session manager's own stop, the interpreter's exit.
STOP_MARGIN_SECONDS = 4


def start_background() -> None:
    """In the server's event loop: bind the hub to it, start the sweeper and the MCP session manager."""
    hub.start()
    ensure_sweeper_running()
    ensure_mcp_running()
    _on_twisted_shutdown()
    _stop_before_the_server_does()
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
    """Answer the waiting receives (long polls, MCP), say goodbye to every WebSocket, end the MCP inbox
    subscriptions, stop the MCP session manager.

    Each step runs even if the one before failed. Once per process: a second call waits for the first.
    """
    global _stopping
    if _stopping is None:
        _stopping = asyncio.ensure_future(_stop_steps())
    await asyncio.shield(_stopping)


async def _stop_steps() -> None:
    for step in (_receives_answered, connections.shut_down_all, subscriptions.close_all, stop_mcp):
        try:
            await step()
        except Exception:
            log.exception("shutdown step failed", extra={"step": step.__qualname__})
    counters.process_gone()


async def _receives_answered() -> None:
    waiting.answer_all()


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

    if not reactor.running:  # imported (daphne is an installed app), but another server is serving
        return

    def stop() -> defer.Deferred:
        # Whatever hangs (this stop, or a thread the exit waits for), the process ends in time.
        _exit_when_overdue(settings.BROKER["SHUTDOWN_GRACE_SECONDS"] + STOP_MARGIN_SECONDS)
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop_background()))

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    _twisted_trigger_added = True


def _stop_before_the_server_does() -> None:
    """Under uvicorn (a server that stops from a Python signal handler): run the stop before the server's own.

    On SIGTERM uvicorn closes every WebSocket itself (1012) and waits for open requests (an MCP
    stream, a long poll) before it sends the lifespan shutdown: the goodbyes (server_shutdown, 4503)
    would never be said and the streams would hold the stop up. So the server's handler is wrapped:
    the signal starts the stop, and the server gets the signal once the stop is done (a second
    SIGINT, Ctrl-C twice, goes to the server at once). Only uvicorn's handler is wrapped: daphne's
    stop is Twisted's (see above), and granian stops its own I/O on the signal, so frames in hand
    could not finish there (it stops as its own shutdown says: 1012, nothing lost).
    """
    global _signals_hooked
    if _signals_hooked or _twisted_trigger_added or threading.current_thread() is not threading.main_thread():
        return
    _signals_hooked = True
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        server_handler = signal.getsignal(signum)
        if type(getattr(server_handler, "__self__", None)).__module__.startswith("uvicorn."):
            signal.signal(signum, _stop_then(loop, server_handler))


def _stop_then(loop: asyncio.AbstractEventLoop, server_handler):
    def on_signal(signum, frame) -> None:
        if _stopping is not None:  # asked again: the server's own way (uvicorn: a second Ctrl-C forces the exit)
            server_handler(signum, frame)
            return
        _exit_when_overdue(settings.BROKER["SHUTDOWN_GRACE_SECONDS"] + STOP_MARGIN_SECONDS)

        def start() -> None:
            stop = asyncio.ensure_future(stop_background())
            stop.add_done_callback(lambda _: server_handler(signum, frame))

        loop.call_soon_threadsafe(start)
    return on_signal
