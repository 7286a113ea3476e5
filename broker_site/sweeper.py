"""The in-process sweeper: expiry, redelivery, session time-outs and purges every few seconds, in every process.

Several processes sweeping at once is safe (see services.sweep). The start-up
(broker_site.startup) starts it; `manage.py broker_sweep` runs the same pass as a separate process.
"""

import asyncio
import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from broker_site.workers import db
from leases.services import leases_ended
from projects.audit import audit_purge
from projects.links import links_expire, traffic_flushed
from routing.services import sweep
from sessions_app.services import sessions_purge, sessions_time_out

log = logging.getLogger("broker.sweeper")
_task: asyncio.Task | None = None


def sweep_pass() -> dict[str, int]:
    """One pass of everything the sweeper does: expiry, redelivery, session time-outs, and the purges that
    bound storage (ended messages, long-disconnected sessions, old audit events), a batch of each per pass."""
    now = timezone.now()
    counts = sweep(now)
    counts["sessions_timed_out"] = sessions_time_out(now)
    counts["leases_ended"] = leases_ended(now)  # after the time-outs: their sessions' leases end with them
    counts["sessions_purged"] = sessions_purge(now - timedelta(seconds=settings.BROKER["SESSION_RETENTION_SECONDS"]))
    counts["links_expired"] = links_expire(now)
    traffic_flushed()
    counts["audit_purged"] = audit_purge(now - timedelta(seconds=settings.BROKER["AUDIT_RETENTION_SECONDS"]))
    return counts


async def _run(interval: int) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await db(sweep_pass)()
        except Exception:
            log.exception("sweep failed; trying again next interval")


def ensure_sweeper_running() -> None:
    """Start this process's sweeper if it is not running. Call from inside the event loop."""
    global _task
    interval = settings.BROKER["SWEEP_INTERVAL_SECONDS"]
    if interval <= 0 or (_task is not None and not _task.done()):
        return
    _task = asyncio.get_running_loop().create_task(_run(interval), name="broker-sweeper")
