"""Messages across a project link beside the same messages inside one project, and list_projects over 100 projects.

    .venv/bin/python bench/link_latency.py                        # both stacks when PostgreSQL and Redis answer
    .venv/bin/python bench/link_latency.py --stack default --seconds 3

For each stack (`default`: SQLite + in-memory layer; `postgres`: PostgreSQL + Redis on a
throwaway database) it starts the broker under daphne with two projects, `front` and `plat`,
and an active link between them made over REST with their admin keys (terms the load cannot
reach). Then, for 1 and for --clients pairs of WebSocket sessions, a closed loop: each sender
sends to its own receiver, the receiver acks the push, and the sender sends again once it
arrived. Once with the receivers in the sender's project (the ceiling: the same load with no
link to cross), once in the other project over the link, alternating in --rounds short rounds
(ABBA: each goes first in every other round) so the drift of a shared machine hits both alike.
Reported: send -> push p50/p95/p99 per case (the sender's time.time() travels in the payload),
messages/s, and the link's overhead at the median (cross / inside - 1): pooled over all rounds, and
paired (each round's across p50 over the same round's inside p50, the median of those), which
the machine's drift between rounds does not move. Targets (the seeds): cross-project p50 < 150 ms, overhead < 5 %.

Then it makes 100 more projects over REST with an operator key and times `list_projects` as
a user calls it, REST `GET /api/v1/projects/` and the MCP tool, beside `GET /healthz` on the
same server (the ceiling: a request with no broker work). Target: < 100 ms.

With --profile-dir, each case's loop then runs once more under py-spy, for each number of pairs N,
into DIR/STACK-N-inside_project.txt and DIR/STACK-N-across_link.txt (bench/profile_summary.py reads them).

One JSON document goes to stdout; progress to stderr.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import httpx2
import websockets
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proc_stats import py_spy  # noqa: E402
from bench.report import git_revision, latency_summary, machine  # noqa: E402
from bench.ws_load import Stack, chosen_stacks  # noqa: E402
from devtools.live import LOAD_CEILINGS, BrokerProcess, broker_env, manage, new_key, throwaway_database  # noqa: E402

TARGETS = {"cross_project_p50_ms": 150, "link_overhead_at_p50": 0.05, "list_projects_100_p50_ms": 100}
PROJECTS_LISTED = 100
LIST_CALLS = 30


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def linked_broker(stack: Stack):
    """The broker on `stack` with projects front and plat, an active link between them, and their admin keys."""
    with ExitStack() as stack_exit:
        var_dir = Path(stack_exit.enter_context(tempfile.TemporaryDirectory()))
        db_url = (stack_exit.enter_context(throwaway_database(stack.database_url, prefix="broker_link_bench"))
                  if stack.database_url else "")
        env = broker_env(var_dir, database_url=db_url, redis_url=stack.redis_url, SECRET_KEY="bench-secret",
                         **LOAD_CEILINGS)
        manage(env, "migrate", "--noinput", "-v", "0")
        keys = {}
        for project in ("front", "plat"):
            keys[project] = new_key(env, "broker_project", "create", "--id", project, "--name", project.title())
            manage(env, "broker_project", "configure", "--id", project, "--set", "rate_limit_per_minute=1000000",
                   "--set", "max_sessions=10000", "--set", "max_queue_size=1000000")
        keys["operator"] = new_key(env, "broker_key", "create", "--project", "front", "--role", "operator")
        process = BrokerProcess(env, var_dir.parent / f"broker-link-bench-{var_dir.name}.log").start()
        try:
            api = f"{process.http_url}/api/v1"
            asked = httpx.post(f"{api}/links/", headers=bearer(keys["front"]),
                               json={"target_project_id": "plat", "rate_limit_per_minute": 1_000_000}).json()
            accepted = httpx.post(f"{api}/links/{asked['link_id']}/accept/", headers=bearer(keys["plat"]), json={})
            assert accepted.json()["state"] == "active", accepted.text
            yield process, keys
        finally:
            process.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Peer:
    """One WebSocket session: acks every push at once and hands its latency to whoever waits for it."""

    def __init__(self, ws, session_id: str) -> None:
        self.ws, self.session_id = ws, session_id
        self.arrived: asyncio.Queue[float] = asyncio.Queue()
        self.errors: list[str] = []
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "message":
                message = frame["message"]
                self.arrived.put_nowait((time.time() - message["payload"]["t"]) * 1000)
                await self.ws.send(json.dumps({"type": "ack", "message_ids": [message["message_id"]]}))
            elif frame["type"] == "error" or (frame["type"] == "result" and frame["result"].get("status")
                                              not in ("pushing", "queued")):
                self.errors.append(json.dumps(frame)[:300])

    async def send(self, recipient: str) -> None:
        await self.ws.send(json.dumps({"type": "send", "recipient_id": recipient, "payload": {"t": time.time()}}))


async def peer(url: str, key: str, name: str) -> Peer:
    ws = await websockets.connect(url, additional_headers=bearer(key), compression=None, ping_interval=None,
                                  max_size=None)
    await ws.send(json.dumps({"type": "hello", "name": name, "presence": False}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "welcome":
            return Peer(ws, frame["session_id"])
        if frame["type"] == "error":
            raise RuntimeError(f"hello refused: {frame}")


async def closed_loop(pairs: list[tuple[Peer, Peer, str]], seconds: float) -> tuple[list[float], int]:
    """Each sender sends to its receiver and waits for the push there before sending again, for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(sender: Peer, receiver: Peer, address: str) -> None:
        while time.perf_counter() < deadline:
            await sender.send(address)
            latencies.append(await asyncio.wait_for(receiver.arrived.get(), 10))

    await asyncio.gather(*(one(*pair) for pair in pairs))
    return latencies, len(latencies)


async def messaging(process: BrokerProcess, keys: dict[str, str], clients: int, seconds: float, rounds: int,
                    profile: Path | None = None) -> dict:
    url = process.ws_url
    senders = [await peer(url, keys["front"], f"s{n}") for n in range(clients)]
    inside = [await peer(url, keys["front"], f"in{n}") for n in range(clients)]
    across = [await peer(url, keys["plat"], f"x{n}") for n in range(clients)]
    cases: dict[str, dict] = {}
    for n in sorted({1, clients}):
        pairs = {"inside_project": [(senders[i], inside[i], f"in{i}") for i in range(n)],
                 "across_link": [(senders[i], across[i], f"plat/x{i}") for i in range(n)]}
        found: dict[str, list[float]] = {name: [] for name in pairs}
        paired: list[float] = []  # each round's across p50 / inside p50 - 1
        for round_ in range(rounds):
            # ABBA: each case goes first in every other round, so neither always follows the other's load.
            medians = {}
            for name, chosen in (pairs.items() if round_ % 2 == 0 else reversed(pairs.items())):
                latencies, _ = await closed_loop(chosen, seconds / rounds)
                found[name] += latencies
                medians[name] = statistics.median(latencies) if latencies else None
            if medians["inside_project"] and medians["across_link"]:
                paired.append(medians["across_link"] / medians["inside_project"] - 1)
        summary = {name: {**latency_summary(ms), "messages_per_s": round(len(ms) / seconds, 1)}
                   for name, ms in found.items()}
        inner, outer = summary["inside_project"].get("p50_ms"), summary["across_link"].get("p50_ms")
        summary["link_overhead_at_p50"] = round(outer / inner - 1, 3) if inner and outer else None
        # The machine's drift between rounds is larger than the link's cost: each round compared with itself.
        summary["link_overhead_paired"] = ({"median": round(statistics.median(paired), 3),
                                            "rounds": [round(r, 3) for r in paired]} if paired else None)
        cases[f"{n}_clients"] = summary
        say(f"  {n} pair(s): inside p50 {inner} ms, across p50 {outer} ms, paired overhead "
            f"{summary['link_overhead_paired'] and summary['link_overhead_paired']['median']}")
        if profile is not None:
            for name, chosen in pairs.items():
                with py_spy(process.process.pid, seconds, profile.with_name(f"{profile.name}-{n}-{name}.txt")):
                    await closed_loop(chosen, seconds)
    everyone = senders + inside + across
    errors = [e for p in everyone for e in p.errors]
    for p in everyone:
        await p.ws.close()
    return {"cases": cases, "errors": len(errors), "first_errors": errors[:3]}


def timed(call, times: int = LIST_CALLS) -> dict:
    ms = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        ms.append((time.perf_counter() - started) * 1000)
    return latency_summary(ms)


async def mcp_timed(url: str, key: str, times: int = LIST_CALLS) -> dict:
    http = httpx2.AsyncClient(headers=bearer(key), timeout=60)
    ms = []
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        for _ in range(times):
            started = time.perf_counter()
            result = await client.call_tool("list_projects", {})
            ms.append((time.perf_counter() - started) * 1000)
            assert not result.is_error and result.structured_content["count"] >= PROJECTS_LISTED, result
    return latency_summary(ms)


def listing(process: BrokerProcess, operator_key: str) -> dict:
    api = f"{process.http_url}/api/v1"
    with httpx.Client(headers=bearer(operator_key), timeout=60) as http:
        for n in range(PROJECTS_LISTED):
            made = http.post(f"{api}/projects/", json={"project_id": f"team-{n:03d}", "name": f"Team {n:03d}"})
            assert made.status_code == 201, made.text

        def listed() -> None:
            answer = http.get(f"{api}/projects/")
            assert answer.status_code == 200 and answer.json()["count"] >= PROJECTS_LISTED, answer.text[:300]

        result = {"projects": PROJECTS_LISTED + 2, "ceiling_healthz": timed(lambda: http.get(f"{process.http_url}/healthz")),
                  "rest": timed(listed),
                  "rest_with_stats": timed(lambda: http.get(f"{api}/projects/", params={"include_stats": "true"}), 10)}
    result["mcp"] = asyncio.run(mcp_timed(f"{process.http_url}/mcp", operator_key))
    say(f"  list_projects over {result['projects']}: REST p50 {result['rest']['p50_ms']} ms, "
        f"MCP p50 {result['mcp']['p50_ms']} ms, healthz p50 {result['ceiling_healthz']['p50_ms']} ms")
    return result


def bench_stack(stack: Stack, options) -> dict:
    say(f"{stack.name}:")
    with linked_broker(stack) as (process, keys):
        profile = Path(options.profile_dir) / stack.name if options.profile_dir else None
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(messaging(process, keys, options.clients, options.seconds, options.rounds, profile))
        result["list_projects"] = listing(process, keys["operator"])
    one, many = result["cases"]["1_clients"], result["cases"][f"{options.clients}_clients"]
    result["targets_met"] = {
        "cross_project_p50": all(c["across_link"]["p50_ms"] < TARGETS["cross_project_p50_ms"] for c in (one, many)),
        "link_overhead_paired": all(c["link_overhead_paired"] is not None and c["link_overhead_paired"]["median"]
                                    < TARGETS["link_overhead_at_p50"] for c in (one, many)),
        "link_overhead_pooled": all(c["link_overhead_at_p50"] is not None
                                    and c["link_overhead_at_p50"] < TARGETS["link_overhead_at_p50"] for c in (one, many)),
        "list_projects": max(result["list_projects"]["rest"]["p50_ms"], result["list_projects"]["mcp"]["p50_ms"])
        < TARGETS["list_projects_100_p50_ms"],
        "no_errors": result["errors"] == 0,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("default", "postgres", "both"), default="both")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--clients", type=int, default=50, help="pairs of sessions in the larger case")
    parser.add_argument("--seconds", type=float, default=8, help="per case and client count, split into rounds")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--profile-dir", help="py-spy each case's loops into DIR/STACK-PAIRS-CASE.txt")
    options = parser.parse_args()
    results = {stack.name: bench_stack(stack, options) for stack in chosen_stacks(options)}
    print(json.dumps({
        "benchmark": "link_latency", "clients": options.clients, "seconds": options.seconds, "rounds": options.rounds,
        "ceiling": "messaging: the same closed loop inside one project; list_projects: GET /healthz",
        "targets": TARGETS, "stacks": results, "machine": machine(), "git_revision": git_revision(),
    }, indent=2))


if __name__ == "__main__":
    main()
