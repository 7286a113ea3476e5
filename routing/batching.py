"""Sends, claims and acks of every async face in this process, gathered into one database call per round.

A thousand sockets woken by one broadcast would otherwise make a thousand claims, each a
transaction of its own; a thousand sockets sending, a thousand transactions; fifty MCP agents
in a closed loop, fifty of each. WebSocket frames and MCP tool calls join the same rounds
(`send_in_round`, `claim_in_round`, `ack_in_round`). A connection hands in its request and
waits; while one round is at the database, the next requests gather, and they go together in
the next round. An idle server answers a lone request at once; a busy one answers many per
round. Claims and acks go on the urgent lane, so pushing never waits behind sending
(broker_site.workers). Sends and broadcasts take the same engine (routing.sending); a
broadcast goes in a round of its own, as its copies may be many.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NamedTuple

from broker_site import counters
from broker_site.errors import BrokerError
from broker_site.workers import db, in_place_or_db, normal_lane, urgent_lane
from routing.contracts import SendIn
from routing.models import Message
from routing.sending import Accepted, messages_send, send_check
from routing.services import message_ids_parsed, messages_ack_many, messages_claim_many
from sessions_app.models import AgentSession
from sessions_app.services import sessions_seen


class Coalescer:
    def __init__(self, name: str, run_round: Callable[[list[Any]], list[Any]], lane: Executor, max_batch: int) -> None:
        self.run_round = db(_measured(name, run_round), lane)
        self.max_batch = max_batch
        self.waiting: list[tuple[Any, asyncio.Future]] = []
        self.running = False
        self.task: asyncio.Task | None = None

    async def submit(self, request: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((request, future))
        if not self.running:
            self.running = True
            self.task = asyncio.get_running_loop().create_task(self._rounds())  # held: the loop keeps weak references
        return await future

    async def _rounds(self) -> None:
        try:
            while self.waiting:
                # A request whose connection has gone (its future was cancelled) is not sent.
                live = [(r, f) for r, f in self.waiting[:self.max_batch] if not f.done()]
                del self.waiting[:self.max_batch]
                if not live:
                    continue
                try:
                    answers = await self.run_round([r for r, _ in live])
                    if len(answers) != len(live):
                        raise RuntimeError(f"a round of {len(live)} requests gave {len(answers)} answers")
                except Exception as exc:
                    for _, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(live, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self.running = False


def _measured(name: str, run_round: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
    """`run_round`, its size and its time in the metrics (broker_db_round_size and _seconds, by operation)."""
    size, seconds = counters.rounds.labels(name), counters.round_seconds.labels(name)

    def measured(requests: list[Any]) -> list[Any]:
        size.observe(len(requests))
        with seconds.time():
            return run_round(requests)

    return measured


class Claim(NamedTuple):
    session: AgentSession
    limit: int
    auto_ack: bool = False
    beat: bool = False  # a sign of life too: a receive's (a WebSocket's keep-alive beats for its own)


def _claim_round(requests: list[Claim]) -> list[list[Message]]:
    sessions_seen(list({r.session.pk: r.session for r in requests if r.beat}.values()))
    answers: list[list[Message]] = [[] for _ in requests]
    for auto_ack in (False, True):
        part = [(index, r) for index, r in enumerate(requests) if r.auto_ack == auto_ack]
        wants: dict[AgentSession, int] = {}
        for _, r in part:  # one session asking twice in a round gets what it asked for in all
            wants[r.session] = wants.get(r.session, 0) + r.limit
        claimed = messages_claim_many(wants, auto_ack=auto_ack) if wants else {}
        for index, r in part:
            answers[index] = _take(claimed[r.session.pk], r.limit)
    return answers


def _take(messages: list, limit: int) -> list:
    taken, messages[:limit] = messages[:limit], []
    return taken


# Sizes measured on SQLite: sends cost least per message in rounds of about 50 to 100.
claims = Coalescer("claim", _claim_round, urgent_lane, max_batch=500)
acks = Coalescer("ack", messages_ack_many, urgent_lane, max_batch=200)
sends = Coalescer("send", messages_send, normal_lane, max_batch=100)


async def send_in_round(sender: AgentSession, message: SendIn) -> Accepted:
    """One 1:1 send from an async face: checked (here when that needs no database: a free-form payload's size, a
    link the process keeps; else on a call of its own: a protocol's schema to run, a link to read, a refusal to
    count and audit), then stored in the next round; a refusal is raised."""
    checked = await in_place_or_db(send_check, sender, message)
    outcome = await sends.submit(checked)
    if isinstance(outcome, BrokerError):
        raise outcome
    return outcome


async def claim_in_round(session: AgentSession, max_messages: int, auto_ack: bool) -> list[Message]:
    """A receive's claim (routing.receive), with the session's heartbeat, in the next claim round."""
    return await claims.submit(Claim(session, max_messages, auto_ack, beat=True))


async def ack_in_round(session: AgentSession, message_ids: list[str]) -> dict[str, list[str]]:
    return await acks.submit((session, message_ids_parsed(message_ids)))
