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
        chunk = _chunk(limit)
        cache_key = _window_key(self.project_id, self.key_id, now)
        try:
            # In a thread: the cache may be Redis, and the event loop must not wait on the network.
            after = await asyncio.to_thread(_count_in_window, cache_key, chunk)
        except Exception as exc:  # the shared cache is down: keep serving, as rate_limit_check does
            log.warning("rate_limit_unavailable", extra={"error": str(exc)})
            self.tokens = chunk
            return
        self._granted(limit, chunk, after)

    def _granted(self, limit: int, chunk: int, after: int) -> None:
        granted = max(0, min(chunk, limit - (after - chunk)))
        self.tokens += granted
        self.exhausted_at = limit if granted < chunk else None


def _chunk(limit: int) -> int:
    """About a second of a window's rate: few round trips, and little held back from the other processes."""
    return max(1, min(limit // WINDOW_SECONDS, MAX_CHUNK))


class WindowShare(KeyBudget):
    """This process's share of another shared window, for code on database threads (a link's rate each way,
    routing.crossing): reserved in chunks as a key's budget is, under a thread lock instead of an asyncio one."""

    def __init__(self, cache_key_prefix: str) -> None:
        super().__init__("", "")
        self.prefix = cache_key_prefix
        self.lock = threading.Lock()

    def take_now(self, limit: int) -> bool:
        """Count one; False past `limit` in this window (the caller refuses)."""
        now = time.time()
        with self.lock:
            self._roll(now)
            if self.tokens <= 0 and self.exhausted_at != limit:
                chunk = _chunk(limit)
                try:
                    after = _count_in_window(f"{self.prefix}:{int(now // WINDOW_SECONDS)}", chunk)
                except Exception as exc:  # the shared cache is down: keep serving
                    log.warning("rate_limit_unavailable", extra={"error": str(exc)})
                    self.tokens = chunk
                else:
                    self._granted(limit, chunk, after)
            if self.tokens <= 0:
                return False
            self.tokens -= 1
            return True


_shares: dict[str, WindowShare] = {}
_shares_pruned = -1


def window_share(cache_key_prefix: str) -> WindowShare:
    """The process's one share of the window `cache_key_prefix` names; unused for a whole window, dropped."""
    global _shares_pruned
    window = int(time.time() // WINDOW_SECONDS)
    if window != _shares_pruned:
        _shares_pruned = window
        for prefix in [p for p, share in _shares.items() if share.window < window - 1]:
            _shares.pop(prefix, None)
    share = _shares.get(cache_key_prefix)
    if share is None:
        share = _shares.setdefault(cache_key_prefix, WindowShare(cache_key_prefix))
    return share


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
