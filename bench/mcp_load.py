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
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from the checkout: make the project importable

from devtools.live import free_port, throwaway_database, wait_until_healthy  # noqa: E402

SHOWN_ONCE = re.compile(r"\(shown once\):\s+(\S+)")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict:
    if not ms:
        return {"calls": 0}
    return {"calls": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "mean_ms": round(statistics.fmean(ms), 2)}


@contextmanager
def maybe_throwaway_database(url: str | None):
    if not url:
        yield None
        return
    with throwaway_database(url, prefix="broker_bench") as db_url:
        yield db_url


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout


@contextmanager
def live_server(database_url: str | None, redis_url: str | None):
    with tempfile.TemporaryDirectory() as var_dir, maybe_throwaway_database(database_url) as db_url:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(SECRET_KEY="bench-secret", BROKER_VAR_DIR=var_dir, LOG_LEVEL="WARNING")
        if db_url:
            env["DATABASE_URL"] = db_url
        if redis_url:
            env["REDIS_URL"] = redis_url
        manage(env, "migrate", "--noinput", "-v", "0")
        admin_key = SHOWN_ONCE.search(manage(env, "broker_project", "create", "--id", "bench", "--name", "Bench")).group(1)
        # The bench's own key may go as fast as it can.
        manage(env, "shell", "-c", "from projects.models import Project; from projects.services import project_update; "
               "project_update(Project.objects.get(pk='bench'), {'rate_limit_per_minute': 1_000_000, "
               "'max_sessions': 10_000, 'max_queue_size': 1_000_000})")
        port = free_port()
        log_path = Path(tempfile.gettempdir()) / f"broker-bench-{port}.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                       "broker_site.asgi:application"], cwd=ROOT, env=env, start_new_session=True,
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", server)
            yield f"http://127.0.0.1:{port}/mcp", admin_key, server.pid, log_path
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


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
            "tools": {tool: summary(ms) for tool, ms in timings.items()}, "errors": len(errors),
            "first_errors": errors[:3]}


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--database-url", help="PostgreSQL server to bench on (a throwaway database is made)")
    parser.add_argument("--redis-url")
    options = parser.parse_args()
    with live_server(options.database_url, options.redis_url) as (url, key, pid, log_path):
        result = asyncio.run(run_clients(url, key, options.clients, options.seconds))
        result["server_rss_mb"] = rss_mb(pid)
        if result["errors"]:
            result["server_log"] = str(log_path)  # kept for reading what went wrong
    result.update(
        benchmark="mcp_send_receive", clients=options.clients, seconds=options.seconds,
        stack="postgresql+redis" if options.database_url else "sqlite+in-memory",
        targets={"send_message_p50_ms": 5, "send_message_p99_ms": 20},
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        git_revision=git_revision())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
