"""Process start-up work for every ASGI server.

uvicorn sends lifespan events; daphne sends none. So background work (the sweeper, later
the MCP session manager) is started by `ensure_background_started`, which both the lifespan
handler and the first request call; each starter is idempotent.
"""

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("broker.lifespan")

Starter = Callable[[], None]
Hook = Callable[[], Awaitable[None]]
background_starters: list[Starter] = []
shutdown_hooks: list[Hook] = []


def ensure_background_started() -> None:
    for start in background_starters:
        start()


class StartBackgroundOnFirstRequest:
    """ASGI wrapper that makes sure background work runs before it serves a request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        ensure_background_started()
        return await self.app(scope, receive, send)


async def lifespan(scope, receive, send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            try:
                ensure_background_started()
            except Exception as exc:  # a failed startup must say why and stop the server
                log.exception("startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            for hook in shutdown_hooks:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            await send({"type": "lifespan.shutdown.complete"})
            return
