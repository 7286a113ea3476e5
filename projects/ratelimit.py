"""Per-key request rate limit: one fixed one-minute window per key, shared by every face and process.

A REST request counts one in the key's window in the shared cache (Redis when REDIS_URL is set,
so the window holds across processes; else the process's local memory). WebSocket frames (the
`hello` too) and MCP calls count in the same window, but a cache round trip for each would cost
most of their throughput, so each process keeps one `KeyBudget` per key for all that key's
sockets and MCP calls, which reserves from the shared window in chunks. A process
may so hold up to a chunk (about a second of the key's rate) it does not use; other processes
and faces see the window that much fuller until the minute ends.

`FrameBudget` is the small per-connection bucket of a socket that has not said hello yet.
"""

import asyncio
import logging
import threading
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
        count = _count_in_window(_window_key(caller.key.project_id, caller.key.key_id, now), 1)
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


def _count_in_window(cache_key: str, amount: int) -> int:
    """The window's count after adding `amount`."""
    # add() is a no-op when the window exists; incr() is atomic in every shared cache backend.
    cache.add(cache_key, 0, timeout=2 * WINDOW_SECONDS)
    try:
        return cache.incr(cache_key, amount)
    except ValueError:  # evicted between add and incr: start the window again
        cache.set(cache_key, amount, timeout=2 * WINDOW_SECONDS)
        return amount


class _Share:
    """This process's share of one shared window (a key's; a link's, one direction): reserved from the shared
    cache a chunk (about a second of the rate) at a time, so taking costs a round trip about once a second."""

    def __init__(self, cache_prefix: str) -> None:
        self.cache_prefix = cache_prefix
        self.window = -1
        self.tokens = 0
        # The limit at which the shared window had less than a chunk left: refuse locally until the
        # minute ends, or the limit is raised.
        self.exhausted_at: int | None = None

    def _roll(self, now: float) -> None:
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.tokens, self.exhausted_at = window, 0, None

    def _needs_refill(self, limit: int) -> bool:
        return self.tokens <= 0 and self.exhausted_at != limit

    def _refill(self, limit: int, now: float) -> None:
        """The round trip to the shared cache (blocking: callers on the event loop run it in a thread)."""
        chunk = _chunk(limit)
        try:
            after = _count_in_window(f"{self.cache_prefix}:{int(now // WINDOW_SECONDS)}", chunk)
        except Exception as exc:  # the shared cache is down: keep serving, as rate_limit_check does
            log.warning("rate_limit_unavailable", extra={"error": str(exc)})
            self.tokens = chunk
            return
        granted = max(0, min(chunk, limit - (after - chunk)))
        self.tokens += granted
        self.exhausted_at = limit if granted < chunk else None


def _chunk(limit: int) -> int:
    """About a second of a window's rate: few round trips, and little held back from the other processes."""
    return max(1, min(limit // WINDOW_SECONDS, MAX_CHUNK))


class KeyBudget(_Share):
    """This process's share of one key's window, for all the key's WebSocket frames and MCP calls (`key_budget`
    hands it out); the same window REST requests count in."""

    def __init__(self, project_id: str, key_id: str) -> None:
        super().__init__(f"ratelimit:{project_id}:{key_id}")  # _window_key's, without the window
        self.refilling = asyncio.Lock()  # one reservation at a time, however many sockets wait for it

    async def take(self, limit: int) -> None:
        """Count one frame; raise rate_limited past `limit` a minute (the project the key acts in)."""
        now = time.time()
        self._roll(now)
        if self.tokens <= 0:
            async with self.refilling:
                self._roll(now)
                if self._needs_refill(limit):
                    # In a thread: the cache may be Redis, and the event loop must not wait on the network.
                    await asyncio.to_thread(self._refill, limit, now)
            if self.tokens <= 0:
                raise _refused(limit, now)
        self.tokens -= 1


class WindowShare(_Share):
    """A share for code on database threads (a link's rate each way, routing.crossing), under a thread lock."""

    def __init__(self, cache_prefix: str) -> None:
        super().__init__(cache_prefix)
        self.lock = threading.Lock()

    def take_now(self, limit: int, *, refill: bool = True) -> bool | None:
        """Count one; False past `limit` in this window (the caller refuses). Without `refill` (on the event loop),
        None, having taken nothing, instead of the round trip to the shared cache or a wait for a thread making it
        (which could take as long as Redis does to fail): the caller asks again on a thread."""
        now = time.time()
        if not self.lock.acquire(blocking=refill):
            return None
        try:
            self._roll(now)
            if self._needs_refill(limit):
                if not refill:
                    return None
                self._refill(limit, now)
            if self.tokens <= 0:
                return False
            self.tokens -= 1
            return True
        finally:
            self.lock.release()


class _Shares:
    """The process's one share per window name, kept while in use: a share nobody took from for a whole
    window is dropped at the next window's start, so the table holds the names of the last two minutes."""

    def __init__(self, make) -> None:
        self.make = make
        self.table: dict = {}
        self.pruned = -1

    def get(self, ident):
        window = int(time.time() // WINDOW_SECONDS)
        if window != self.pruned:
            self.pruned = window
            for stale in [i for i, share in self.table.items() if share.window < window - 1]:
                self.table.pop(stale, None)
        share = self.table.get(ident)
        if share is None:
            share = self.table.setdefault(ident, self.make(*ident))
        return share


_budgets = _Shares(KeyBudget)
_link_shares = _Shares(WindowShare)


def key_budget(caller: Caller) -> KeyBudget:
    """The process's one budget for the caller's key (its sockets' and its MCP calls')."""
    return _budgets.get((caller.key.project_id, caller.key.key_id))


def window_share(cache_prefix: str) -> WindowShare:
    """The process's one share of the window `cache_prefix` names (routing.crossing: a link's, one direction)."""
    return _link_shares.get((cache_prefix,))


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
