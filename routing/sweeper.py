"""The in-process sweeper: expiry, redelivery and session time-outs every few seconds, in every process.

Several processes sweeping at once is safe (see services.sweep). It starts lazily on the
first request under daphne, which sends no lifespan events, and from the lifespan under
uvicorn; `manage.py broker_sweep` runs the same pass as a separate process.
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from routing.services import sweep
from sessions_app.services import sessions_time_out

log = logging.getLogger("broker.sweeper")
_task: asyncio.Task | None = None


def sweep_pass() -> dict[str, int]:
    """One pass of everything the sweeper does: expiry, redelivery, purge, session time-outs."""
    counts = sweep()
    counts["sessions_timed_out"] = sessions_time_out()
    return counts


def sweep_once() -> dict[str, int]:
    try:
        return sweep_pass()
    finally:
        # This runs outside any request, so nothing else would close its connection.
        connection.close()


async def _run(interval: int) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sync_to_async(sweep_once, thread_sensitive=False)()
        except Exception:
            log.exception("sweep failed; trying again next interval")


def ensure_sweeper_running() -> None:
    """Start this process's sweeper if it is not running. Call from inside the event loop."""
    global _task
    interval = settings.BROKER["SWEEP_INTERVAL_SECONDS"]
    if interval <= 0 or (_task is not None and not _task.done()):
        return
    _task = asyncio.get_running_loop().create_task(_run(interval), name="broker-sweeper")
