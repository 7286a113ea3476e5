"""The client side of bench/ws_load.py: worker processes that each hold a share of the WebSocket sessions.

One Python process on a small machine cannot both send and receive a few thousand frames a
second for a thousand sockets and still measure fairly, so bench/ws_load.py starts several
of these workers (`ClientPool`) and steers them through the phases of a run over a pipe:
connect, load, status (while draining), report, broadcast, close.

Every worker speaks the broker's WebSocket frames (hello/welcome, send/result, message/ack,
broadcast); the echo ceiling (bench/echo_app.py) answers the same frames. Send payloads
carry the sender's wall-clock time (`time.time()`, one clock for every process on the
machine), so the receiving worker measures send -> push latency.
"""

import asyncio
import itertools
import json
import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

ACK_DELAY_S = 0.02  # pushed messages are acked in batches, at most this long after they arrive
TICK_S = 0.005  # how often the load loop looks at the clock to send what is due
SLOW_MS = 100  # pushes slower than this are also reported with when they were sent, to see what was going on
HELLO_TIMEOUT_S = 60


@dataclass
class Tally:
    """What one worker saw during the load (the broadcast phase is kept apart)."""

    sent: int = 0
    skipped: int = 0  # due sends not made: the session already had max_in_flight unanswered sends
    accepted_ids: list[str] = field(default_factory=list)
    send_rtt_ms: list[float] = field(default_factory=list)
    push_latency_ms: list[float] = field(default_factory=list)
    received_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    errors: Counter = field(default_factory=Counter)
    deliveries_by_second: Counter = field(default_factory=Counter)
    frames: Counter = field(default_factory=Counter)  # every frame received, by type (presence included)
    load_started: float = 0.0
    slow_pushes: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the load, ms), past SLOW_MS

    def record_delivery(self, message_id: str, sent_at: float | None, now: float) -> None:
        if message_id in self.received_ids:
            self.duplicates += 1
            return
        self.received_ids.add(message_id)
        if sent_at is not None:
            self.push_latency_ms.append((now - sent_at) * 1000)
            if self.push_latency_ms[-1] > SLOW_MS and self.load_started and len(self.slow_pushes) < 1000:
                self.slow_pushes.append((round(sent_at - self.load_started, 2), round(self.push_latency_ms[-1], 1)))
        if self.load_started:
            self.deliveries_by_second[int(now - self.load_started)] += 1


class BroadcastWatch:
    """When each session got its copy of each broadcast round (a redelivered copy counts once)."""

    def __init__(self) -> None:
        self.arrivals: dict[int, dict[str, float]] = {}  # round -> receiving session id -> arrival time
        self.changed = asyncio.Event()

    def arrived(self, round_number: int, session_id: str, now: float) -> None:
        self.arrivals.setdefault(round_number, {}).setdefault(session_id, now)
        self.changed.set()

    async def wait_for(self, round_number: int, expected: int, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        while len(self.arrivals.get(round_number, {})) < expected and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        return list(self.arrivals.get(round_number, {}).values())


class Session:
    """One WebSocket session: reads every frame, acks pushes in batches, tracks its unanswered sends."""

    request_numbers = itertools.count(1)

    def __init__(self, ws, session_id: str, tally: Tally, broadcasts: BroadcastWatch, max_in_flight: int,
                 token: str | None = None) -> None:
        self.ws = ws
        self.session_id = session_id
        self.token = token  # to resume the session after a restart (the echo has none)
        self.name = ""  # the name it said hello with
        self.tally = tally
        self.broadcasts = broadcasts
        self.max_in_flight = max_in_flight
        self.in_flight: dict[str, float] = {}  # request id -> perf_counter when sent
        self.pending_acks: list[str] = []
        self.ack_timer: asyncio.TimerHandle | None = None
        self.background: set[asyncio.Task] = set()
        self.broadcast_results: dict[int, dict] = {}
        self.reader = asyncio.create_task(self.read_frames())

    async def read_frames(self) -> None:
        try:
            async for raw in self.ws:
                self.on_frame(json.loads(raw))
        except ConnectionClosed:
            pass
        if self.ws.close_code not in (1000, None):
            self.tally.errors[f"closed_{self.ws.close_code}"] += 1

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        self.tally.frames[kind] += 1
        if kind == "message":
            self.on_message(frame["message"])
        elif kind == "result":
            self.on_result(frame)
        elif kind == "error":
            self.tally.errors[str(frame.get("error"))] += 1
            self.in_flight.pop(str(frame.get("request_id")), None)
        # session_joined, session_left and anything else: not measured

    def on_message(self, message: dict[str, Any]) -> None:
        now = time.time()
        self.pending_acks.append(message["message_id"])
        if self.ack_timer is None:
            self.ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY_S, self.flush_acks)
        payload = message.get("payload") or {}
        if "round" in payload:
            self.broadcasts.arrived(payload["round"], self.session_id, now)
        else:
            self.tally.record_delivery(message["message_id"], payload.get("t"), now)

    def on_result(self, frame: dict[str, Any]) -> None:
        sent_at = self.in_flight.pop(str(frame.get("request_id")), None)
        result = frame.get("result") or {}
        if frame.get("for") == "broadcast":
            self.broadcast_results[int(str(frame["request_id"]).removeprefix("b"))] = result
            return
        if sent_at is None:
            return
        self.tally.send_rtt_ms.append((time.perf_counter() - sent_at) * 1000)
        if result.get("status") in ("pushing", "queued"):
            self.tally.accepted_ids.append(result["message_id"])
        else:
            self.tally.errors[f"status_{result.get('status')}"] += 1

    def flush_acks(self) -> None:
        self.ack_timer = None
        ids, self.pending_acks = self.pending_acks, []
        self.in_background(self.ws.send(json.dumps({"type": "ack", "message_ids": ids})))

    def in_background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(self.count_failure)

    def count_failure(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.tally.errors[type(task.exception()).__name__] += 1

    async def send_to(self, recipient_id: str) -> None:
        if len(self.in_flight) >= self.max_in_flight:
            self.tally.skipped += 1
            return
        request_id = str(next(self.request_numbers))
        frame = {"type": "send", "recipient_id": recipient_id, "payload": {"t": time.time()}, "request_id": request_id}
        self.in_flight[request_id] = time.perf_counter()
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed:
            self.in_flight.pop(request_id, None)
            self.tally.errors["send_on_closed_connection"] += 1
            return
        self.tally.sent += 1

    async def broadcast(self, round_number: int) -> float:
        """Send one broadcast; returns the time it was sent."""
        sent_at = time.time()
        frame = {"type": "broadcast", "payload": {"round": round_number, "t": sent_at}, "request_id": f"b{round_number}"}
        await self.ws.send(json.dumps(frame))
        return sent_at


async def open_session(url: str, key: str, name: str, tally: Tally, broadcasts: BroadcastWatch, options: dict,
                       resume: Session | None = None) -> Session:
    """Connect, say hello (resuming `resume`'s session if given), wait for welcome; the session then reads its
    frames in the background.

    `presence` in the hello says whether this session wants session_joined/left frames (the echo ignores it).
    """
    ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}, compression=None,
                                  ping_interval=None, open_timeout=HELLO_TIMEOUT_S, close_timeout=2, max_size=None)
    hello = {"type": "hello", "name": name, "presence": options["presence"], "request_id": 1}
    if resume is not None:
        hello.update(session_id=resume.session_id, session_token=resume.token)
    await ws.send(json.dumps(hello))
    async with asyncio.timeout(HELLO_TIMEOUT_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "welcome":
                return Session(ws, str(frame["session_id"]), tally, broadcasts, options["max_in_flight"],
                               frame.get("session_token") or (resume.token if resume else None))
            if frame.get("type") == "error":
                await ws.close()
                raise RuntimeError(f"hello refused: {frame.get('error')}: {frame.get('message')}")


class Worker:
    """One client process: its sessions, its tally, and the commands the parent sends it."""

    def __init__(self, pipe: Connection, url: str, key: str, names: list[str], options: dict) -> None:
        self.pipe = pipe
        self.url = url
        self.key = key
        self.names = names
        self.options = options
        self.tally = Tally()
        self.broadcasts = BroadcastWatch()
        self.sessions: list[Session] = []

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, arguments = await loop.run_in_executor(None, self.pipe.recv)
            if command == "close":
                await self.close()
                self.pipe.send({"closed": True})
                return
            try:
                reply = await getattr(self, command)(**arguments)
            except Exception as exc:  # the parent stops the run and shows this
                reply = {"worker_error": f"{command}: {type(exc).__name__}: {exc}"}
            self.pipe.send(reply)

    async def connect(self) -> dict:
        started = time.perf_counter()
        self.sessions, failures = await self._opened([(name, None) for name in self.names],
                                                     self.options["connect_concurrency"])
        return {"session_ids": [s.session_id for s in self.sessions], "seconds": time.perf_counter() - started,
                "failures": dict(failures), "frames": dict(self.tally.frames)}

    async def reconnect(self, concurrency: int) -> dict:
        """Resume every session at once (at most `concurrency` handshakes at a time) after a restart."""
        for session in self.sessions:
            session.reader.cancel()
        started = time.perf_counter()
        self.sessions, failures = await self._opened([(s.name, s) for s in self.sessions], concurrency)
        return {"welcomed": len(self.sessions), "seconds": time.perf_counter() - started, "failures": dict(failures)}

    async def _opened(self, wanted: list[tuple[str, Session | None]], concurrency: int
                      ) -> tuple[list[Session], Counter]:
        """Open a session per (name, session to resume or None), `concurrency` handshakes at a time, within the
        connect deadline; the ones opened, and why the others were not."""
        gate = asyncio.Semaphore(concurrency)
        failures: Counter = Counter()

        async def one(name: str, resume: Session | None) -> Session | None:
            async with gate:
                try:
                    session = await open_session(self.url, self.key, name, self.tally, self.broadcasts, self.options,
                                                 resume=resume)
                    session.name = name
                    return session
                except Exception as exc:
                    failures[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                    return None

        attempts = [asyncio.create_task(one(name, resume)) for name, resume in wanted]
        _, late = await asyncio.wait(attempts, timeout=self.options["connect_deadline"])
        for attempt in late:
            attempt.cancel()
        if late:
            failures[f"not connected within the {self.options['connect_deadline']} s deadline"] += len(late)
            await asyncio.wait(late)
        return [a.result() for a in attempts if not a.cancelled() and a.result() is not None], failures

    async def load(self, peers: list[str], rate: float, seconds: float, start_at: float) -> dict:
        """Send to random peers at `rate` sends/s (spread round-robin over this worker's sessions)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        self.tally.load_started = start_at
        cpu_before, began, offered = time.process_time(), loop.time(), 0
        turns = itertools.cycle(self.sessions)
        while (elapsed := loop.time() - began) < seconds:
            for _ in range(int(elapsed * rate) - offered):
                session = next(turns)
                await session.send_to(random_peer(peers, session.session_id))
                offered += 1
            await asyncio.sleep(TICK_S)
        return {"offered": offered, "cpu_seconds": time.process_time() - cpu_before,
                "seconds": loop.time() - began}

    async def reset(self) -> dict:
        """A fresh tally for the next load phase (the sessions hold this one, so it is emptied in place)."""
        fresh = Tally()
        for name in (f.name for f in fields(Tally)):
            setattr(self.tally, name, getattr(fresh, name))
        return {}

    async def status(self) -> dict:
        return {"accepted": len(self.tally.accepted_ids), "received": len(self.tally.received_ids),
                "in_flight": sum(len(s.in_flight) for s in self.sessions),
                "open": sum(1 for s in self.sessions if s.ws.close_code is None)}

    async def report(self) -> dict:
        """Everything measured during the load; sends still unanswered now count as timeouts."""
        tally = self.tally
        return {"sent": tally.sent, "skipped": tally.skipped, "accepted_ids": tally.accepted_ids,
                "received_ids": list(tally.received_ids), "duplicates": tally.duplicates,
                "send_rtt_ms": tally.send_rtt_ms, "push_latency_ms": tally.push_latency_ms,
                "errors": dict(tally.errors), "timeouts": sum(len(s.in_flight) for s in self.sessions),
                "deliveries_by_second": dict(tally.deliveries_by_second), "frames": dict(tally.frames),
                "slow_pushes": tally.slow_pushes}

    async def broadcast(self, round_number: int, sender: bool, timeout: float) -> dict:
        """Round `round_number`: the sender's first session broadcasts; everyone waits for their copies."""
        expected = len(self.sessions) - (1 if sender else 0)
        broadcaster = next(s for s in self.sessions if s.ws.close_code is None) if sender else None
        sent_at = await broadcaster.broadcast(round_number) if broadcaster else None
        arrivals = await self.broadcasts.wait_for(round_number, expected, timeout)
        result = {"expected": expected, "arrived": len(arrivals), "first": min(arrivals, default=None),
                  "last": max(arrivals, default=None), "sent_at": sent_at}
        if sender:
            await asyncio.sleep(0.2)  # the result frame may trail the pushes
            result["result"] = broadcaster.broadcast_results.get(round_number)
        return result

    async def close(self) -> None:
        """Drop the connections without a closing handshake (a benchmark teardown, not a polite leave)."""
        for session in self.sessions:
            session.reader.cancel()
            session.ws.transport.abort()


def random_peer(peers: list[str], own_id: str) -> str:
    while True:
        peer = random.choice(peers)
        if peer != own_id or len(peers) == 1:
            return peer


def worker_main(pipe: Connection, url: str, key: str, names: list[str], options: dict) -> None:
    asyncio.run(Worker(pipe, url, key, names, options).serve())


class ClientPool:
    """The parent's handle on the worker processes; each call runs one phase on every worker at once."""

    def __init__(self, processes: int, url: str, key: str, names: list[str], options: dict) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for share in (names[n::processes] for n in range(processes)):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(child_end, url, key, share, options), daemon=True)
            process.start()
            self.pipes.append(parent_end)
            self.processes.append(process)

    def __enter__(self) -> "ClientPool":
        return self

    def __exit__(self, *exc_info) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            try:
                pipe.send(("close", {}))
                if pipe.poll(10):
                    pipe.recv()
            except (OSError, EOFError):
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def ask_all(self, command: str, per_worker: list[dict] | None = None) -> list[dict]:
        for n, pipe in enumerate(self.pipes):
            pipe.send((command, per_worker[n] if per_worker else {}))
        replies = [pipe.recv() for pipe in self.pipes]
        failed = [reply["worker_error"] for reply in replies if "worker_error" in reply]
        if failed:
            raise RuntimeError(f"a client process failed: {failed[0]}")
        return replies

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]
