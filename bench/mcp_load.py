"""MCP load: N concurrent official-SDK clients calling send_message and receive_messages.

Starts its own daphne server on a free port (the embedded default in a temp directory, or
PostgreSQL + Redis with --database-url/--redis-url, on a throwaway database), makes keys with
the management commands, then has every client connect a session and loop: send one message
to a random peer, receive (no wait). Prints one JSON object: latency p50/p95/p99 per tool,
calls/s, and the machine's details.

    .venv/bin/python bench/mcp_load.py --clients 50 --seconds 20
    .venv/bin/python bench/mcp_load.py --database-url postgres://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/0
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

from bench.proc_stats import process_group, rss_mb  # noqa: E402
from bench.report import git_revision, latency_summary, machine  # noqa: E402
from devtools.live import LOAD_CEILINGS, BrokerProcess, broker_env, manage, new_key, throwaway_database  # noqa: E402


@contextmanager
def live_server(database_url: str | None, redis_url: str | None):
    """A daphne broker on a free port with a `bench` project allowed to go as fast as it can."""
    with ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db_url = stack.enter_context(throwaway_database(database_url, prefix="broker_bench")) if database_url else ""
        env = broker_env(var_dir, database_url=db_url, redis_url=redis_url or "", SECRET_KEY="bench-secret",
                         **LOAD_CEILINGS)
        manage(env, "migrate", "--noinput", "-v", "0")
        admin_key = new_key(env, "broker_project", "create", "--id", "bench", "--name", "Bench")
        manage(env, "shell", "-c", "from projects.models import Project; from projects.services import project_update; "
               "project_update(Project.objects.get(pk='bench'), {'rate_limit_per_minute': 1_000_000, "
               "'max_sessions': 10_000, 'max_queue_size': 1_000_000})")
        server = BrokerProcess(env, Path(tempfile.gettempdir()) / f"broker-bench-{var_dir.name}.log").start()
        try:
            yield f"{server.http_url}/mcp", admin_key, server.process.pid, server.log_path
        finally:
            server.stop()


async def run_clients(url: str, key: str, clients: int, seconds: float) -> dict:
    timings: dict[str, list[float]] = {"send_message": [], "receive_messages": []}
    errors: list[str] = []
    names = [f"agent-{n}" for n in range(clients)]
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
        async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            await client.call_tool("connect_session", {"name": name})
            await connected.wait()
            if not deadline_box:
                deadline_box.append(time.perf_counter() + seconds)
            while time.perf_counter() < deadline_box[0]:
                await timed(client, "send_message", {"recipient_id": random.choice(names), "payload": {"n": 1}})
                await timed(client, "receive_messages", {"max": 10, "auto_ack": True})

    started = time.perf_counter()
    await asyncio.gather(*(one(name) for name in names))
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in timings.values())
    return {"calls_per_s": round(total / seconds, 1), "elapsed_s": round(elapsed, 1),
            "tools": {tool: latency_summary(ms) for tool, ms in timings.items()}, "errors": len(errors),
            "first_errors": errors[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--database-url", help="PostgreSQL server to bench on (a throwaway database is made)")
    parser.add_argument("--redis-url")
    options = parser.parse_args()
    with live_server(options.database_url, options.redis_url) as (url, key, pid, log_path):
        result = asyncio.run(run_clients(url, key, options.clients, options.seconds))
        result["server_rss_mb"] = rss_mb(process_group(pid))
        if result["errors"]:
            result["server_log"] = str(log_path)  # kept for reading what went wrong
    result.update(
        benchmark="mcp_send_receive", clients=options.clients, seconds=options.seconds,
        stack="postgresql+redis" if options.database_url else "sqlite+in-memory",
        targets={"send_message_p50_ms": 5, "send_message_p99_ms": 20},
        machine=machine(),
        git_revision=git_revision())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
