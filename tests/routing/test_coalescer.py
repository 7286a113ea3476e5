"""Rounds in process: requests that wait while a round runs go together in the next, each answered by its own position."""

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from routing.batching import Coalescer

# Only a guard against a broken coalescer hanging the run: nothing here waits this long when it works.
TIMEOUT = 5


class RoundFailed(Exception):
    pass


class Rounds:
    """A run_round that records each round; the first round can be held until the test releases it."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[list[Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, requests: list[Any]) -> list[Any]:
        self.calls.append(list(requests))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(TIMEOUT)
        if "boom" in requests:
            raise RoundFailed(requests)
        return [f"answer to {request}" for request in requests]

    async def first_round_running(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, TIMEOUT), "the first round never started"


@pytest.fixture
def lane() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-coalescer")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def rounds() -> Iterator[Rounds]:
    rounds = Rounds(hold_first=True)
    yield rounds
    rounds.release.set()  # a failed test must not leave the lane's thread held


async def submit_while_first_round_runs(coalescer: Coalescer, rounds: Rounds, requests: list[Any]) -> list[asyncio.Task]:
    """Start round one with "first", then submit `requests` in order while it is held at the database."""
    first = asyncio.create_task(coalescer.submit("first"))
    await rounds.first_round_running()
    later = []
    for request in requests:
        later.append(asyncio.create_task(coalescer.submit(request)))
        await asyncio.sleep(0)  # let it hand its request in, so submission order is the order written here
    assert [request for request, _ in coalescer.waiting] == requests
    return [first, *later]


async def test_requests_submitted_while_a_round_runs_go_together_in_the_next_round_in_order(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=100)
    tasks = await submit_while_first_round_runs(coalescer, rounds, ["b", "c", "d", "e"])
    rounds.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert rounds.calls == [["first"], ["b", "c", "d", "e"]]


async def test_a_round_never_exceeds_max_batch_and_the_rest_follow_in_order(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=2)
    tasks = await submit_while_first_round_runs(coalescer, rounds, ["b", "c", "d", "e", "f"])
    rounds.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert rounds.calls == [["first"], ["b", "c"], ["d", "e"], ["f"]]


async def test_each_submitter_gets_the_answer_at_its_own_position(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=100)
    tasks = await submit_while_first_round_runs(coalescer, rounds, ["b", "c", "d"])
    rounds.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert rounds.calls[1] == ["b", "c", "d"]  # the three shared a round, so positions are what keeps them apart
    assert answers == ["answer to first", "answer to b", "answer to c", "answer to d"]


async def test_a_failed_round_raises_in_every_submitter_of_that_round_and_later_rounds_still_run(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=100)
    tasks = await submit_while_first_round_runs(coalescer, rounds, ["boom", "bystander"])
    rounds.release.set()
    first, boom, bystander = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
    assert first == "answer to first"
    assert isinstance(boom, RoundFailed)
    assert bystander is boom  # same round, same failure: nobody in it is left waiting
    assert await asyncio.wait_for(coalescer.submit("after"), TIMEOUT) == "answer to after"
    assert rounds.calls == [["first"], ["boom", "bystander"], ["after"]]


async def test_a_submitter_cancelled_before_its_round_is_not_sent(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=100)
    first, b, gone, d = await submit_while_first_round_runs(coalescer, rounds, ["b", "gone", "d"])
    gone.cancel()  # its connection closed while it waited
    rounds.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, b, d), TIMEOUT) == ["answer to first", "answer to b", "answer to d"]
    assert gone.cancelled()
    assert rounds.calls == [["first"], ["b", "d"]]


async def test_a_round_whose_submitters_all_left_is_not_run(lane, rounds):
    coalescer = Coalescer("test", rounds, lane, max_batch=2)
    first, b, c, d = await submit_while_first_round_runs(coalescer, rounds, ["b", "c", "d"])
    b.cancel()
    c.cancel()
    rounds.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, d), TIMEOUT) == ["answer to first", "answer to d"]
    assert rounds.calls == [["first"], ["d"]]  # not an empty round for b and c


async def test_an_idle_coalescer_answers_a_lone_request_in_a_round_of_its_own(lane):
    rounds = Rounds()
    coalescer = Coalescer("test", rounds, lane, max_batch=100)
    assert await asyncio.wait_for(coalescer.submit("a"), TIMEOUT) == "answer to a"
    assert await asyncio.wait_for(coalescer.submit("b"), TIMEOUT) == "answer to b"
    assert rounds.calls == [["a"], ["b"]]
