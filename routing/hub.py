"""One channel-layer listener per process: every push in the process is woken through it.

Its listeners are the WebSocket consumers, the long polls (routing.receive) and the MCP
inbox subscriptions. With a channel per listener, channels-redis's core layer hands each
message in a process around all its waiting receivers: a thousand sockets carried about one
message a second. So the process keeps one channel, joined to the groups of the sessions its
listeners are for (and to the projects whose presence someone here wants), and one task
receives and hands each event to the local listeners by session id. Events published by this
process reach its own listeners at once, without the layer (routing.events). Events stay
wake-up calls: the database is the source of truth.

Every second the hub sends itself a probe through the layer. If the layer fails (Redis down:
a send or a receive fails, or a probe does not come back), the hub logs push_fallback once
and tells every listener, which then polls the database; it joins its groups again with
backoff, and once a probe comes back it logs push_resumed and tells everyone again, since
mail committed meanwhile sent its event to nobody.
"""

import asyncio
import logging
import time
import uuid
from typing import Any, Protocol

from channels.layers import get_channel_layer

from routing import events

log = logging.getLogger("broker.push")

# Both layers forget a group member after their group_expiry (a day by default); joining again refreshes it.
REJOIN_SECONDS = 3600.0
LEAVE_TIMEOUT_SECONDS = 1.0
RETRY_FIRST_SECONDS = 0.5
# Every PROBE_SECONDS the hub sends itself a probe through the layer; one not back within
# PROBE_TIMEOUT_SECONDS means the layer is down. Generous: a busy event loop is not an outage.
PROBE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 5.0
PROBE_EVENT = "broker.probe"
RETRY_MAX_SECONDS = 5.0


class Listener(Protocol):
    session_id: uuid.UUID | None
    project_id: str | None
    presence: bool

    def on_event(self, event: dict[str, Any]) -> None: ...

    def on_layer(self, listening: bool) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.by_session: dict[str, set[Listener]] = {}  # group name -> listeners
        self.by_project: dict[str, set[Listener]] = {}
        self.channel: str | None = None
        self.listening = False
        self.task: asyncio.Task | None = None
        self.joined_at = 0.0
        self.probes = 0
        self.probe_back: asyncio.Future | None = None

    async def join(self, listener: Listener) -> bool:
        """Start waking `listener`; whether the layer is up (if not, it should poll)."""
        layer = get_channel_layer()
        if layer is None:
            return False
        groups = [self._add(self.by_session, events.session_group(listener.session_id), listener)]
        if listener.presence:  # every join and leave goes to every subscriber: N sockets joining cost N² frames
            groups.append(self._add(self.by_project, events.project_group(listener.project_id), listener))
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:  # (a test's new loop)
            self.listening = False
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
        empty = [group for group, members in ((events.session_group(listener.session_id), self.by_session),
                                              (events.project_group(listener.project_id), self.by_project))
                 if self._remove(members, group, listener)]
        if layer is None or not self.listening:
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
            else:
                self._from_layer(event)

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
        while pending := (self.by_session.keys() | self.by_project.keys()) - joined:
            for group in pending:
                await layer.group_add(group, self.channel)
            joined |= pending
        self.joined_at = time.monotonic()

    def _tell_all(self, listening: bool) -> None:
        self.listening = listening
        for members in list(self.by_session.values()):
            for listener in list(members):
                listener.on_layer(listening)

    def _from_layer(self, event: dict[str, Any]) -> None:
        if event.get("origin") != events.ORIGIN:  # this process's own events were handed over when published
            self.dispatch(event)

    def dispatch(self, event: dict[str, Any]) -> None:
        if event.get("type") == events.PRESENCE_EVENT:
            members = self.by_project.get(events.project_group(event.get("project_id", "")), ())
        else:
            members = self.by_session.get(events.session_group(event.get("session_id", uuid.UUID(int=0))), ())
        for listener in list(members):
            listener.on_event(event)


hub = Hub()
events.local_dispatchers.append(hub.dispatch)
