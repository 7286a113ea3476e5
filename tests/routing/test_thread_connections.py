"""The database connections of a request's own thread close when the request ends, not when the garbage
collector comes by (SQLite, against a live daphne: its open descriptors are counted in /proc).

Each open SQLite connection holds one descriptor on the `-wal` file, so those count the open
connections. Descriptors on the database file itself that SQLite keeps for reuse after a close
(it may not close them while another connection of the process holds a lock) are bounded by the
busiest moment, so they must not grow from one burst to the next.
"""

import asyncio
import os
import time
from collections import Counter

import httpx
import pytest

from tests.mcp.conftest import live_broker  # noqa: F401  (the live server fixture)
from tests.mcp.helpers import call

POLLS = 60

pytestmark = pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"),
                                reason="the leak is SQLite's: PostgreSQL's connections go back to the pool")


def _sqlite_descriptors(pid: int) -> Counter:
    found: Counter = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if "broker.sqlite3" in target:
            found["wal" if target.endswith("-wal") else "db" if target.endswith("sqlite3") else "other"] += 1
    return found


async def _settled(pid: int, open_connections: int, timeout: float = 60) -> Counter:
    deadline = time.monotonic() + timeout
    while (now := _sqlite_descriptors(pid))["wal"] > open_connections:
        assert time.monotonic() < deadline, f"connections still open after the requests ended: {now}"
        await asyncio.sleep(0.5)
    return now


async def test_mcp_long_polls_open_no_connection_of_their_own(live_broker):  # noqa: F811
    # First on the server: the MCP face's work runs on the pool's threads, which keep one connection each.
    pid = live_broker.process.process.pid
    before = _sqlite_descriptors(pid)
    async with live_broker.client(mode="auto") as client:
        tokens = [(await call(client, "connect_session", name=f"mcp-poller-{i}"))["session_token"]
                  for i in range(20)]
        await asyncio.gather(*(call(client, "receive_messages", session_token=token, wait_seconds=2)
                               for token in tokens))
    now = await _settled(pid, open_connections=3)
    assert now["db"] <= max(before["db"], 3), (before, now)


async def test_rest_long_polls_leave_no_connection_open_when_they_end(live_broker):  # noqa: F811
    pid = live_broker.process.process.pid
    base = live_broker.process.http_url + "/api/v1"
    limits = httpx.Limits(max_connections=POLLS + 10)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {live_broker.agent_key}"}, timeout=60,
                                 limits=limits) as http:
        tokens = [(await http.post(f"{base}/sessions/", json={"name": f"poller-{i}"})).json()["session_token"]
                  for i in range(POLLS)]
        after = []
        for _ in range(2):
            answers = await asyncio.gather(*(http.post(f"{base}/messages/receive/", json={"wait_seconds": 2},
                                                       headers={"X-Session-Token": token}) for token in tokens))
            assert {a.status_code for a in answers} == {200}
            # The pool's threads keep their connections (one each); nothing else stays open.
            after.append(await _settled(pid, open_connections=3))
        assert after[1]["db"] <= after[0]["db"], after
