"""WebSocket face at /ws/sessions/: one connection acts as one session; its mail is pushed as it commits.

The conversation: the client sends `hello` (its API key, unless an Authorization or
X-API-Key header carried it; a session id or name plus token to resume); the server answers
`welcome`, drains the session's queue in order, then pushes each new message as a `message`
frame. Client `ack`, `heartbeat`, `send` and `broadcast` frames call the same services as
REST and MCP; `send` and `broadcast` always get a `result` frame, the others when they carry
a request_id (`hello` is answered by `welcome`). A bad frame gets an `error` frame and the connection stays up.

A frame is measured and counted before it is read (routing.frames; after hello against its
key's one budget, projects.ratelimit), so refusing one costs less than reading it. A socket that
has not said hello may send only small frames, and is closed when it sends a larger one (4413;
under daphne, one far larger is refused by the transport unread, 1009) or a fifth refused frame
(4429). The keep-alive (routing.live) closes a socket whose key stopped being good (4401).

Delivery is at-least-once and the database is the source of truth. The pump claims queued
messages (priority, then age; the claim marks them delivered) and pushes them. An event
only wakes it (its Listener, routing.hub); the keep-alive (routing.live) wakes it too when
mail has waited for over a second, in case the layer dropped its event (both layers are
at-most-once and drop past capacity). If the layer fails
(Redis down) the pump polls the database every second and push_fallback is logged; push
resumes when the layer is back. Sends, claims and acks of all sockets go to the database
together, a round at a time (routing.batching).
A pushed message not acked is delivered again after ack_timeout (the sweeper), or at once
when the session resumes; a repeat carries the same message id.

Leaving: a close with code 1000 or 1001 disconnects the session (peers get session_left).
Any other end (a dropped network, a crash) keeps it, so the agent can resume with its token;
if it does not come back, the sweeper times it out. On shutdown (routing.live) the frame in
hand finishes and is answered, later frames are refused, then `server_shutdown` and close 4503.
"""

import asyncio
import logging
import uuid
from typing import Any

from autobahn.exception import Disconnected
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from broker_site import counters
from broker_site.errors import (
    BrokerError,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    ProjectBoundary,
    ShuttingDown,
    Unauthorized,
)
from broker_site.jsoncodec import json_text
from broker_site.workers import db
from leases.services import files_lease, files_release
from projects.auth import Caller, authenticate, credentials_from_headers
from projects.ratelimit import FrameBudget, KeyBudget, key_budget
from routing.batching import Claim, ack_in_round, claims, send_in_round
from routing.frames import (
    AckFrame,
    BroadcastFrame,
    ClientFrame,
    HeartbeatFrame,
    HelloFrame,
    LeaseFrame,
    ReleaseFrame,
    SearchFrame,
    SendFrame,
    StatusFrame,
    ThreadFrame,
    error_frame,
    frame_check,
    frame_decode,
    frame_size_check,
    message_frame,
    refused_request_id,
    request_id_of,
    result_frame,
)
from routing.hub import ENDED_EVENT, PRESENCE_EVENT, REPLACED_EVENT, Listener, Pace
from routing.lifecycle import session_connect
from routing.live import connections, frame_limit_set, sessions_held_renewed
from routing.search import messages_searched
from routing.selectors import thread_read
from routing.sending import message_broadcast
from sessions_app.selectors import session_activity
from sessions_app.services import session_disconnect, session_push_released, session_status_set, sessions_seen

log = logging.getLogger("broker.websocket")
# What each server raises for a frame sent on a closed socket: daphne autobahn's Disconnected, uvicorn's
# ClientDisconnected (an OSError, as ASGI 2.4 asks), granian's RuntimeError "ASGI flow error: Transport closed"
# (emmett-framework/granian#922).
SOCKET_CLOSED = (Disconnected, OSError, RuntimeError)

HELLO_TIMEOUT_SECONDS = 10
WINDOW = 100  # messages pushed and not yet acked on one connection before the pump waits for acks
CLAIM_BATCH = 50
# No timer of its own while the layer works: the keep-alive (routing.live) finds the sessions whose
# wake-up the layer dropped, for all sockets in one statement (a 30 s timer per socket cost 1,000
# sockets 33 empty claims a second). While the layer is down, each socket polls.
WEBSOCKET_PACE = Pace(recheck=None, poll=1.0, jitter=True)
FALLBACK_POLL_SECONDS = 1.0
FRAMES_PER_SECOND_BEFORE_HELLO = 10.0
# A socket that has not said hello is closed at its fifth refused frame: it costs the server, and
# a real client says hello first (or again, after fixing what the first one got wrong).
REFUSALS_BEFORE_HELLO = 5
LEAVING_CODES = (1000, 1001)
# Not 1012 (service restart): daphne's autobahn lets a server close only with 1000 or 3000-4999,
# and drops the connection without a close frame on any other code.
CLOSE_SERVICE_RESTART = 4503
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_UNAUTHORIZED = 4401
CLOSE_HELLO_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_SESSION_ENDED = 4410
CLOSE_TOO_LARGE_BEFORE_HELLO = 4413
# Before hello the transport (daphne) refuses a frame this many times the hello limit, unread (1009); one
# between the two is read far enough to be answered payload_too_large and closed with 4413.
TRANSPORT_SLACK = 4
CLOSE_REFUSED_BEFORE_HELLO = 4429
KEY_REFUSED = {"revoked_key": "This connection's API key was revoked.",
               "expired_key": "This connection's API key expired (or its rotation's grace period ended).",
               "project_inactive": "This connection's project is no longer active."}


def _authenticated(raw_key: str | None, remote_addr: str, hello: HelloFrame) -> Caller:
    return authenticate(raw_key, hello.project_id, remote_addr=remote_addr)


def _open_session(caller: Caller, hello: HelloFrame):
    """Connect (or resume) the hello's session, with its push lease taken at once."""
    connected = session_connect(caller.project, actor=caller.actor, name=hello.name, capabilities=hello.capabilities,
                                session_id=hello.session_id, session_token=hello.session_token)
    sessions_held_renewed([connected.session.pk], {caller.project.pk: caller.project})
    return connected


class SessionConsumer(AsyncWebsocketConsumer):
    # No channel of Channels' own: the process's hub (routing.hub) wakes every socket, and a
    # layer outage degrades to polling instead of ending the consumer.
    channel_layer_alias = "__broker_consumers_subscribe_themselves__"

    async def __call__(self, scope, receive, send):
        self.session = None
        self.epoch = 0
        self.listener: Listener | None = None
        self.in_flight: dict[uuid.UUID, float] = {}
        self.idle = asyncio.Event()  # no client frame is being handled
        self.idle.set()
        self.closed = asyncio.Event()
        self.stopping = False
        self.cancelled_mid_call = False  # answer the call in hand, then let the cancellation through
        self.replaced = False
        self.close_code: int | None = None
        self.caller: Caller | None = None
        self.budget = FrameBudget(FRAMES_PER_SECOND_BEFORE_HELLO, FRAMES_PER_SECOND_BEFORE_HELLO)
        self.key_budget: KeyBudget | None = None  # after hello: the key's, shared with its other sockets
        self.refusals = 0
        self.frame_limit = TRANSPORT_SLACK * settings.BROKER["WS_HELLO_MAX_BYTES"]  # set in connect and hello
        self.tasks: list[asyncio.Task] = []
        self.background: set[asyncio.Task] = set()  # event handlers that send frames
        self._goodbye: asyncio.Future | None = None
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # The server cancelled us (daphne on SIGTERM, when its own cancel step works).
            await self.shut_down()
            raise
        finally:
            await self._release()

    @property
    def session_id(self) -> uuid.UUID | None:
        return self.session.pk if self.session is not None else None

    @property
    def project_id(self) -> str | None:
        return self.session.project_id if self.session is not None else None

    @property
    def key_pk(self) -> int | None:
        return self.caller.key.pk if self.caller is not None else None

    def session_renewed(self, now, project) -> None:
        """The keep-alive wrote this session's heartbeat; `project` holds its current settings (limits)."""
        self.session.last_heartbeat_at = now
        if project is not None:
            self.session.project = project

    def mail_waiting(self) -> None:
        """The keep-alive found mail queued for this session a while: its wake-up may have been lost."""
        if self.listener is not None:
            self.listener.wake()

    async def session_ended(self, reason: str = "") -> None:
        """Disconnected elsewhere (an admin, a time-out, a deactivated project): say so and close."""
        if self.session is None or self.closed.is_set():
            return
        await self.send_json(error_frame(Conflict("This session was disconnected; resume it with its token.",
                                                  session_id=str(self.session.pk), reason=reason or None)))
        await self.close(code=CLOSE_SESSION_ENDED)

    async def key_refused(self, reason: str) -> None:
        """The key this connection authenticated with may no longer act (routing.live): say why and close.

        The session stays, for a resume with a key that may.
        """
        if self.closed.is_set():
            return
        log.info("websocket_key_refused", extra={"session_id": str(self.session_id), "reason": reason})
        await self.send_json(error_frame(Unauthorized(KEY_REFUSED.get(reason), reason=reason)))
        await self.close(code=CLOSE_UNAUTHORIZED)

    # -- connection lifecycle

    async def connect(self) -> None:
        if connections.stopping:
            await self.close(code=CLOSE_SERVICE_RESTART)  # before accept: the handshake is refused
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        self.header_key, self.header_project = credentials_from_headers(headers)
        # Until hello the transport refuses, unread, a frame well over the hello limit (routing.live).
        self._frame_limit_set(TRANSPORT_SLACK * settings.BROKER["WS_HELLO_MAX_BYTES"])
        await self.accept()
        connections.add(self)
        self.tasks.append(asyncio.create_task(self._expect_hello()))

    async def disconnect(self, code: int) -> None:
        self.close_code = code
        self.closed.set()

    def _frame_limit_set(self, limit: int) -> None:
        """Frames over `limit` close the socket with 1009: refused unread by daphne's transport, and by this
        consumer under servers whose limit is one for all connections (uvicorn, granian), once they read it."""
        self.frame_limit = limit
        frame_limit_set(self.base_send, limit)

    async def _expect_hello(self) -> None:
        await asyncio.sleep(HELLO_TIMEOUT_SECONDS)
        if self.session is None:
            await self.send_json(error_frame(Unauthorized(f"No hello within {HELLO_TIMEOUT_SECONDS} s.")))
            await self.close(code=CLOSE_HELLO_TIMEOUT)

    async def _release(self) -> None:
        connections.discard(self)
        for task in [*self.tasks, *self.background]:
            task.cancel()
        if self.session is None:
            return
        if self.listener is not None:
            await self.listener.leave()
        try:
            if self.close_code in LEAVING_CODES and not (self.replaced or self.stopping):
                await db(session_disconnect)(self.session, reason="client_closed", connection_epoch=self.epoch)
            else:
                await db(session_push_released)(self.session, self.epoch)
        except Exception:  # the session times out on its own if this write is lost
            log.exception("could not release the session", extra={"session_id": str(self.session.pk)})

    async def shut_down(self) -> None:
        """Finish the frame in hand, send server_shutdown, close with 4503. Idempotent."""
        if self._goodbye is None:
            self._goodbye = asyncio.ensure_future(self._say_goodbye())
        await asyncio.shield(self._goodbye)

    async def _say_goodbye(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        grace = settings.BROKER["SHUTDOWN_GRACE_SECONDS"]
        try:
            await asyncio.wait_for(self.idle.wait(), timeout=grace)
        except TimeoutError:
            log.warning("in-flight frame still running at shutdown", extra={"session_id": str(self.session_id)})
        try:
            await self.send_json({"type": "server_shutdown", "grace_seconds": grace, "reconnect": True,
                                  "message": "The server is restarting; reconnect and resume with your session token."})
            await self.close(code=CLOSE_SERVICE_RESTART)
            # Let the closing handshake finish before the server drops its sockets.
            await asyncio.wait_for(self.closed.wait(), timeout=2)
        except Exception:  # the socket is already gone
            log.debug("server_shutdown not sent", exc_info=True)

    # -- client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        kind = request_id = None
        self.idle.clear()
        cancelled = read = False
        raw = text_data if text_data is not None else bytes_data
        try:
            if self.stopping:
                raise ShuttingDown("The server is shutting down; this frame was not taken. Reconnect and send it again.")
            if raw is not None and len(raw) > self.frame_limit:
                await self.close(code=CLOSE_MESSAGE_TOO_BIG)
                return
            # Size and budget first: refusing a frame must cost less than reading it.
            frame_size_check(raw, hello_said=self.session is not None)
            await self._count_frame()
            decoded = frame_decode(raw)
            read = True
            request_id = request_id_of(decoded)
            frame = frame_check(decoded)
            kind = frame.type
            result = await self._handle(frame)
            counters.request_counted("websocket", self.project_id, "ok")
            if kind in ("send", "broadcast") or (request_id is not None and kind != "hello"):
                await self.send_json(result_frame(kind, request_id, result))
        except BrokerError as exc:
            counters.request_counted("websocket", self.project_id, exc.code)
            if not read:
                request_id = refused_request_id(raw)
            await self.send_json(error_frame(exc, request_id))
            await self._refused(kind, exc)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            log.exception("websocket frame failed", extra={"frame_type": kind})
            await self.send_json(error_frame(BrokerError(), request_id))
        finally:
            self.idle.set()
        if cancelled or self.cancelled_mid_call:
            raise asyncio.CancelledError

    async def _count_frame(self) -> None:
        if self.key_budget is None:
            self.budget.take()
        else:
            await self.key_budget.take(self.session.project.rate_limit_per_minute)

    async def _refused(self, kind: str | None, exc: BrokerError) -> None:
        """Close a socket that has not said hello and keeps sending what is refused (see the README)."""
        if self.session is not None:
            return
        self.refusals += 1
        if kind == "hello" and isinstance(exc, Unauthorized | Forbidden | ProjectBoundary):
            await self.close(code=CLOSE_UNAUTHORIZED)
        elif isinstance(exc, PayloadTooLarge):
            await self.close(code=CLOSE_TOO_LARGE_BEFORE_HELLO)
        elif self.refusals >= REFUSALS_BEFORE_HELLO:
            await self.close(code=CLOSE_REFUSED_BEFORE_HELLO)

    async def _handle(self, frame: ClientFrame) -> dict[str, Any]:
        if isinstance(frame, HelloFrame):
            if self.session is not None:
                raise Conflict("This connection already said hello; one connection is one session.")
            return await self._hello(frame)
        if self.session is None:
            raise Unauthorized("Send a hello frame first.", hint='{"type": "hello", "key": "..."}')
        if isinstance(frame, AckFrame):
            return await self._ack(frame)
        if isinstance(frame, HeartbeatFrame):
            await self._call(sessions_seen, [self.session], always=True)
            return {"session_id": str(self.session.pk), "status": "active"}
        if isinstance(frame, StatusFrame):
            session = await self._call(session_status_set, self.session, state=frame.state, summary=frame.summary)
            return {"session_id": str(session.pk), "activity": session_activity(session)}
        if isinstance(frame, ThreadFrame):
            return await self._call(thread_read, self.session, frame)
        if isinstance(frame, SearchFrame):
            return await self._call(messages_searched, self.session, frame)
        if isinstance(frame, LeaseFrame):
            return await self._call(files_lease, self.session, frame)
        if isinstance(frame, ReleaseFrame):
            return await self._call(files_release, self.session, frame)
        if isinstance(frame, SendFrame):
            return (await self._finish(send_in_round(self.session, frame))).as_dict()
        assert isinstance(frame, BroadcastFrame)
        return await self._call(message_broadcast, self.session, frame)

    async def _hello(self, hello: HelloFrame) -> dict[str, Any]:
        client = self.scope.get("client") or ("", 0)
        if hello.project_id is None and self.header_project is not None:
            hello = hello.model_copy(update={"project_id": self.header_project})
        caller = await self._call(_authenticated, hello.key or self.header_key, client[0] or "", hello)
        # The hello counts in its key's window as every frame after it does: through the process's share of the
        # window, not a round trip to the shared cache per hello (three to Redis: a fifth of a reconnect storm).
        await key_budget(caller).take(caller.project.rate_limit_per_minute)
        connected = await self._call(_open_session, caller, hello)
        self.session, self.epoch = connected.session, connected.session.connection_epoch
        self.caller, self.key_budget = caller, key_budget(caller)
        self._frame_limit_set(settings.BROKER["MAX_REQUEST_BYTES"])
        welcome = {"type": "welcome", "request_id": hello.request_id, **connected.as_dict(),
                   "delivery": {"ack_timeout": caller.project.ack_timeout, "window": WINDOW,
                                "heartbeat": "not needed while this connection is open"}}
        await self.send_json(welcome)
        self.listener = Listener(self.session.pk, self.session.project_id, WEBSOCKET_PACE, presence=hello.presence,
                                 on_other=self._on_other_event)
        await self.listener.join()
        self.tasks.append(asyncio.create_task(self._pump()))
        log.info("websocket_session", extra={"session_id": str(self.session.pk), "resumed": connected.resumed})
        return {"session_id": str(self.session.pk)}

    async def _ack(self, frame: AckFrame) -> dict[str, Any]:
        result = await ack_in_round(self.session, frame.message_ids)
        was_full = len(self.in_flight) >= WINDOW
        for message_id in result["acked"] + result["not_acked"]:
            self.in_flight.pop(uuid.UUID(message_id), None)
        if was_full:
            self.listener.wake()
        return result

    async def _call(self, fn, *args, **kwargs):
        return await self._finish(db(fn)(*args, **kwargs))

    async def _finish(self, call):
        """Run a database call to its end even if the server cancels us meanwhile (a write cannot be taken back)."""
        work = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self.cancelled_mid_call = True
            return await work

    # -- pushing

    async def _pump(self) -> None:
        while True:
            try:
                await self._push_available()
            except Exception:  # the database is away: what is queued stays queued; try again
                log.exception("push failed", extra={"session_id": str(self.session.pk)})
                await asyncio.sleep(FALLBACK_POLL_SECONDS)
                continue
            await self.listener.wait()

    async def _push_available(self) -> None:
        loop = asyncio.get_running_loop()
        # Unacked past ack_timeout: the sweeper takes them back, so they no longer fill the window.
        cutoff = loop.time() - self.session.project.ack_timeout
        self.in_flight = {i: at for i, at in self.in_flight.items() if at > cutoff}
        while len(self.in_flight) < WINDOW:
            wanted = min(CLAIM_BATCH, WINDOW - len(self.in_flight))
            batch = await claims.submit(Claim(self.session, wanted))
            for message in batch:
                self.in_flight[message.id] = loop.time()
                await self.send_json(message_frame(message))
            if batch:
                pushed = timezone.now()
                for message in batch:
                    counters.send_to_push.observe((pushed - message.created_at).total_seconds())
            if len(batch) < wanted:
                # The queue is empty (as the claim saw it): no second claim to find that out. Mail
                # committed since has set the listener's event, so the pump's next wait returns at once.
                return

    # -- events other than mail (the listener wakes the pump for mail): who came and went, endings

    def _on_other_event(self, event: dict[str, Any]) -> None:
        if not self.closed.is_set():
            task = asyncio.get_running_loop().create_task(self._on_event(event))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        try:
            if kind == PRESENCE_EVENT and event.get("session_id") != str(self.session.pk):
                await self.send_json({"type": event["event"], "session_id": event["session_id"],
                                      "name": event.get("name"),
                                      **({"activity": event["activity"]} if "activity" in event else {})})
            elif kind == ENDED_EVENT:
                await self.session_ended(event.get("reason", ""))
            elif kind == REPLACED_EVENT and event.get("connection_epoch", 0) > self.epoch:
                self.replaced = True
                await self.send_json(error_frame(Conflict("Another connection resumed this session; this one closes.",
                                                          session_id=str(self.session.pk))))
                await self.close(code=CLOSE_REPLACED)
        except Exception as exc:  # the socket closed while the event was on its way: nobody is left to tell
            log.info("event not sent: the socket is closing", extra={"event_type": kind, "error": type(exc).__name__})

    async def send_json(self, data: dict[str, Any]) -> None:
        try:
            await self.send(text_data=json_text(data))
        except SOCKET_CLOSED:
            # The socket closed under us (a shutdown, a client gone mid-frame): nobody is left to read it.
            # A pushed message stays delivered-unacked, and comes again on resume or after ack_timeout.
            log.info("frame not sent: the socket is closed", extra={"frame_type": data.get("type")})
