"""Two sessions racing for the same exclusive lease: exactly one wins, every time (PostgreSQL, real concurrency)."""

import threading

import pytest
from django.db import connection

from leases.contracts import LeaseIn
from leases.models import FileLease
from leases.services import files_lease

ROUNDS = 100


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_two_sessions_racing_for_one_exclusive_lease_give_exactly_one_winner_each_time(make_tenant):
    tenant = make_tenant("alpha")
    racers = [tenant.connect("ann")[0], tenant.connect("ben")[0]]
    start = threading.Barrier(2)
    won: list[list[bool]] = [[], []]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for n in range(ROUNDS):
                start.wait()
                # Each racer names the path its own way (a glob against a path), so overlap, not equality, decides.
                paths = [f"pkg{n}/*.py"] if index == 0 else [f"pkg{n}/mod.py"]
                won[index].append(files_lease(racers[index], LeaseIn(paths=paths))["granted"])
        except BaseException as exc:  # collected, so the test fails with the real error
            errors.append(exc)
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [a + b for a, b in zip(*won, strict=True)] == [1] * ROUNDS
    assert FileLease.objects.count() == ROUNDS
