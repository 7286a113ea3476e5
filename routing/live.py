"""This process's live WebSocket connections: kept alive in the database in one batch, shut down together.

A session with an open WebSocket needs no heartbeat frames: every KEEPALIVE_SECONDS this
process heartbeats all the sessions it holds, renews their push lease and reads their
projects' current settings, in three statements (1,000 sessions cost three, not 1,000).

Graceful shutdown: daphne (4.2) cancels every application on SIGTERM, but its own cancel
step fails with a KeyError as soon as one connection has no application (an idle HTTP
connection, or the HTTP side of a WebSocket upgrade), and then nothing waits for anyone.
So the start-up (broker_site.startup) registers its own "before shutdown" trigger with
Twisted, and Twisted waits for it before it closes any socket: every connection finishes
its in-flight frame, sends `server_shutdown`, and closes with 4503. Under uvicorn the
lifespan shutdown calls the same `shut_down_all`; uvicorn has already closed WebSockets
with 1012 (service restart) by then, and nothing is lost either way, since everything accepted is in the database.
"""

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Protocol

from django.utils import timezone

from broker_site.workers import db, urgent_lane
from projects.models import Project
from projects.selectors import projects_by_id
from sessions_app.services import sessions_keep_alive

log = logging.getLogger("broker.live")
KEEPALIVE_SECONDS = 5.0
LEASE_SECONDS = 3 * KEEPALIVE_SECONDS


class LiveConnection(Protocol):
    session_id: uuid.UUID | None
    project_id: str | None

    def session_renewed(self, now: datetime, project: Project | None) -> None: ...

    async def session_ended(self) -> None: ...

    async def shut_down(self) -> None: ...


def _renew(session_ids: list[uuid.UUID], project_ids: set[str]) -> tuple[set[uuid.UUID], dict[str, Project]]:
    return sessions_keep_alive(session_ids, LEASE_SECONDS), projects_by_id(project_ids)


class Registry:
    def __init__(self) -> None:
        self.open: set[LiveConnection] = set()
        self.stopping = False
        self._keepalive: asyncio.Task | None = None

    def add(self, connection: LiveConnection) -> None:
        """Count an open connection; call from inside the event loop."""
        self.open.add(connection)
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(), name="broker-keepalive")

    def discard(self, connection: LiveConnection) -> None:
        self.open.discard(connection)

    async def _keep_alive(self) -> None:
        """Renew every held session; hand each connection its project's current settings; end the gone ones.

        A disconnect made elsewhere (an admin, a deactivated project) also sends an event that
        closes the socket at once; this catches the ones whose event the layer lost.
        """
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            held = [c for c in self.open if c.session_id is not None]
            if not held:
                continue
            try:
                now = timezone.now()
                live, projects = await db(_renew, urgent_lane)(list({c.session_id for c in held}),
                                                               {c.project_id for c in held})
            except Exception:
                log.exception("keep-alive failed; trying again next interval")
                continue
            gone = []
            for connection in held:
                if connection.session_id in live:
                    connection.session_renewed(now, projects.get(connection.project_id))
                elif connection in self.open:
                    gone.append(connection.session_ended())
            await asyncio.gather(*gone, return_exceptions=True)

    async def shut_down_all(self) -> None:
        """Stop taking connections and frames; let each open one finish, say goodbye and close."""
        self.stopping = True
        if self.open:
            log.info("server_shutdown", extra={"connections": len(self.open)})
            await asyncio.gather(*(c.shut_down() for c in list(self.open)), return_exceptions=True)


connections = Registry()
