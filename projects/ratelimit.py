"""Per-key request rate limit: one fixed one-minute window per key, shared by every face and process.

A REST request and a WebSocket `hello` each count one in the key's window in the shared cache
(Redis when REDIS_URL is set, so the window holds across processes; else the process's local
memory). WebSocket frames and MCP calls count in the same window, but a cache round trip for
each would cost most of their throughput, so each process keeps one `KeyBudget` per key for all
that key's sockets and MCP calls, which reserves from the shared window in chunks. A process
may so hold up to a chunk (about a second of the key's rate) it does not use; other processes
and faces see the window that much fuller until the minute ends.

`FrameBudget` is the small per-connection bucket of a socket that has not said hello yet.
"""

import asyncio
import logging
import time

from django.core.cache import cache

from broker_site.errors import RateLimited
from projects.auth import Caller

log = logging.getLogger("broker.ratelimit")
WINDOW_SECONDS = 60
MAX_CHUNK = 1000


def rate_limit_check(caller: Caller) -> None:
    """Count one request against the caller's key; raise rate_limited past the project's limit."""
    limit = caller.project.rate_limit_per_minute
    now = time.time()
    try:
        count = count_in_window(_window_key(caller.key.project_id, caller.key.key_id, now), 1)
    except Exception as exc:  # the shared cache (Redis) is down: keep serving rather than refuse everyone
        log.warning("rate_limit_unavailable", extra={"error": str(exc)})
        return
    if count > limit:
        raise _refused(limit, now)


def _window_key(project_id: str, key_id: str, now: float) -> str:
    return f"ratelimit:{project_id}:{key_id}:{int(now // WINDOW_SECONDS)}"


def _refused(limit: int, now: float) -> RateLimited:
    retry_after = max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))
    return RateLimited(f"This key is limited to {limit} requests a minute.", limit=limit, retry_after=retry_after)


def count_in_window(cache_key: str, amount: int) -> int:
    """The window's count after adding `amount`."""
    # add() is a no-op when the window exists; incr() is atomic in every shared cache backend.
    cache.add(cache_key, 0, timeout=2 * WINDOW_SECONDS)
    try:
        return cache.incr(cache_key, amount)
    except ValueError:  # evicted between add and incr: start the window again
        cache.set(cache_key, amount, timeout=2 * WINDOW_SECONDS)
        return amount


class KeyBudget:
    """This process's share of one key's window, for all the key's WebSocket frames (`key_budget` hands it out)."""

    def __init__(self, project_id: str, key_id: str) -> None:
        self.project_id, self.key_id = project_id, key_id
        self.window = -1
        self.tokens = 0
        # The limit at which the shared window had less than a chunk left: refuse locally until the
        # minute ends, or the project's limit is raised.
        self.exhausted_at: int | None = None
        self.refilling = asyncio.Lock()  # one reservation at a time, however many sockets wait for it

    async def take(self, limit: int) -> None:
        """Count one frame; raise rate_limited past `limit` a minute (the project the key acts in)."""
        now = time.time()
        self._roll(now)
        if self.tokens <= 0:
            async with self.refilling:
                self._roll(now)
                if self.tokens <= 0 and self.exhausted_at != limit:
                    await self._reserve(limit, now)
            if self.tokens <= 0:
                raise _refused(limit, now)
        self.tokens -= 1

    def _roll(self, now: float) -> None:
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.tokens, self.exhausted_at = window, 0, None

    async def _reserve(self, limit: int, now: float) -> None:
        # About a second of the key's rate: few round trips, and little held back from the others.
        chunk = max(1, min(limit // WINDOW_SECONDS, MAX_CHUNK))
        cache_key = _window_key(self.project_id, self.key_id, now)
        try:
            # In a thread: the cache may be Redis, and the event loop must not wait on the network.
            after = await asyncio.to_thread(count_in_window, cache_key, chunk)
        except Exception as exc:  # the shared cache is down: keep serving, as rate_limit_check does
            log.warning("rate_limit_unavailable", extra={"error": str(exc)})
            self.tokens = chunk
            return
        granted = max(0, min(chunk, limit - (after - chunk)))
        self.tokens += granted
        self.exhausted_at = limit if granted < chunk else None


_budgets: dict[tuple[str, str], KeyBudget] = {}
_pruned_window = -1


def key_budget(caller: Caller) -> KeyBudget:
    """The process's one budget for the caller's key (its sockets' and its MCP calls').

    Kept while the key is in use: a budget nobody took from for a whole window is dropped at the
    next window's start, so the table holds the keys of the last two minutes.
    """
    global _pruned_window
    window = int(time.time() // WINDOW_SECONDS)
    if window != _pruned_window:
        _pruned_window = window
        for ident in [i for i, b in _budgets.items() if b.window < window - 1]:
            del _budgets[ident]
    ident = (caller.key.project_id, caller.key.key_id)
    budget = _budgets.get(ident)
    if budget is None:
        budget = _budgets[ident] = KeyBudget(*ident)
    return budget


class FrameBudget:
    """A token bucket for one WebSocket connection: `rate` frames a second, bursts up to `burst`.

    In memory and per connection: it slows a socket that has not said hello yet (each
    refused frame gets a rate_limited error) before any key is known.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            retry_after = round((1 - self.tokens) / self.rate, 3)
            raise RateLimited(f"This connection is limited to {self.rate:g} frames a second.",
                              limit_per_second=self.rate, retry_after=retry_after)
        self.tokens -= 1
