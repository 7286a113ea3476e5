"""The threads that run the database work of async code: one pool, one queue, served in order of urgency.

Everything async that touches the database runs here: the WebSocket consumers and their
rounds, the keep-alive, long polls, MCP tool calls and inbox reads, the sweeper. Long-lived
threads keep their database connections (SQLite's stay open; PostgreSQL's go back to the
pool between calls), instead of a thread and a connection per call. Django runs its own sync
views (REST) on its own threads.

Pushing must not wait behind sending. With one FIFO pool, a burst of a thousand sends
queued ahead of every claim, and deliveries only flowed once the sending stopped. Here claims
and acks (lane 0) go before sends (lane 1); within a lane, first come, first served.

How many threads: SQLite takes one writer at a time and makes the others sleep and retry,
so on SQLite one thread does it all; PostgreSQL gets BROKER_DB_THREADS (each holds a
pooled connection while it works).

Django's own threads are another matter: it runs each request's sync code (REST views, the
REST long poll's claims) on a thread made for that request (asgiref's ThreadSensitiveContext),
which ends with it. SQLite connections are kept open (CONN_MAX_AGE None, for the pool's sake),
so Django's end-of-request check leaves them, and a dead thread's connection was closed only
when the garbage collector came by: 300 long polls left 605 SQLite descriptors open. So a
request's thread closes its connections when its request finishes; the pool's threads, which
keep theirs on purpose, and the main thread (the test client's) are left alone.
"""

import itertools
import queue
import threading
from concurrent.futures import Executor, Future

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.signals import request_finished
from django.db import connection, connections

URGENT, NORMAL = 0, 1
_thread = threading.local()  # keeps_connections: this thread is the pool's, and lives on


class PriorityPool:
    def __init__(self, threads: int, name: str) -> None:
        self.jobs: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()  # FIFO within a lane; also keeps the queue from comparing jobs
        self.size, self.name = threads, name
        self.threads: list[threading.Thread] = []
        self.starting = threading.Lock()

    def lane(self, rank: int) -> Executor:
        return _Lane(self, rank)

    def put(self, rank: int, future: Future, fn, args, kwargs) -> None:
        if not self.threads:  # started on first use, so management commands start no threads
            self._start()
        self.jobs.put((rank, next(self.order), future, fn, args, kwargs))

    def _start(self) -> None:
        with self.starting:
            while len(self.threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self.threads)}", daemon=True)
                thread.start()
                self.threads.append(thread)

    def _work(self) -> None:
        _thread.keeps_connections = True
        while True:
            _, _, future, fn, args, kwargs = self.jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the awaiting coroutine, like ThreadPoolExecutor does
                future.set_exception(exc)
            else:
                future.set_result(result)


class _Lane(Executor):
    def __init__(self, pool: PriorityPool, rank: int) -> None:
        self.pool, self.rank = pool, rank

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self.pool.put(self.rank, future, fn, args, kwargs)
        return future


def _threads() -> int:
    return 1 if connection.vendor == "sqlite" else settings.BROKER["DB_THREADS"]


pool = PriorityPool(_threads(), "broker-db")
urgent_lane = pool.lane(URGENT)
normal_lane = pool.lane(NORMAL)


def db(fn, lane: Executor = normal_lane):
    """`fn` as a coroutine on this pool's `lane`; stale connections are closed around each call."""
    return database_sync_to_async(fn, thread_sensitive=False, executor=lane)


class NeedsDatabase(Exception):
    """Raised by code asked to run on the event loop (`in_place`), at the first step that would read or write the
    database, before it has changed anything: the caller runs it again on the pool (`in_place_or_db`)."""


async def in_place_or_db(fn, *args):
    """`fn(*args, in_place=True)` here, on the event loop, when it needs no database; else `fn(*args)` on the pool."""
    try:
        return fn(*args, in_place=True)
    except NeedsDatabase:
        return await db(fn)(*args)


def close_request_thread_connections(**kwargs) -> None:
    """On request_finished, run by Django on the request's own thread: that thread ends now, and so do its connections."""
    if getattr(_thread, "keeps_connections", False) or threading.current_thread() is threading.main_thread():
        return
    connections.close_all()


request_finished.connect(close_request_thread_connections, dispatch_uid="broker_close_request_thread_connections")
