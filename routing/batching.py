"""Sends, claims and acks of every WebSocket in this process, gathered into one database call per round.

A thousand sockets woken by one broadcast would otherwise make a thousand claims, each a
transaction of its own; a thousand sockets sending, a thousand transactions. Here a
connection hands in its request and waits; while one round is at the database, the next
requests gather, and they go together in the next round. An idle server answers a lone
request at once; a busy one answers many per round. Claims and acks go on the urgent lane,
so pushing never waits behind sending (broker_site.workers). Sends and broadcasts take the same
engine (routing.sending); a broadcast goes in a round of its own, as its copies may be many.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from broker_site.workers import db, normal_lane, urgent_lane
from routing.sending import messages_send
from routing.services import messages_ack_many, messages_claim_many
from sessions_app.models import AgentSession


class Coalescer:
    def __init__(self, run_round: Callable[[list[Any]], list[Any]], lane: Executor, max_batch: int) -> None:
        self.run_round = db(run_round, lane)
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


def _claim_round(requests: list[tuple[AgentSession, int]]) -> list[list]:
    wants: dict[AgentSession, int] = {}
    for session, limit in requests:  # one session asking twice in a round gets what it asked for in all
        wants[session] = wants.get(session, 0) + limit
    claimed = messages_claim_many(wants)
    return [_take(claimed[session.pk], limit) for session, limit in requests]


def _take(messages: list, limit: int) -> list:
    taken, messages[:limit] = messages[:limit], []
    return taken


# Sizes measured on SQLite: sends cost least per message in rounds of about 50 to 100.
claims = Coalescer(_claim_round, urgent_lane, max_batch=500)
acks = Coalescer(messages_ack_many, urgent_lane, max_batch=200)
sends = Coalescer(messages_send, normal_lane, max_batch=100)
