"""MCP load: official-SDK clients calling send_message then receive_messages, closed loop, on the
broker and on its ceiling, a bare MCPServer with no-op tools of the same names (bench/mcp_bare.py).

For each ASGI server (daphne, as the README runs it, and uvicorn) and each protocol generation
(`legacy`: the session-based one, `auto`: the stateless 2026-07-28 one, whose clients pass
session_token), the same client loop runs against the bare server and against the broker,
with 1 client (latency) and with N clients (throughput). The broker runs on the embedded
default in a temp directory, or on PostgreSQL + Redis with --database-url/--redis-url (a
throwaway database). Prints one JSON object: per case, calls/s, latency per tool, server CPU
per call, and the broker's calls/s as a ratio of the ceiling's.

    .venv/bin/python bench/mcp_load.py --clients 50 --seconds 10
    .venv/bin/python bench/mcp_load.py --database-url postgres://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/0 --servers uvicorn --protocols auto
"""

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from the checkout: make the project importable

from bench.proc_stats import cpu_seconds, process_group, py_spy, rss_mb  # noqa: E402
from bench.report import git_revision, latency_summary, machine  # noqa: E402
from devtools.live import (  # noqa: E402
    BROKER_APP,
    LOAD_CEILINGS,
    SERVERS,
    BrokerProcess,
    ServerCommand,
    broker_env,
    manage,
    new_key,
    throwaway_database,
)

BARE_APP = "bench.mcp_bare:application"
TARGETS = {"ratio_to_ceiling_at_n_clients": 0.5, "send_message_p50_ms_one_client": 5}


@contextmanager
def broker_server(server: str, database_url: str | None, redis_url: str | None):
    """The broker under `server` on a free port, with a `bench` project allowed to go as fast as it can."""
    with ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db_url = stack.enter_context(throwaway_database(database_url, prefix="broker_bench")) if database_url else ""
        env = broker_env(var_dir, database_url=db_url, redis_url=redis_url or "", SECRET_KEY="bench-secret",
                         **LOAD_CEILINGS)
        manage(env, "migrate", "--noinput", "-v", "0")
        key = new_key(env, "broker_project", "create", "--id", "bench", "--name", "Bench")
        manage(env, "broker_project", "configure", "--id", "bench", "--set", "rate_limit_per_minute=1000000",
               "--set", "max_sessions=10000", "--set", "max_queue_size=1000000")
        process = BrokerProcess(env, var_dir.parent / f"broker-bench-{var_dir.name}.log",
                                command=ServerCommand(server, BROKER_APP)).start()
        try:
            yield f"{process.http_url}/mcp", key, process
        finally:
            process.stop()


@contextmanager
def bare_server(server: str):
    with tempfile.TemporaryDirectory() as var_dir:
        env = broker_env(var_dir)
        process = BrokerProcess(env, Path(var_dir) / "bare.log", command=ServerCommand(server, BARE_APP)).start()
        try:
            yield f"{process.http_url}/mcp", "no-key", process
        finally:
            process.stop()


async def run_clients(url: str, key: str, mode: str, clients: int, seconds: float) -> dict:
    timings: dict[str, list[float]] = {"send_message": [], "receive_messages": []}
    errors: list[str] = []
    run = random.randbytes(3).hex()  # session names never meet a previous case's
    names = [f"agent-{run}-{n}" for n in range(clients)]
    connected = asyncio.Barrier(clients)
    deadline_box: list[float] = []

    async def timed(client: Client, tool: str, arguments: dict) -> None:
        started = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        timings[tool].append((time.perf_counter() - started) * 1000)
        if result.is_error:
            errors.append(result.content[0].text[:200])

    async def one(name: str) -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            connected_as = (await client.call_tool("connect_session", {"name": name})).structured_content
            # The stateless protocol has no connection to bind: the session rides in every call.
            token = {"session_token": connected_as["session_token"]} if mode == "auto" else {}
            await connected.wait()
            if not deadline_box:
                deadline_box.append(time.perf_counter() + seconds)
            while time.perf_counter() < deadline_box[0]:
                await timed(client, "send_message", {"recipient_id": random.choice(names), "payload": {"n": 1}, **token})
                await timed(client, "receive_messages", {"max": 10, "auto_ack": True, **token})

    await asyncio.gather(*(one(name) for name in names))
    total = sum(len(v) for v in timings.values())
    return {"calls_per_s": round(total / seconds, 1), "calls": total,
            "tools": {tool: latency_summary(ms) for tool, ms in timings.items()}, "errors": len(errors),
            "first_errors": errors[:3]}


def measure(url: str, key: str, process: BrokerProcess, mode: str, clients: int, seconds: float,
            profile: Path | None = None, gil_only: bool = False) -> dict:
    pids = process_group(process.process.pid)
    cpu_before = cpu_seconds(pids)
    with py_spy(process.process.pid, seconds, profile, gil_only):
        result = asyncio.run(run_clients(url, key, mode, clients, seconds))
    cpu = cpu_seconds(pids) - cpu_before
    result["server_cpu_ms_per_call"] = round(1000 * cpu / result["calls"], 2) if result["calls"] else None
    result["server_rss_mb"] = rss_mb(process_group(process.process.pid))
    if result["errors"]:
        result["server_log"] = str(process.log_path)
    return result


def profile_path(options, side: str, server: str, mode: str, clients: int) -> Path | None:
    """Where py-spy writes the broker's profile for one measurement, with --profile-dir (the ceiling is not profiled)."""
    if not options.profile_dir or side != "broker":
        return None
    Path(options.profile_dir).mkdir(parents=True, exist_ok=True)
    return Path(options.profile_dir) / f"{server}-{mode}-{clients}.txt"


def bench_case(server: str, mode: str, options) -> dict:
    case: dict = {"server": server, "protocol": mode}
    for side, serving in (("ceiling", bare_server(server)),
                          ("broker", broker_server(server, options.database_url, options.redis_url))):
        with serving as (url, key, process):
            case[side] = {f"{n}_clients": measure(url, key, process, mode, n, options.seconds,
                                                  profile_path(options, side, server, mode, n), options.profile_gil)
                          for n in (1, options.clients)}
    many = f"{options.clients}_clients"
    case["ratio_to_ceiling"] = round(case["broker"][many]["calls_per_s"] / case["ceiling"][many]["calls_per_s"], 3)
    send_p50 = case["broker"]["1_clients"]["tools"]["send_message"].get("p50_ms")
    case["targets_met"] = {
        "ratio": case["ratio_to_ceiling"] >= TARGETS["ratio_to_ceiling_at_n_clients"],
        "send_p50_one_client": send_p50 is not None and send_p50 <= TARGETS["send_message_p50_ms_one_client"],
        "no_errors": all(case[side][n]["errors"] == 0 for side in ("ceiling", "broker") for n in case[side]),
    }
    print(f"{server}/{mode}: ratio {case['ratio_to_ceiling']}, one-client send p50 {send_p50} ms", file=sys.stderr)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--servers", default="daphne,uvicorn", help=f"comma-separated: {', '.join(SERVERS)}")
    parser.add_argument("--protocols", default="legacy,auto", help="comma-separated: legacy, auto")
    parser.add_argument("--database-url", help="PostgreSQL server to bench on (a throwaway database is made)")
    parser.add_argument("--redis-url")
    parser.add_argument("--profile-dir", help="py-spy the broker into DIR/SERVER-PROTOCOL-CLIENTS.txt (raw stacks; "
                        "bench/profile_summary.py reads them)")
    parser.add_argument("--profile-gil", action="store_true", help="profile only the thread holding the GIL (CPU)")
    options = parser.parse_args()
    cases = [bench_case(server, mode, options)
             for server in options.servers.split(",") for mode in options.protocols.split(",")]
    print(json.dumps({
        "benchmark": "mcp_send_receive", "clients": options.clients, "seconds": options.seconds,
        "stack": "postgresql+redis" if options.database_url else "sqlite+in-memory",
        "ceiling": "bench/mcp_bare.py: MCPServer, async no-op tools of the same names, same ASGI server, no auth",
        "targets": TARGETS, "cases": cases, "machine": machine(), "git_revision": git_revision(),
    }, indent=2))


if __name__ == "__main__":
    main()
