"""The two-lane pool: once a thread is free, urgent jobs go before normal ones, and each lane is first come, first served."""

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, wait

import pytest

from broker_site.workers import NORMAL, URGENT, PriorityPool

# Only a guard against a broken pool hanging the run: nothing here waits this long when it works.
TIMEOUT = 5


class HeldPool:
    """A pool of one thread, kept busy by a first job until the test releases it, so later jobs queue up."""

    def __init__(self) -> None:
        self.pool = PriorityPool(1, "test-pool")
        self.urgent, self.normal = self.pool.lane(URGENT), self.pool.lane(NORMAL)
        self.ran: list[str] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.normal.submit(self._busy)
        assert self.entered.wait(TIMEOUT), "the pool's thread never started"

    def _busy(self) -> None:
        self.entered.set()
        self.release.wait(TIMEOUT)

    def job(self, name: str) -> str:
        self.ran.append(name)  # one thread: appends happen in the order the jobs ran
        return name

    def finish(self, futures: list[Future]) -> None:
        self.release.set()
        _, pending = wait(futures, TIMEOUT)
        assert not pending, "jobs never ran"


@pytest.fixture
def held() -> Iterator[HeldPool]:
    held = HeldPool()
    yield held
    held.release.set()  # the thread is a daemon with no way to stop it; a failed test must not leave it held


def test_urgent_jobs_queued_after_normal_ones_run_first(held):
    futures = [held.normal.submit(held.job, name) for name in ("send 1", "send 2")]
    futures += [held.urgent.submit(held.job, name) for name in ("claim 1", "ack 1")]
    held.finish(futures)
    assert held.ran == ["claim 1", "ack 1", "send 1", "send 2"]


def test_within_a_lane_jobs_run_in_the_order_submitted(held):
    names = [f"{lane} {n}" for n in range(5) for lane in ("claim", "send")]
    futures = [(held.urgent if name.startswith("claim") else held.normal).submit(held.job, name) for name in names]
    held.finish(futures)
    assert held.ran == [f"claim {n}" for n in range(5)] + [f"send {n}" for n in range(5)]


def test_each_job_gets_its_own_result_and_a_failing_job_raises_in_its_caller_only(held):
    def fail() -> None:
        raise ValueError("the database said no")

    failing = held.urgent.submit(fail)
    after = held.normal.submit(held.job, "after")
    held.finish([failing, after])
    with pytest.raises(ValueError, match="the database said no"):
        failing.result()
    assert after.result() == "after"  # the thread survived the failure


def test_a_job_cancelled_while_queued_does_not_run(held):
    cancelled = held.urgent.submit(held.job, "gone")
    kept = held.normal.submit(held.job, "kept")
    assert cancelled.cancel()
    held.finish([kept])
    assert held.ran == ["kept"]
    with pytest.raises(CancelledError):
        cancelled.result()


def test_no_thread_starts_until_the_first_job():
    pool = PriorityPool(2, "test-idle-pool")  # management commands import the pool and must start no threads
    assert pool.threads == []
    assert pool.lane(NORMAL).submit(lambda: "done").result(TIMEOUT) == "done"
    assert len(pool.threads) == 2
