"""This process's live WebSocket connections: kept alive in the database in one batch, shut down together.

A session with an open WebSocket needs no heartbeat frames: every KEEPALIVE_SECONDS this
process heartbeats all the sessions it holds, renews their push lease, reads their
projects' current settings, checks that the keys they authenticated with still may act
(revoked, expired, a rotated key past its grace, an inactive project: the socket closes with
4401), and finds the sessions with mail queued for over a second, whose wake-up event the
layer may have dropped (both layers are at-most-once), in three statements: 1,000 sessions
cost three, not 1,000, and an idle socket costs nothing of its own. Expiry and a grace's end
announce themselves to no one, and a revocation made by another process is seen here too.

Graceful shutdown: daphne (4.2) cancels every application on SIGTERM, but its own cancel
step fails with a KeyError as soon as one connection has no application (an idle HTTP
connection, or the HTTP side of a WebSocket upgrade), and then nothing waits for anyone.
So the start-up (broker_site.startup) registers its own "before shutdown" trigger with
Twisted, and Twisted waits for it before it closes any socket: every connection finishes
its in-flight frame, sends `server_shutdown`, and closes with 4503. Under uvicorn the same
stop runs from its SIGTERM handler, before uvicorn closes anything (broker_site.startup); granian
closes WebSockets itself with 1012 (service restart). Nothing is lost either way, since
everything accepted is in the database.
"""

import asyncio
import functools
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from autobahn.websocket.protocol import WebSocketServerProtocol
from django.utils import timezone

from broker_site import counters
from broker_site.workers import db, urgent_lane
from projects.auth import callers_refused
from projects.models import Project
from projects.selectors import projects_by_id
from routing.statements import sessions_renewed

log = logging.getLogger("broker.live")
KEEPALIVE_SECONDS = 5.0
LEASE_SECONDS = 3 * KEEPALIVE_SECONDS
# Mail younger than this has its event on the way (or its socket busy claiming it): no extra wake-up.
MAIL_WAITING_SECONDS = 1.0


class LiveConnection(Protocol):
    session_id: uuid.UUID | None
    project_id: str | None
    key_pk: int | None  # the API key the connection authenticated with

    def session_renewed(self, now: datetime, project: Project | None) -> None: ...

    def mail_waiting(self) -> None: ...

    async def session_ended(self) -> None: ...

    async def key_refused(self, reason: str) -> None: ...

    async def shut_down(self) -> None: ...


class Renewed(NamedTuple):
    live: set[uuid.UUID]  # still live: heartbeat written, lease renewed
    projects: dict[str, Project]  # their projects' current settings
    refused: dict[tuple[int, str], str]  # (key, project) -> why that key may no longer act
    waiting: set[uuid.UUID]  # with mail queued for over MAIL_WAITING_SECONDS: woken in case its event was lost


def keep_alive_pass(session_ids: list[uuid.UUID], callers: set[tuple[int, str]]) -> Renewed:
    projects = projects_by_id({project_id for _, project_id in callers})
    renewed = sessions_held_renewed(session_ids, projects)
    return Renewed(set(renewed), projects, callers_refused(callers, projects),
                   {session_id for session_id, waiting in renewed.items() if waiting})


def sessions_held_renewed(session_ids: list[uuid.UUID], projects: dict[str, Project]) -> dict[uuid.UUID, bool]:
    """Heartbeat and push lease for sessions this process's sockets hold (at hello, then every pass); the
    live ones, each with whether mail has waited for it over MAIL_WAITING_SECONDS."""
    now = timezone.now()
    return sessions_renewed(session_ids, projects, now, now + timedelta(seconds=LEASE_SECONDS),
                            now - timedelta(seconds=MAIL_WAITING_SECONDS))


class Registry:
    def __init__(self) -> None:
        self.open: set[LiveConnection] = set()
        self.stopping = False
        self._keepalive: asyncio.Task | None = None

    def add(self, connection: LiveConnection) -> None:
        """Count an open connection; call from inside the event loop."""
        if connection not in self.open:
            counters.websockets.inc()
        self.open.add(connection)
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(), name="broker-keepalive")

    def discard(self, connection: LiveConnection) -> None:
        if connection in self.open:
            counters.websockets.dec()
        self.open.discard(connection)

    async def _keep_alive(self) -> None:
        """Renew every held session; hand each connection its project's current settings; end the gone
        ones and close those whose key may no longer act.

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
                renewed = await db(keep_alive_pass, urgent_lane)(
                    list({c.session_id for c in held}), {(c.key_pk, c.project_id) for c in held})
            except Exception:
                log.exception("keep-alive failed; trying again next interval")
                continue
            gone = []
            for connection in held:
                reason = renewed.refused.get((connection.key_pk, connection.project_id))
                if connection not in self.open:
                    continue
                if reason is not None:
                    gone.append(connection.key_refused(reason))
                elif connection.session_id in renewed.live:
                    connection.session_renewed(now, renewed.projects.get(connection.project_id))
                    if connection.session_id in renewed.waiting:
                        connection.mail_waiting()
                else:
                    gone.append(connection.session_ended())
            await asyncio.gather(*gone, return_exceptions=True)

    async def shut_down_all(self) -> None:
        """Stop taking connections and frames; let each open one finish, say goodbye and close."""
        self.stopping = True
        if self.open:
            log.info("server_shutdown", extra={"connections": len(self.open)})
            await asyncio.gather(*(c.shut_down() for c in list(self.open)), return_exceptions=True)


connections = Registry()


def frame_limit_set(send: Any, limit: int) -> None:
    """Under daphne, cap this connection's incoming messages at `limit` bytes, in the transport itself.

    daphne 4.2 caps every incoming WebSocket message at 1 MiB unless started with
    --websocket-max-message-size and --websocket-max-frame-size; so the README's plain
    `python -m daphne ...` could not carry a payload the other faces take. daphne hands each
    application `partial(server.handle_reply, protocol)` as its send, and autobahn reads its
    protocol's limits at each frame's header, so they can be set here, per connection, and
    changed when the connection says hello. A larger frame is refused at its header, unread, and
    autobahn closes the connection with 1009 (message too big): a close frame, not a drop, so the
    client knows why (its rest is read and thrown away until the close handshake ends). Under other
    servers this does nothing (uvicorn's --ws-max-size is 16 MiB by default): there the consumer
    closes with 1009 itself once the server has read the frame (SessionConsumer._frame_limit_set).
    """
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    if not isinstance(protocol, WebSocketServerProtocol):
        return
    protocol.maxMessagePayloadSize = protocol.maxFramePayloadSize = limit
    protocol.failByDrop = False
