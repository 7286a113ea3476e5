"""The process's one link to the channel layer: every event goes out through it, every listener hears through it.

Listeners are the WebSocket consumers, the long polls (routing.receive) and the MCP inbox
subscriptions, each a `Listener` for one session. The path of an event:

1. a service commits and calls routing.events, which asks the hub to `publish` after commit
   (from whatever thread the commit ran on);
2. the hub hands the event to the listeners of this process at once, and sends it on through
   the layer, marked with this process's origin, for the listeners of other processes;
3. each process's hub receives from the layer on one channel, joined to the groups of the
   sessions (and the projects, for presence) its listeners want, skips its own events, and
   hands the others to its listeners by session id.

One channel per process rather than per listener: channels-redis's core layer hands each
message around every waiting receiver of a process, and a thousand sockets carried about one
message a second. An event is a wake-up call only: the database is the source of truth, and
events carry no message ids. A listener wakes, then reads what is queued.

Both layers are at-most-once, so each listener also looks at the database on its own, at its
`Pace`: now and then while the layer works (events can be dropped), often while it does not.
Every second the hub sends itself a probe through the layer. If the layer fails (Redis down:
a send or a receive fails, or a probe does not come back) the hub logs push_fallback once and
tells every listener, which then polls; it joins its groups again with backoff, and once a
probe comes back it logs push_resumed and tells everyone again, since mail committed
meanwhile sent its event to nobody.
"""

import asyncio
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from broker_site import counters

log = logging.getLogger("broker.push")

# The kinds of event (routing.events publishes them), and the hub's own probe.
MESSAGE_EVENT = "broker.message"
PRESENCE_EVENT = "broker.presence"
ENDED_EVENT = "broker.ended"
REPLACED_EVENT = "broker.replaced"
PROBE_EVENT = "broker.probe"
# Events for every server process rather than for a session's listeners (credentials changed).
EVERY_PROCESS_GROUP = "broker.processes"
CREDENTIALS_EVENT = "broker.credentials"
ORIGIN = uuid.uuid4().hex  # marks the events this process published, so its hub skips them coming back
SEND_TIMEOUT_SECONDS = 2.0
# Both layers forget a group member after their group_expiry (a day by default); joining again refreshes it.
REJOIN_SECONDS = 3600.0
LEAVE_TIMEOUT_SECONDS = 1.0
# Every PROBE_SECONDS the hub sends itself a probe through the layer; one not back within
# PROBE_TIMEOUT_SECONDS means the layer is down. Generous: a busy event loop is not an outage.
PROBE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 5.0
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0

# Why a listener's wait ended.
WOKEN = "woken"  # an event for its session, or a nudge from its owner
RESUMED = "resumed"  # the layer is back: mail may have been committed while nobody heard
TIMER = "timer"  # its pace's timer: look at the database anyway


def session_group(session_id: uuid.UUID | str) -> str:
    return f"session.{uuid.UUID(str(session_id)).hex}"


def project_group(project_id: str) -> str:
    return f"project.{project_id}"


@dataclass(frozen=True)
class Pace:
    """How often a listener looks at the database without being woken.

    `recheck` while the layer works (it covers events the layer dropped; every idle listener
    pays for it, so it is slow), `poll` while it does not; None: never, wait to be woken.
    With `jitter`, each wait is 50-100 % of the figure, so a thousand sockets do not look at once.
    """

    recheck: float | None
    poll: float | None
    jitter: bool = False


class Listener:
    """One session's ear on the hub: `wait` returns when there may be mail for it (and says why)."""

    def __init__(self, session_id: uuid.UUID, project_id: str, pace: Pace, *, presence: bool = False,
                 on_other: Callable[[dict[str, Any]], None] | None = None, via: "Hub | None" = None) -> None:
        self.session_id, self.project_id, self.pace = session_id, project_id, pace
        self.hub = via or hub  # the process's hub (a test may give one of its own)
        self.presence = presence  # also hear who joins and leaves the project (N sockets joining cost N² frames)
        self.on_other = on_other  # events other than mail (presence, session ended or replaced)
        self.listening = False
        self._woken = asyncio.Event()
        self._heard = False  # woken by an event or a nudge since the last wait
        self._resumed = False  # the layer came back since the last wait

    async def join(self) -> None:
        self.listening = await self.hub.join(self)

    async def leave(self) -> None:
        await self.hub.leave(self)

    async def __aenter__(self) -> "Listener":
        await self.join()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.leave()

    def wake(self) -> None:
        self._heard = True
        self._woken.set()

    async def wait(self, timeout: float | None = None) -> str:
        pause = self.pace.recheck if self.listening else self.pace.poll
        if pause is not None and self.pace.jitter:
            pause *= random.uniform(0.5, 1.0)  # noqa: S311 (spreading timers, not a secret)
        limits = [t for t in (pause, timeout) if t is not None]
        try:
            await asyncio.wait_for(self._woken.wait(), min(limits) if limits else None)
        except TimeoutError:
            return TIMER
        finally:
            self._woken.clear()
        heard, resumed = self._heard, self._resumed
        self._heard = self._resumed = False
        return WOKEN if heard or not resumed else RESUMED

    # Called by the hub, on its loop.
    def heard(self, event: dict[str, Any]) -> None:
        if event.get("type") == MESSAGE_EVENT:
            self.wake()
        elif self.on_other is not None:
            self.on_other(event)

    def layer_changed(self, listening: bool) -> None:
        self.listening = listening
        if listening:
            self._resumed = True
            self._woken.set()  # look now: mail committed while the layer was down woke nobody
        elif self.pace.poll is not None:
            self._woken.set()  # start polling now


class Hub:
    def __init__(self) -> None:
        self.by_session: dict[str, set[Listener]] = {}  # group name -> listeners
        self.by_project: dict[str, set[Listener]] = {}
        self.channel: str | None = None
        self.listening = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.joined_at = 0.0
        self.probes = 0
        self.probe_back: asyncio.Future | None = None
        self._handover: list[tuple[str, dict]] = []  # published by any thread, not yet taken by the loop
        self._handover_lock = threading.Lock()
        self._sending: set[asyncio.Task] = set()  # held, so none is garbage-collected mid-send
        self.process_handlers: dict[str, Callable[[], None]] = {}  # event type -> what this process does on it

    def start(self) -> None:
        """Bind the hub to the server's event loop and listen (from the start-up, inside the loop). Idempotent.

        A server process listens from the start, listeners or not, so events for every process
        (EVERY_PROCESS_GROUP) reach it.
        """
        loop = self.loop = asyncio.get_running_loop()
        layer = get_channel_layer()
        if layer is not None and self.process_handlers and (self.task is None or self.task.done()):
            self.listening = False
            self.task = loop.create_task(self._run(layer), name="broker-hub")

    def on_process_event(self, event_type: str, handler: Callable[[], None]) -> None:
        """Run `handler` (on the loop) whenever any process publishes `event_type` to EVERY_PROCESS_GROUP."""
        self.process_handlers[event_type] = handler

    # -- publishing

    def publish(self, group: str, event: dict[str, Any]) -> None:
        """Hand `event` to this process's listeners and, through the layer, to other processes'. Any thread."""
        layer = get_channel_layer()
        loop = self.loop
        if layer is None:
            return
        if loop is None or not loop.is_running():  # a management command, a test: no server loop to hand it to
            async_to_sync(self._send)(layer, group, event)
            return
        # Handed over in batches: a round of 100 sends commits 100 events at once, and one wake-up
        # of the loop takes them all (a cross-thread future per event cost 6% of the server's time).
        with self._handover_lock:
            self._handover.append((group, event))
            if len(self._handover) > 1:
                return  # a wake-up is already on its way
        loop.call_soon_threadsafe(self._take_handover, layer)

    def _take_handover(self, layer) -> None:
        with self._handover_lock:
            batch, self._handover = self._handover, []
        loop = asyncio.get_running_loop()
        for group, event in batch:
            self.dispatch(event)
            sending = loop.create_task(self._send(layer, group, event))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _send(self, layer, group: str, event: dict[str, Any]) -> None:
        event = {**event, "origin": ORIGIN}
        for attempt in (1, 2):
            try:
                # Bounded: a publish to a Redis that does not answer can hang, and events pile up behind it.
                await asyncio.wait_for(layer.group_send(group, event), SEND_TIMEOUT_SECONDS)
                return
            except Exception as exc:  # Redis down or full: the message is persisted; listeners poll the database.
                if attempt == 2:
                    counters.push_fallbacks.labels("publish").inc()
                    log.warning("push_fallback", extra={"group": group, "event_type": event.get("type"),
                                                        "error": str(exc) or type(exc).__name__})
                # Once more: after a Redis restart, the first use of each pooled connection fails.

    def dispatch(self, event: dict[str, Any]) -> None:
        """Hand `event` to the listeners of this process it is for."""
        handler = self.process_handlers.get(event.get("type", ""))
        if handler is not None:
            handler()
            return
        if event.get("type") == PRESENCE_EVENT:
            members = self.by_project.get(project_group(event.get("project_id", "")), ())
        else:
            members = self.by_session.get(session_group(event.get("session_id", uuid.UUID(int=0))), ())
        for listener in list(members):
            listener.heard(event)

    # -- listeners

    async def join(self, listener: Listener) -> bool:
        """Start waking `listener`; whether the layer is up (if not, it should poll)."""
        layer = get_channel_layer()
        if layer is None:
            return False
        groups = [self._add(self.by_session, session_group(listener.session_id), listener)]
        if listener.presence:
            groups.append(self._add(self.by_project, project_group(listener.project_id), listener))
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:  # (a test's new loop)
            self.loop, self.listening = loop, False
            self.task = loop.create_task(self._run(layer), name="broker-hub")
            return False  # the task joins every group and wakes everyone once it listens
        if self.listening:
            try:
                for group in filter(None, groups):
                    await layer.group_add(group, self.channel)
            except Exception:  # the layer failed: the listener polls; _run finds the failure and joins again
                log.debug("group_add failed", exc_info=True)
                return False
        return self.listening

    async def leave(self, listener: Listener) -> None:
        layer = get_channel_layer()
        empty = [group for group, members in ((session_group(listener.session_id), self.by_session),
                                              (project_group(listener.project_id), self.by_project))
                 if self._remove(members, group, listener)]
        if layer is None or self.channel is None:
            return
        try:
            for group in empty:
                await asyncio.wait_for(layer.group_discard(group, self.channel), LEAVE_TIMEOUT_SECONDS)
        except Exception:  # the layer is gone; group entries expire on their own
            log.debug("group_discard failed", exc_info=True)

    @staticmethod
    def _add(table: dict[str, set[Listener]], group: str, listener: Listener) -> str | None:
        """Add; the group's name if it is new to this process (it must be joined)."""
        members = table.setdefault(group, set())
        members.add(listener)
        return group if len(members) == 1 else None

    @staticmethod
    def _remove(table: dict[str, set[Listener]], group: str, listener: Listener) -> bool:
        """Remove; whether the group has no member here any more (it can be left)."""
        members = table.get(group)
        if members is None or listener not in members:
            return False
        members.discard(listener)
        if not members:
            del table[group]
            return True
        return False

    # -- receiving

    async def _run(self, layer) -> None:
        self.channel, receiver = None, None
        backoff, failed = RETRY_FIRST_SECONDS, False
        try:
            while True:
                try:
                    if self.channel is None:  # (on the pub/sub layer this subscribes: Redis may be down)
                        self.channel = await layer.new_channel()
                    if receiver is None or receiver.done():
                        receiver = asyncio.get_running_loop().create_task(self._receive(layer), name="broker-hub-receive")
                    await self._join_all(layer)
                    await self._round_trip(layer, receiver)
                    if failed:  # a warning like push_fallback, so whoever saw the one sees the other
                        log.warning("push_resumed", extra={"sessions": len(self.by_session)})
                    backoff, failed = RETRY_FIRST_SECONDS, False
                    self._tell_all(True)
                    while True:
                        await asyncio.sleep(PROBE_SECONDS)
                        await self._round_trip(layer, receiver)
                        if time.monotonic() - self.joined_at > REJOIN_SECONDS:
                            await self._join_all(layer)
                except Exception as exc:
                    if not failed:
                        counters.push_fallbacks.labels("listen").inc()
                        log.warning("push_fallback", extra={"sessions": len(self.by_session),
                                                            "error": str(exc) or type(exc).__name__})
                        self._tell_all(False)
                    failed = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_SECONDS)
        finally:
            if receiver is not None:
                receiver.cancel()

    async def _receive(self, layer) -> None:
        while True:
            event = await layer.receive(self.channel)
            if event.get("type") == PROBE_EVENT:
                if event.get("n") == self.probes and self.probe_back is not None and not self.probe_back.done():
                    self.probe_back.set_result(True)
            elif event.get("origin") != ORIGIN:  # this process's own were handed over when published
                self.dispatch(event)

    async def _round_trip(self, layer, receiver: asyncio.Task) -> None:
        """Send this process's channel a probe and see it come back; raise if the layer failed.

        The core layer's receive raises when Redis goes away, but the pub/sub layer's never does
        (it reconnects underneath, and what was published meanwhile is gone), so the probe is how
        the hub finds out on either.
        """
        self.probes += 1
        self.probe_back = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):  # a send to a Redis that does not answer can hang
            await layer.send(self.channel, {"type": PROBE_EVENT, "n": self.probes})
            done, _ = await asyncio.wait({self.probe_back, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if receiver in done:
            receiver.result()  # raises what ended it
            raise RuntimeError("the channel-layer receive ended")

    async def _join_all(self, layer) -> None:
        # Until none is left: a listener that joins meanwhile sees the hub not listening yet and
        # leaves its group to this loop.
        joined: set[str] = set()
        always = {EVERY_PROCESS_GROUP} if self.process_handlers else set()
        while pending := (self.by_session.keys() | self.by_project.keys() | always) - joined:
            for group in pending:
                await layer.group_add(group, self.channel)
            joined |= pending
        self.joined_at = time.monotonic()

    def _tell_all(self, listening: bool) -> None:
        self.listening = listening
        for members in list(self.by_session.values()):
            for listener in list(members):
                listener.layer_changed(listening)


hub = Hub()
