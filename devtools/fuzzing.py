"""Plumbing for fuzzing a live broker (tests/fuzz and bench/fuzz.py): what counts as a server error,
the canary that keeps asking the server for answers meanwhile, and hypothesis strategies for
WebSocket frames and MCP tool arguments.

The pass condition of every fuzzer is the same: bad input is answered with a clear error, never a
5xx, an `internal_error` or a traceback, and another project's client keeps getting answers.
"""

import asyncio
import concurrent.futures
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect

# Text a broker never sends to a client: the marks of an exception that escaped its face.
CRASH_MARKS = ("internal_error", "Traceback (most recent call last)")


def server_error(status: int | None, text: str) -> str:
    """Why this answer is a server error ("" when it is not): a 5xx, or a crash mark in the body."""
    if status is not None and status >= 500:
        return f"status {status}"
    for mark in CRASH_MARKS:
        if mark in text:
            return f"{mark!r} in the answer"
    return ""


def error_code(status: int | None, text: str) -> str:
    """The answer's `error` code, `status NNN` for a non-error answer, for the counts by code."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    if isinstance(body, dict) and body.get("type") in {"error", "result", "welcome"}:
        return body.get("error") or body["type"]
    return "ok" if status is not None and status < 400 else f"status {status}"


# --- the canary: another project's client asking simple questions throughout ---------------------------

@dataclass
class Canary:
    """A REST call and a WebSocket send -> push -> ack in a loop, in a thread of its own, as another
    project; records how long each call took. Its answers must keep coming while the fuzzers run."""

    http_url: str
    ws_url: str
    key: str
    pause: float = 0.05
    timeout: float = 30
    session_id: str = ""
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _asked: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Canary":
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)
        self._thread.start()
        self._asked.wait(self.timeout)  # the fuzzers start once the canary has had its first answers
        return self

    def stop(self) -> "Canary":
        self._stop.set()
        if self._thread:
            self._thread.join(self.timeout * 3)
        return self

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "worst_seconds": round(self.worst, 3), "p99_seconds": round(self.p99, 3),
                "failures": len(self.failures), "failure_examples": self.failures[:5]}

    def _timed(self, call: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            call()
        except Exception as exc:  # the canary reports any failure, it never stops on one
            self.failures.append(f"{type(exc).__name__}: {exc}"[:300])
        self.latencies.append(time.monotonic() - started)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.http_url, headers=headers, timeout=self.timeout) as rest:
            try:
                with ws_connect(self.ws_url, additional_headers=headers, open_timeout=self.timeout,
                                max_size=None) as socket:
                    self._hello(socket)
                    self._loop(rest, socket)
            except Exception as exc:  # the socket failed: say so, and go on asking over REST
                self.failures.append(f"websocket: {type(exc).__name__}: {exc}"[:300])
                self._loop(rest, None)
        self._asked.set()

    def _loop(self, rest: httpx.Client, socket) -> None:
        while not self._stop.is_set():
            self._timed(lambda: self._rest_call(rest))
            if socket is not None:
                started = time.monotonic()
                self._ws_round(socket)  # a failure here ends the socket's part (see _run)
                self.latencies.append(time.monotonic() - started)
            self._asked.set()
            self._stop.wait(self.pause)

    def _hello(self, socket) -> None:
        socket.send(json.dumps({"type": "hello", "name": "canary", "presence": False}))
        welcome = json.loads(socket.recv(self.timeout))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        self.session_id = welcome["session_id"]

    @staticmethod
    def _rest_call(rest: httpx.Client) -> None:
        response = rest.get("/api/v1/sessions/")
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/v1/sessions/ answered {response.status_code}: {response.text[:200]}")

    def _ws_round(self, socket) -> None:
        """Send to itself and wait for the push, then ack it: every hop of the broker's one path."""
        socket.send(json.dumps({"type": "send", "recipient_id": self.session_id, "payload": {"ping": 1},
                                "request_id": "canary"}))
        deadline = time.monotonic() + self.timeout
        message_id = None
        while message_id is None:
            frame = json.loads(socket.recv(max(0.1, deadline - time.monotonic())))
            if frame.get("type") == "error":
                raise RuntimeError(f"canary send refused: {frame}")
            if frame.get("type") == "message":
                message_id = frame["message"]["message_id"]
        socket.send(json.dumps({"type": "ack", "message_ids": [message_id]}))


# --- generated input ------------------------------------------------------------------------------------

def nested(depth: int, leaf: Any = 1) -> Any:
    """A value nested `depth` levels deep (lists and objects by turns), built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


def nested_text(depth: int) -> str:
    """JSON text nested `depth` levels deep, for depths json.dumps itself refuses to write."""
    return '{"n":' * depth + "1" + "}" * depth


# Any JSON value, small enough to generate fast, deep and wide enough to reach odd corners.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)

# Values past the broker's limits: huge strings, huge numbers, deep nesting.
hostile_values = st.one_of(
    st.integers(min_value=2**63, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63)),
    st.sampled_from([1e308, -1e308, 0.5, -1, 0, "", " ", "\x00", "../../etc/passwd", "' OR 1=1 --", "%s%n"]),
    st.integers(min_value=1_000, max_value=300_000).map(lambda n: "a" * n),
    st.integers(min_value=65, max_value=200).map(nested),  # deeper than the broker takes, shallow enough for clients to write
)


def value_for(schema: dict[str, Any]) -> st.SearchStrategy:
    """Mostly a value of the property's declared type (to get past the types and into the logic),
    sometimes anything at all (wrong types), sometimes a hostile value."""
    kind = schema.get("type", "")
    if "enum" in schema:
        typed = st.sampled_from(schema["enum"])
    elif kind == "string":
        typed = st.text(max_size=int(schema.get("maxLength", 60)) + 5)
    elif kind == "integer":
        typed = st.integers(min_value=-10, max_value=int(schema.get("maximum", 10_000)) + 10)
    elif kind == "number":
        typed = st.floats(min_value=-1, max_value=float(schema.get("maximum", 100)) + 1, allow_nan=False)
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "array":
        typed = st.lists(value_for(schema.get("items", {})), max_size=5)
    elif kind == "object":
        typed = st.dictionaries(st.text(max_size=12), json_values, max_size=4)
    else:
        typed = json_values
    for option in schema.get("anyOf", []):
        typed = typed | value_for(option)
    return st.one_of(typed, typed, typed, json_values, hostile_values)


@st.composite
def arguments_for(draw, input_schema: dict[str, Any], known: dict[str, st.SearchStrategy]) -> dict[str, Any]:
    """Tool arguments for one input schema: some of its properties (the required ones usually), the
    ones in `known` often from real values (ids, names, tokens), and now and then an unknown one."""
    properties = input_schema.get("properties", {})
    required = set(input_schema.get("required", []))
    arguments: dict[str, Any] = {}
    # Hypothesis starts from the simplest draws (zeros): the rare branches sit at the top of each range.
    for name, schema in properties.items():
        if name not in required and not draw(st.booleans()):
            continue
        if name in required and draw(st.integers(0, 19)) == 19:
            continue
        if name in known and draw(st.integers(0, 3)) != 3:
            arguments[name] = draw(known[name])
        else:
            arguments[name] = draw(value_for(schema))
    if draw(st.integers(0, 9)) == 9:
        arguments[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return arguments


WS_TYPES = ["hello", "send", "broadcast", "ack", "heartbeat"]
WS_FIELDS = {
    "hello": {"name": {"type": "string"}, "capabilities": {"type": "object"}, "presence": {"type": "boolean"},
              "session_id": {"type": "string"}, "session_token": {"type": "string"}, "project_id": {"type": "string"},
              "key": {"type": "string"}},
    "send": {"recipient_id": {"type": "string"}, "payload": {"type": "object"}, "protocol_name": {"type": "string"},
             "protocol_version": {"type": "string"}, "priority": {"enum": ["low", "normal", "high", "urgent"]},
             "ttl": {"type": "integer", "maximum": 2_592_000}, "correlation_id": {"type": "string"},
             "reply_to": {"type": "string"}},
    "broadcast": {"payload": {"type": "object"}, "protocol_name": {"type": "string"},
                  "capability_filter": {"type": "object"}, "priority": {"enum": ["low", "normal", "high", "urgent"]},
                  "ttl": {"type": "integer", "maximum": 2_592_000}},
    "ack": {"message_ids": {"type": "array", "items": {"type": "string"}}},
    "heartbeat": {},
}


@st.composite
def ws_frame_objects(draw, known: dict[str, st.SearchStrategy]) -> dict[str, Any]:
    """A frame object: a known type with generated fields, or an unknown or missing type."""
    kind = draw(st.sampled_from([*WS_TYPES, "unknown"]))
    if kind == "unknown":
        frame = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4))
        if draw(st.booleans()):
            frame["type"] = draw(json_values | st.text(max_size=20))
        return frame
    schema = {"properties": WS_FIELDS[kind], "required": []}
    frame = {"type": kind, **draw(arguments_for(schema, known))}
    if draw(st.booleans()):
        frame["request_id"] = draw(st.text(max_size=20) | st.integers() | json_values)
    return frame


def ws_frames(known: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """What a client may put on the wire: a JSON frame (mostly), broken JSON, a JSON non-object,
    deep nesting, a huge frame, or a binary frame. Text frames are str, binary ones bytes."""
    as_text = ws_frame_objects(known).map(json.dumps)
    return st.one_of(
        as_text, as_text, as_text, as_text,
        st.text(max_size=50),                                         # not JSON, mostly
        json_values.map(json.dumps),                                  # JSON, but not a frame object
        st.integers(100, 50_000).map(nested_text),                    # nesting deeper than any parser wants
        st.integers(100_000, 2_000_000).map(lambda n: json.dumps({"type": "send", "payload": {"s": "a" * n}})),
        st.binary(max_size=64),                                       # a binary frame
        as_text.map(str.encode),                                      # a valid frame, sent as binary
    )


# --- async clients under a sync driver ------------------------------------------------------------------

class LoopThread:
    """An event loop in a thread of its own, so that hypothesis (which drives sync functions) can
    call async clients (the MCP SDK, websockets) that live on that loop between examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def hold(self, context_manager) -> tuple[Any, Callable[[], None]]:
        """Enter an async context manager in one task of the loop and keep it open (anyio's cancel
        scopes must be left by the task that entered them); returns its value and a closer."""
        entered: concurrent.futures.Future = concurrent.futures.Future()
        release = asyncio.Event()

        async def keep() -> None:
            try:
                async with context_manager as value:
                    entered.set_result(value)
                    await release.wait()
            except BaseException as exc:
                if not entered.done():
                    entered.set_exception(exc)
                raise

        task = asyncio.run_coroutine_threadsafe(keep(), self.loop)

        def close() -> None:
            self.loop.call_soon_threadsafe(release.set)
            task.result(60)

        return entered.result(60), close

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# JSON-RPC's own code for a server that failed: the MCP face's equivalent of a 5xx.
JSONRPC_INTERNAL_ERROR = -32603


def mcp_answer_text(result) -> str:
    """All a tool result says, as text: its content blocks and its structured content."""
    texts = [getattr(block, "text", "") for block in result.content]
    return "\n".join([*texts, json.dumps(result.structured_content, default=str)])


def clamp_waits(arguments: Any, most: float = 0.5) -> Any:
    """A generated long poll waits at most `most` seconds: the fuzzers test input, not patience."""
    if isinstance(arguments, dict) and isinstance(arguments.get("wait_seconds"), int | float) \
            and not isinstance(arguments["wait_seconds"], bool) and arguments["wait_seconds"] > most:
        arguments["wait_seconds"] = most
    return arguments


# --- WebSocket frames -----------------------------------------------------------------------------------

# A socket that ends without a close frame (1006) or with "internal error" (1011) was dropped by a crash
# or a limit the server did not answer; every other close is the server's own clear word.
WS_CRASH_CLOSES = {1006, 1011}


@dataclass
class WsAnswer:
    """What the server said to one frame: the text frames it sent back, and its close code if it closed."""

    frames: list[str]
    close_code: int | None = None
    unanswered: str = ""

    def problem(self) -> str:
        if self.unanswered:
            return self.unanswered
        for text in self.frames:
            reason = server_error(None, text)
            if reason:
                return f"{reason}: {text[:300]}"
        if self.close_code in WS_CRASH_CLOSES:
            meaning = "no close frame" if self.close_code == 1006 else "internal error"
            return f"the socket was closed with {self.close_code} ({meaning})"
        return ""

    def codes(self) -> list[str]:
        codes = [error_code(None, text) for text in self.frames]
        return codes + ([f"close {self.close_code}"] if self.close_code is not None else [])


class WsProber:
    """Sends one fuzzed frame at a time, either on a fresh socket before any hello, or on a socket
    that said hello (reopened when the server closes it); then learns what the server answered.
    After hello a heartbeat probe follows the frame: the server answers frames in order, so the
    probe's answer says that everything about the fuzzed frame has arrived."""

    def __init__(self, ws_url: str, key: str, name: str = "ws-fuzz") -> None:
        self.ws_url, self.key, self.name = ws_url, key, name
        self.socket = None
        self.probes = 0
        self.connections = 0

    async def _connect(self):
        return await websockets.connect(self.ws_url, additional_headers={"Authorization": f"Bearer {self.key}"},
                                        max_size=None, open_timeout=30)

    async def before_hello(self, frame: str | bytes, timeout: float = 10) -> WsAnswer:
        socket = await self._connect()
        try:
            try:
                await socket.send(frame)
            except websockets.ConnectionClosed:
                pass  # the frame closed the socket: _read reports how
            answer = await self._read(socket, until=lambda text: True, timeout=timeout)
            if not answer.frames and answer.close_code is None:
                answer.unanswered = f"no answer within {timeout} s"
            return answer
        finally:
            await socket.close()

    async def after_hello(self, frame: str | bytes, timeout: float = 10) -> WsAnswer:
        if self.socket is None:
            self.socket = await self._connect()
            # A new name each time: the session of a socket the server dropped stays for a resume.
            self.connections += 1
            name = f"{self.name}-{self.connections}-{secrets.token_hex(3)}"
            await self.socket.send(json.dumps({"type": "hello", "name": name, "presence": False}))
            greeting = await self._read(self.socket, until=lambda text: '"welcome"' in text, timeout=timeout)
            if not any('"welcome"' in text for text in greeting.frames):
                greeting.unanswered = greeting.problem() or f"no welcome within {timeout} s: {greeting.frames[:2]}"
                await self.close()
                return greeting
        self.probes += 1
        probe_id = f"probe-{self.probes}"
        try:
            await self.socket.send(frame)
            await self.socket.send(json.dumps({"type": "heartbeat", "request_id": probe_id}))
        except websockets.ConnectionClosed:
            pass  # the frame closed the socket: _read reports how
        answer = await self._read(self.socket, until=lambda text: probe_id in text, timeout=timeout)
        if answer.close_code is None and not any(probe_id in text for text in answer.frames):
            # The socket is open but stopped answering: as bad as a crash for its client.
            answer.unanswered = f"no answer to a heartbeat sent after the frame within {timeout} s"
            await self.close()
        if answer.close_code is not None:
            self.socket = None
        return answer

    @staticmethod
    async def _read(socket, until: Callable[[str], bool], timeout: float) -> WsAnswer:
        answer = WsAnswer([])
        try:
            async with asyncio.timeout(timeout):
                while True:
                    text = await socket.recv()
                    text = text if isinstance(text, str) else text.decode("utf-8", "replace")
                    answer.frames.append(text)
                    if until(text):
                        return answer
        except TimeoutError:
            return answer
        except websockets.ConnectionClosed as closed:
            answer.close_code = closed.rcvd.code if closed.rcvd else 1006
            return answer

    async def close(self) -> None:
        if self.socket is not None:
            socket, self.socket = self.socket, None
            await socket.close()
