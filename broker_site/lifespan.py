"""Start-up and shutdown for every ASGI server, whatever it sends.

uvicorn sends lifespan events; daphne sends none. So the process's background work is
started both by the lifespan handler and by the first request, whichever comes first (the
start function must be idempotent), and stopped by the lifespan shutdown (daphne's own
shutdown path is in broker_site.startup). What starts and stops is broker_site.startup's
to say; this module only knows when.
"""

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("broker.lifespan")

Start = Callable[[], None]
Stop = Callable[[], Awaitable[None]]


class StartOnFirstRequest:
    """ASGI wrapper that makes sure the background work runs before it serves a request."""

    def __init__(self, app, start: Start) -> None:
        self.app, self.start = app, start

    async def __call__(self, scope, receive, send):
        self.start()
        return await self.app(scope, receive, send)


def lifespan_app(start: Start, stop: Stop):
    """The ASGI lifespan protocol: `start` on startup (a failure stops the server and says why), `stop` on shutdown."""

    async def lifespan(scope, receive, send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                try:
                    start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                try:
                    await stop()
                except Exception:
                    log.exception("shutdown failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    return lifespan
