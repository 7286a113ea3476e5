"""Channels' in-memory layer, for the embedded single-process server, without its per-call sweep.

Channels' InMemoryChannelLayer looks through every channel and every group member for
expired entries on each send and receive. With a thousand sockets that is thousands of
steps per message: 15 % of the server's time under the benchmark's load. Here the sweep runs
at most once a second; entries still expire (a little later), which is all it is for.
"""

import time

from channels.layers import InMemoryChannelLayer

CLEAN_EVERY_SECONDS = 1.0


class ThrottledInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at >= CLEAN_EVERY_SECONDS:
            self._cleaned_at = now
            super()._clean_expired()
