"""ASGI lifespan handler. Servers that send lifespan events (uvicorn) run the hooks here;
daphne sends none, so every hook must also start lazily on first use."""

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("broker.lifespan")

Hook = Callable[[], Awaitable[None]]
startup_hooks: list[Hook] = []
shutdown_hooks: list[Hook] = []


async def lifespan(scope, receive, send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            try:
                for hook in startup_hooks:
                    await hook()
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
