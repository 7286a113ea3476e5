"""Fuzz a fresh live broker with 10,000 generated inputs across its faces and print the counts as JSON.

Starts its own daphne server (the embedded default in a temp directory, or PostgreSQL + Redis with
--database-url/--redis-url, on a throwaway database), makes keys with the management commands and
seeds real ids (as tests/fuzz does), then runs, while a canary of another project asks the server
a REST question and a WebSocket send -> push -> ack in a loop:

- REST: schemathesis cases from the broker's OpenAPI schema (every operation, positive and negative),
  with keys of every role and real session tokens and path ids, plus hostile bodies (deep nesting,
  broken JSON) on every operation that takes one, and schemas that are costly to validate against;
- MCP: hypothesis-made arguments for every tool, official client, both protocol generations;
- WebSocket: hypothesis-made frames before and after hello, plus hostile frames (deep, over 1 MiB, binary).

Prints one JSON document: inputs per face, answers by status or error code, server errors (5xx,
internal_error, tracebacks, sockets dropped with 1006/1011) with examples, the canary's calls and
worst/p99 latency, the machine's CPUs, the git revision.

    .venv/bin/python bench/fuzz.py                  # 10,000 inputs on the embedded default
    .venv/bin/python bench/fuzz.py --inputs 2000 --database-url postgres://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/0
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from the checkout: make the project importable

from bench.report import git_revision, machine  # noqa: E402
from devtools.fuzz_target import (  # noqa: E402
    FuzzTarget,
    hostile_body_calls,
    mcp_known,
    mcp_tool_call,
    rest_case_call,
    seed,
)
from devtools.fuzzing import (  # noqa: E402
    Canary,
    LoopThread,
    WsProber,
    arguments_for,
    error_code,
    nested_text,
    server_error,
    ws_frames,
)
from devtools.live import LOAD_CEILINGS, BrokerProcess, broker_env, manage, new_key, throwaway_database  # noqa: E402

MCP_ROLES_AND_MODES = [("agent", "legacy"), ("agent", "auto"), ("admin", "legacy"), ("operator", "auto")]
HOSTILE_FRAMES = {
    "nested 100,000 deep": nested_text(100_000),
    "over 1 MiB": json.dumps({"type": "send", "recipient_id": "fuzz-b", "payload": {"s": "a" * (1 << 20)}}),
    "binary garbage": b"\xff" * 1000,
}


@dataclass
class Tally:
    """Per face: how many inputs, the answers by code, and the server errors with a few examples."""

    inputs: Counter = field(default_factory=Counter)
    codes: dict[str, Counter] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)

    def add(self, face: str, what: str, codes: list[str], problem: str) -> None:
        self.inputs[face] += 1
        if self.inputs[face] % 250 == 0:
            print(f"{time.strftime('%H:%M:%S')} {face}: {self.inputs[face]} inputs", file=sys.stderr, flush=True)
        self.codes.setdefault(face, Counter()).update(codes)
        if problem:
            self.errors[face] += 1
            # One example per face, operation and kind of problem, so that distinct failures show.
            kind = (face, what.split(" as ")[0].split("(")[0][:60], problem[:40])
            if kind not in self.seen and len(self.examples) < 30:
                self.seen.add(kind)
                self.examples.append({"face": face, "input": what[:300], "problem": problem[:300]})

    def rest(self, what: str, status: int, text: str) -> None:
        self.add("rest", what, [f"{status} {error_code(status, text)}"], server_error(status, text))


def settings_for(examples: int) -> settings:
    return settings(max_examples=max(1, examples), phases=[Phase.generate], deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@contextmanager
def live_target(database_url: str | None, redis_url: str | None):
    """A fresh daphne broker with alpha (agent, admin), beta (the canary's) and an operator; rate
    limits raised so that the fuzzers meet the logic rather than 429s."""
    with ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db_url = stack.enter_context(throwaway_database(database_url, prefix="broker_fuzz")) if database_url else ""
        env = broker_env(var_dir, database_url=db_url, redis_url=redis_url or "", SECRET_KEY="fuzz-secret", **LOAD_CEILINGS)
        manage(env, "migrate", "--noinput", "-v", "0")
        keys = {"admin": new_key(env, "broker_project", "create", "--id", "alpha", "--name", "Alpha")}
        keys["agent"] = new_key(env, "broker_key", "create", "--project", "alpha", "--role", "agent")
        keys["beta"] = new_key(env, "broker_project", "create", "--id", "beta", "--name", "Beta")
        new_key(env, "broker_project", "create", "--id", "ops", "--name", "Ops")
        keys["operator"] = new_key(env, "broker_key", "create", "--project", "ops", "--role", "operator")
        manage(env, "shell", "-c", "from projects.models import Project; from projects.services import project_update\n"
               "for p in Project.objects.all(): project_update(p, {'rate_limit_per_minute': 1_000_000})")
        server = BrokerProcess(env, Path(tempfile.gettempdir()) / f"broker-fuzz-{var_dir.name}.log").start()
        try:
            yield seed(FuzzTarget(server.http_url, server.ws_url, keys)), server
        finally:
            server.stop()


def fuzz_rest(target: FuzzTarget, tally: Tally, inputs: int, seed_value: int) -> None:
    schema = schemathesis.openapi.from_url(f"{target.http_url}/api/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @hypothesis_seed(seed_value)
        @settings_for(inputs // len(operations))
        @given(case=cases, data=st.data())
        def fuzz(case, data) -> None:
            tally.rest(*rest_case_call(target, case, data.draw))

        fuzz()
        for sent, status, text in hostile_body_calls(target, operation):
            tally.rest(sent, status, text)


# Schemas whose validation costs more than their size says (issue 11, defects 1 and 2): each is registered,
# then one payload is sent that makes a backtracking regex or a quadratic uniqueItems check work hard.
# The canary's latency shows whether another project waited meanwhile.
HOSTILE_SCHEMAS = {
    "backtracking pattern": ({"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}},
                             {"s": "a" * 26 + "!"}),
    "backtracking patternProperties": ({"type": "object", "patternProperties": {"^(a+)+$": {"type": "string"}}},
                                       {"a" * 26 + "!": "x"}),
    "uniqueItems over 3,000 objects": ({"type": "object", "properties": {"items": {"type": "array", "uniqueItems": True}}},
                                       {"items": [{"n": n} for n in range(3_000)]}),
}


def fuzz_schemas(target: FuzzTarget, tally: Tally) -> None:
    with target.rest("agent") as rest:
        for number, (label, (schema, payload)) in enumerate(HOSTILE_SCHEMAS.items()):
            name = f"hostile_{number}"
            registered = rest.post("/api/v1/protocols/", json={"name": name, "version": "1.0.0", "schema": schema,
                                                               "capabilities": ["point_to_point"]})
            tally.rest(f"register {label}", registered.status_code, registered.text)
            if registered.status_code != 201:
                continue
            sent = rest.post("/api/v1/messages/", headers={"X-Session-Token": target.sessions[0]["token"]},
                             json={"recipient_id": target.sessions[1]["session_id"], "protocol_name": name,
                                   "payload": payload})
            tally.rest(f"send under {label}", sent.status_code, sent.text)


def fuzz_mcp(target: FuzzTarget, tally: Tally, inputs: int, seed_value: int, loop: LoopThread) -> None:
    for role, mode in MCP_ROLES_AND_MODES:
        client, close = loop.hold(target.mcp_client(role, mode))
        try:
            tools = loop.run(client.list_tools()).tools
            for tool in tools:
                examples = inputs // (len(MCP_ROLES_AND_MODES) * len(tools))
                mcp_fuzzer(target, tally, loop, client, tool, f"{role}/{mode}", examples, seed_value)()
        finally:
            close()


def mcp_fuzzer(target: FuzzTarget, tally: Tally, loop: LoopThread, client, tool, how: str, examples: int,
               seed_value: int):
    known = mcp_known(target, how.split("/")[0])

    @hypothesis_seed(seed_value)
    @settings_for(examples)
    @given(arguments=arguments_for(tool.input_schema, known), key_id=known["key_id"])
    def fuzz(arguments, key_id) -> None:
        what, text, code = loop.run(mcp_tool_call(target, client, tool.name, arguments, key_id))
        problem = text if code == "jsonrpc internal" else server_error(None, text)
        tally.add("mcp", f"{what} as {how}", [code], problem)

    return fuzz


def fuzz_ws(target: FuzzTarget, tally: Tally, inputs: int, seed_value: int, loop: LoopThread) -> None:
    def record(what: str, frame, answer) -> None:
        shown = frame[:200] if isinstance(frame, str) else repr(frame[:200])
        tally.add("ws", f"{what}: {shown}", answer.codes() or ["no answer"], answer.problem())

    def after_hello(role: str):
        prober = WsProber(target.ws_url, target.key(role), name=f"ws-fuzz-{role}")

        @hypothesis_seed(seed_value)
        @settings_for(inputs // 3)
        @given(frame=ws_frames(target.known()))
        def after(frame) -> None:
            record(f"after hello as {role}", frame, loop.run(prober.after_hello(frame)))

        after()
        loop.run(prober.close())

    for role in ("agent", "admin"):
        after_hello(role)
    prober = WsProber(target.ws_url, target.key("agent"))
    known = {**target.known(), "project_id": st.sampled_from(["alpha", "beta"])}

    @hypothesis_seed(seed_value)
    @settings_for(inputs // 3)
    @given(frame=ws_frames(known))
    def before(frame) -> None:
        record("before hello", frame, loop.run(prober.before_hello(frame)))

    before()
    for label, frame in HOSTILE_FRAMES.items():
        record(f"before hello, {label}", frame, loop.run(prober.before_hello(frame)))
        hostile = WsProber(target.ws_url, target.key("agent"), name="ws-hostile")
        record(f"after hello, {label}", frame, loop.run(hostile.after_hello(frame)))
        loop.run(hostile.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="generated inputs in all (40%% REST, 30%% MCP, 30%% WS)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", help="PostgreSQL server to fuzz on (a throwaway database is made)")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    tally = Tally()
    started = time.monotonic()
    with live_target(args.database_url, args.redis_url) as (target, server):
        canary = Canary(target.http_url, target.ws_url, target.key("beta")).start()
        loop = LoopThread()
        try:
            fuzz_rest(target, tally, int(args.inputs * 0.4), args.seed)
            fuzz_schemas(target, tally)
            fuzz_mcp(target, tally, int(args.inputs * 0.3), args.seed, loop)
            fuzz_ws(target, tally, int(args.inputs * 0.3), args.seed, loop)
        finally:
            canary.stop()
            loop.close()
        with httpx.Client(base_url=target.http_url, timeout=10) as probe:
            alive = probe.get("/healthz").status_code == 200
        log_text = server.log_text()
    tracebacks = log_text.count("Traceback")
    report = {
        "benchmark": "fuzz",
        "stack": "postgres+redis" if args.database_url else "sqlite+in-memory",
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "inputs": {**dict(tally.inputs), "total": sum(tally.inputs.values())},
        "answers_by_code": {face: dict(codes.most_common()) for face, codes in tally.codes.items()},
        "server_errors": {**dict(tally.errors), "total": sum(tally.errors.values()), "examples": tally.examples},
        "server_log_tracebacks": tracebacks,
        "server_alive_after": alive,
        "canary": canary.summary(),
        "targets": {"server_errors": 0, "canary_worst_seconds": 1.0},
        "machine": machine(),
        "git_revision": git_revision(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
