"""Long-poll receive, shared by the REST and MCP faces, and the one rule for a client that walks away.

An empty queue waits on a Listener (routing.hub), so a send wakes the receiver as soon as it
commits. The database stays the source of truth: the wake-up only says "look again", and the
listener's pace covers events the layer dropped, and polls while the layer is down.

A receive whose client has gone claims nothing, and what it claimed for a client that went
before the answer went out is put back (queued again, the attempt not counted): with
auto_ack a claim is an ack, so a claim for nobody would lose the mail. What a client's
giving up looks like to the server (checked against Django 5.2, daphne 4.2, mcp 2.3.0):

- REST: an `http.disconnect`; Django's ASGI handler listens for it while the view runs and
  cancels the view, which stopped the wait but not a claim already running in its thread.
- MCP, session-based: the SDK client sends `notifications/cancelled` for the request and the
  SDK cancels the handler; a client that just vanishes sends nothing but the disconnect, which
  nobody read (the JSON-response POST never reads again, daphne cancels the app only 10 s
  later, and the handler runs in the session's task, not the request's).
- MCP, stateless (2026-07-28): no notifications on that wire; the client closes its POST. In
  JSON-response mode the SDK runs the handler inline and never listens for the disconnect.

So each request carries a `ClientLink` (`watch` sees its ASGI messages; MountMcp puts one in
every request), and `messages_receive` treats a disconnect and a cancellation alike.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from django.conf import settings

from broker_site import counters
from broker_site.workers import db, urgent_lane
from routing.batching import claim_in_round
from routing.hub import Listener, Pace
from routing.models import Message
from routing.services import messages_claim, messages_unclaim
from sessions_app.models import AgentSession
from sessions_app.services import sessions_seen

LONG_POLL_PACE = Pace(recheck=5.0, poll=0.5)
LINK_SCOPE_KEY = "broker_client_link"
Claimer = Callable[[AgentSession, int, bool], Awaitable[list["Message"]]]


class _Waiting:
    """The receives waiting in this process (their wake-ups), so that a stop can answer them all at once."""

    def __init__(self) -> None:
        self.wakes: set[Callable[[], None]] = set()
        self.stopping = False

    def answer_all(self) -> None:
        """At shutdown: every waiting receive answers now with what it has (nothing) rather than hold the stop up
        for its wait; the client asks again, of the server that comes back. Later receives do not wait."""
        self.stopping = True
        for wake in list(self.wakes):
            wake()


waiting = _Waiting()


class ClientLink:
    """One HTTP request's tie to its client: has the client gone, and what was claimed for it and not yet sent.

    `watch` wraps the request's ASGI `receive` and `send`; `settle` runs once the app is done
    and puts back what was held for an answer that never went out.
    """

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self._held: list[tuple[AgentSession, list[Message]]] = []
        self._answered = self._settled = False
        self._on_gone: list[Callable[[], None]] = []
        self._reader: asyncio.Future | None = None

    @classmethod
    def of(cls, request: Any) -> "ClientLink":
        """The link the server put in this request's scope (a Django or Starlette request); a fresh one
        (nobody watching) if none, as for Django's sync test client, whose requests have no scope."""
        link = (getattr(request, "scope", None) or {}).get(LINK_SCOPE_KEY)
        return link if isinstance(link, cls) else cls()

    def went(self) -> None:
        self.gone.set()
        for wake in self._on_gone:
            wake()

    def wake_when_gone(self, wake: Callable[[], None]) -> Callable[[], None]:
        self._on_gone.append(wake)
        return lambda: self._on_gone.remove(wake)

    def hold(self, session: AgentSession, messages: list[Message]) -> bool:
        """Keep `messages` until the answer goes out; False if it never will (gone, or already answered)."""
        if self.gone.is_set() or self._settled:
            return False
        self._held.append((session, messages))
        return True

    def watch(self, scope: dict[str, Any], receive, send, *, read_ahead: bool):
        """(scope, receive, send) for the app, with this link in the scope and seeing their messages.

        `read_ahead`: the app stops reading after the body (the MCP SDK does), so a task of ours
        reads on, to hear the disconnect. Otherwise the app keeps reading (Django does).
        Call `settle` once the app is done.
        """
        scope = {**scope, LINK_SCOPE_KEY: self}
        inbox: asyncio.Queue = asyncio.Queue()

        async def watched_receive():
            message = await (inbox.get() if read_ahead else receive())
            if message.get("type") == "http.disconnect":
                self.went()
            return message

        async def read_on() -> None:
            while True:
                message = await receive()
                inbox.put_nowait(message)
                if message.get("type") == "http.disconnect":
                    self.went()
                    return

        async def watched_send(message) -> None:
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                # Servers drop a send after the client went without a word: it only counts if it was still there.
                self._answered = not self.gone.is_set()
            await send(message)

        self._reader = asyncio.ensure_future(read_on()) if read_ahead else None
        return scope, watched_receive, watched_send

    async def settle(self) -> None:
        """After the app: what was held for an answer that did not go out goes back to the queue."""
        self._settled = True
        if self._reader is not None:
            self._reader.cancel()
        held, self._held = self._held, []
        if not self._answered:
            for session, messages in held:
                await _put_back(session, messages)


async def _put_back(session: AgentSession, messages: list[Message]) -> None:
    # Shielded both ways (an anyio scope cancelled by the MCP SDK, a plain task.cancel() by Django or the
    # server): this runs while the request is being cancelled, and must still reach the database.
    with anyio.CancelScope(shield=True):
        await asyncio.shield(asyncio.ensure_future(db(messages_unclaim, urgent_lane)(session, messages)))


def claim_and_beat(session: AgentSession, max_messages: int, auto_ack: bool) -> list[Message]:
    """A receive's claim on the caller's own thread (REST's); async faces claim in rounds (routing.batching).

    A session waiting for mail is alive: without the heartbeat a 60 s wait outlasts disconnect_after.
    """
    sessions_seen([session])
    return messages_claim(session, max_messages=max_messages, auto_ack=auto_ack)


async def claim_for(link: ClientLink, claim: Callable[..., Awaitable[list[Message]]], session: AgentSession,
                    max_messages: int, auto_ack: bool) -> list[Message]:
    """Claim, unless the client has gone; put back what was claimed if it went (or we were cancelled) meanwhile."""
    if link.gone.is_set():
        return []
    running = asyncio.ensure_future(claim(session, max_messages, auto_ack))
    try:
        messages = await asyncio.shield(running)
    except asyncio.CancelledError:
        # The claim runs on in its thread whatever happens here: wait for it, and undo it.
        with anyio.CancelScope(shield=True):
            messages = await running
            if messages:
                await _put_back(session, messages)
        raise
    if messages and not link.hold(session, messages):
        await _put_back(session, messages)
        return []
    return messages


async def messages_receive(session: AgentSession, *, max_messages: int, wait_seconds: float, auto_ack: bool,
                           claim: Claimer = claim_in_round, link: ClientLink | None = None) -> list[Message]:
    """The session's next messages (priority, then age), waiting up to `wait_seconds` for one to come.

    `claim(session, max_messages, auto_ack)` claims, and counts as the session's heartbeat: by
    default in the process's claim rounds, with every WebSocket's and MCP receive's
    (routing.batching); a Django view passes `claim_and_beat` on Django's threads, where the
    rest of its request ran. `link` says when the client has gone (then nothing more is
    claimed) and holds what was claimed until the answer goes out (see ClientLink); without
    one only cancellation counts.
    """
    link = link or ClientLink()
    return await mail_awaited(session, wait_seconds, link,
                              lambda: claim_for(link, claim, session, max_messages, auto_ack))


async def mail_awaited(session: AgentSession, wait_seconds: float, link: ClientLink,
                       look: Callable[[], Awaitable[list[Message]]]) -> list[Message]:
    """What `look()` finds now, or on a later wake-up of the session's mail, until it finds something,
    `wait_seconds` pass, the client goes or the server stops (then whatever the last look found: nothing).

    `look` claims (a receive's next messages, request_reply's reply) through `claim_for`'s rule, so a
    client that went is claimed nothing.
    """
    found = await look()
    wait_seconds = min(max(wait_seconds, 0), settings.BROKER["MAX_WAIT_SECONDS"])
    if found or wait_seconds <= 0 or waiting.stopping:
        return found
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    async with Listener(session.pk, session.project_id, LONG_POLL_PACE) as listener:
        forget = link.wake_when_gone(listener.wake)
        waiting.wakes.add(listener.wake)
        counters.long_polls.inc()
        try:
            while True:
                # Looked again after joining: a message committed between the first look and the
                # join sent its event before we listened, so only the database knows of it.
                found = await look()
                remaining = deadline - loop.time()
                if found or remaining <= 0 or link.gone.is_set() or waiting.stopping:
                    return found
                await listener.wait(remaining)
        finally:
            counters.long_polls.dec()
            waiting.wakes.discard(listener.wake)
            forget()
