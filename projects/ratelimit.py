"""Per-key request rate limit, one fixed one-minute window per key, shared by every face."""

import logging
import time

from django.core.cache import cache

from broker_site.errors import RateLimited
from projects.auth import Caller

log = logging.getLogger("broker.ratelimit")


def rate_limit_check(caller: Caller) -> None:
    """Count one request against the caller's key; raise rate_limited past the project's limit."""
    limit = caller.project.rate_limit_per_minute
    now = time.time()
    window = int(now // 60)
    cache_key = f"ratelimit:{caller.key.project_id}:{caller.key.key_id}:{window}"
    try:
        count = _count_in_window(cache_key)
    except Exception as exc:  # the shared cache (Redis) is down: keep serving rather than refuse everyone
        log.warning("rate_limit_unavailable", extra={"error": str(exc)})
        return
    if count > limit:
        retry_after = max(1, int(60 - now % 60))
        raise RateLimited(f"This key is limited to {limit} requests a minute.", limit=limit, retry_after=retry_after)


def _count_in_window(cache_key: str) -> int:
    # add() is a no-op when the window exists; incr() is atomic in every shared cache backend.
    cache.add(cache_key, 0, timeout=120)
    try:
        return cache.incr(cache_key)
    except ValueError:  # evicted between add and incr: start the window again
        cache.set(cache_key, 1, timeout=120)
        return 1


class FrameBudget:
    """A token bucket for one WebSocket connection: `rate` frames a second, bursts up to `burst`.

    In memory and per connection, so one client flooding frames is slowed down (each refused
    frame gets a rate_limited error) while every other connection keeps its own budget.
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
