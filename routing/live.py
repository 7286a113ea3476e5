"""This process's live WebSocket connections: kept alive in the database in one batch, shut down together.

A session with an open WebSocket needs no heartbeat frames: every KEEPALIVE_SECONDS this
process heartbeats all the sessions it holds, and renews their push lease, in one UPDATE
(1,000 sessions cost one statement, not 1,000).

Graceful shutdown: daphne (4.2) cancels every application on SIGTERM, but its own cancel
step fails with a KeyError as soon as one connection has no application (an idle HTTP
connection, or the HTTP side of a WebSocket upgrade), and then nothing waits for anyone.
So on the first connection this process registers its own "before shutdown" trigger with
Twisted, and Twisted waits for it before it closes any socket: every connection finishes
its in-flight frame, sends `server_shutdown`, and closes with 1012. Under uvicorn the
lifespan shutdown calls the same `shut_down_all`; uvicorn has already closed WebSockets
with 1012 by then, and nothing is lost either way, since everything accepted is in the database.
"""

import asyncio
import logging
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from broker_site.lifespan import shutdown_hooks
from sessions_app.services import sessions_keep_alive

log = logging.getLogger("broker.live")
KEEPALIVE_SECONDS = 5.0
LEASE_SECONDS = 3 * KEEPALIVE_SECONDS

# Consumers' database work runs here rather than on the process's one shared sync thread, so
# a thousand sockets do not queue behind each other; its size bounds their database connections.
db_executor = ThreadPoolExecutor(max_workers=settings.BROKER["DB_THREADS"], thread_name_prefix="broker-db")


def db(fn):
    """`fn` as a coroutine on the consumers' pool; stale connections are closed around each call."""
    return database_sync_to_async(fn, thread_sensitive=False, executor=db_executor)


class LiveConnection(Protocol):
    session_id: uuid.UUID | None

    async def shut_down(self) -> None: ...


class Registry:
    def __init__(self) -> None:
        self.open: set[LiveConnection] = set()
        self.stopping = False
        self._keepalive: asyncio.Task | None = None
        self._trigger_added = False

    def add(self, connection: LiveConnection) -> None:
        """Count an open connection; call from inside the event loop."""
        self.open.add(connection)
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(), name="broker-keepalive")
        self._add_shutdown_trigger()

    def discard(self, connection: LiveConnection) -> None:
        self.open.discard(connection)

    def session_ids(self) -> list[uuid.UUID]:
        return list({c.session_id for c in self.open if c.session_id is not None})

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            held = self.session_ids()
            if not held:
                continue
            try:
                await db(sessions_keep_alive)(held, LEASE_SECONDS)
            except Exception:
                log.exception("keep-alive failed; trying again next interval")

    async def shut_down_all(self) -> None:
        """Stop taking connections and frames; let each open one finish, say goodbye and close."""
        self.stopping = True
        if self.open:
            log.info("server_shutdown", extra={"connections": len(self.open)})
            await asyncio.gather(*(c.shut_down() for c in list(self.open)), return_exceptions=True)

    def _add_shutdown_trigger(self) -> None:
        if self._trigger_added or "twisted.internet.reactor" not in sys.modules:
            return
        from twisted.internet import defer, reactor

        reactor.addSystemEventTrigger("before", "shutdown",
                                      lambda: defer.Deferred.fromFuture(asyncio.ensure_future(self.shut_down_all())))
        self._trigger_added = True


connections = Registry()
shutdown_hooks.append(connections.shut_down_all)
