"""WebSocket load: N sessions sending to random peers, on the broker and on a bare Channels echo (the ceiling).

    .venv/bin/python bench/ws_load.py                                   # the full run: both stacks, 1,000 sessions
    .venv/bin/python bench/ws_load.py --sessions 200 --seconds 5        # a quick look
    .venv/bin/python bench/ws_load.py --stack postgres --profile-dir /tmp/prof   # py-spy the broker under load
    .venv/bin/python bench/profile_summary.py /tmp/prof/postgres.txt --lines      # ... and read the profile

For each stack (`default`: SQLite + in-memory layer; `postgres`: PostgreSQL + Redis, on a
throwaway database made with devtools.live.throwaway_database; `both`, the default, runs the
second only when PostgreSQL and Redis answer) and each ASGI server (--servers: daphne, uvicorn,
granian, as devtools.live.SERVERS runs them; with --processes N the postgres stack also as N
worker processes on one port under the servers that have workers, sessions spread over them by
the kernel, so a random peer is on another process most of the time) it starts the broker,
makes a project whose limits the load cannot reach, and then:

1. opens --sessions WebSocket sessions (--connect-concurrency handshakes at once, spread over
   --client-processes worker processes, see bench/ws_clients.py; the ones not connected after
   --connect-deadline count as failures) and reads the server's RSS once it is quiet again
   (at most SETTLE_MAX_S). Sessions say hello with presence false unless --presence: with
   it, N sessions joining cost the server N^2 session_joined frames, counted in the output;
2. has them send to random peers at --rate messages/s in total for --seconds, acking what
   they are pushed; a session with --max-in-flight unanswered sends skips its turn (counted),
   so an overloaded server gets a bounded backlog rather than an ever-growing one;
3. drains (at most --drain-seconds) and checks that every accepted send (a result with status
   pushing or queued) was pushed to its recipient: accepted ids against unique received ids
   (after a drain cut short by its limit, the missing ones may be late rather than lost);
   then offers half the deliveries/s the load reached for --half-capacity-seconds: the latency
   of one push below saturation, not of a backlog;
4. broadcasts from one session to all the others --broadcasts times: send -> last push
   (a round not complete within BROADCAST_TIMEOUT_S has no time).

Measured: deliveries/s in the load window (pushes received, first copy of each id),
send -> push latency p50/p95/p99 (the sender's time.time() travels in the payload and every
process reads the same clock), send -> result latency, errors and timeouts (sends never
answered), server RSS (VmRSS summed over the server's process group) idle, peak and at the end,
and the CPU of the server, each client process, PostgreSQL, Redis and the whole machine
during the load, from which it names the side that saturated ("other" is whatever else ran
on the machine: on a shared box every figure suffers).

Then the same load on bench/echo_app.py, once per channel layer the stacks used (Redis for
postgres, in-memory for default) and server: the server, Channels and the layer with no
database and no broker code (one process: the ratio of N broker processes to it says how far
past one process's ceiling they go). The broker's deliveries/s is given as a ratio of the echo's; when the echo
itself could not carry the offered load, the ratio says so. --echo-redis-layer core runs
the echo on channels-redis's core layer instead of the pub/sub layer the broker uses.

Every phase has a time limit, so the run ends even on a struggling server: about 2 minutes
when the targets are met, 4 to 5 on a server far from them. One JSON document goes to stdout
(machine, git revision, parameters, results per stack, ceilings, ratios, and SPEC section 5's
targets with met true/false); progress goes to stderr; the servers' logs stay in a
ws-bench-logs-* directory under the temp dir, named in the output.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from the checkout: make the project and bench/ importable

from bench.proc_stats import CpuWatch, RssPeak, process_group, py_spy, rss_mb, wait_until_quiet  # noqa: E402
from bench.report import git_revision, latency_summary, percentile  # noqa: E402
from bench.report import machine as report_machine  # noqa: E402
from bench.ws_clients import ClientPool  # noqa: E402
from devtools.live import LOAD_CEILINGS, SERVERS, BrokerProcess, ServerCommand, broker_env, manage, new_key, throwaway_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TARGETS = {"sessions_held": 1000, "deliveries_per_s": 2000, "delivery_p99_ms": 50, "broadcast_1000_last_push_ms": 250,
           "rss_mb": 300, "cpu_ms_per_delivery_at_40": 3, "push_p50_ms_at_2": 5, "push_p99_ms_at_2": 20,
           "idle_server_percent": 3, "reconnect_storm_s": 5}
DRAIN_STALL_S = 6  # longer than the broker's 5 s re-check of a queue
BROADCAST_TIMEOUT_S = 5
SETTLE_MAX_S = 10


def say(text: str) -> None:
    print(f"[ws_load {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- numbers


def saturated_side(cpu: dict, achieved: float, offered: float) -> str:
    """A hint at what limited the throughput, from the CPU figures of the load window."""
    if achieved >= 0.95 * offered:
        return "none: the offered load was delivered"
    if cpu["server_percent"] >= 90:
        return "server: its process used a full core (one Python process, one GIL)"
    if any(p >= 90 for p in cpu["client_processes_percent"]):
        return "clients: a client process used a full core; add --client-processes"
    if cpu["postgres_percent"] >= 90:
        return "database: PostgreSQL's processes used a full core"
    if (cpu["machine_busy_percent"] or 0) >= 90:
        return (f"machine: every core busy (server, clients, database and Redis together; other processes "
                f"{cpu.get('other_percent', 0)}% of a core)")
    return "unclear: no process used a full core; look at the database, locks and the in-flight cap"


# -- servers


@dataclass(frozen=True)
class Stack:
    name: str
    database_url: str
    redis_url: str

    @property
    def layer(self) -> str:
        return "redis" if self.redis_url else "in-memory"

    @property
    def description(self) -> str:
        return "postgresql+redis" if self.database_url else "sqlite+in-memory"


ECHO_APP = "bench.echo_app:application"
ECHO_KEY = "no-key-needed"  # the echo has no keys and no sessions to resume


@contextmanager
def running(server: BrokerProcess):
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def broker_server(stack: Stack, server_name: str, work_dir: Path, logs: Path, processes: int = 1):
    """The broker under `server_name` on `stack` (as `processes` worker processes on one port), migrated, with a
    project no load can fill; yields (server, key)."""
    with ExitStack() as resources:
        database_url = ""
        if stack.database_url:
            database_url = resources.enter_context(throwaway_database(stack.database_url, prefix="broker_bench"))
        var_dir = work_dir / f"var-{stack.name}-{server_name}-{processes}"
        var_dir.mkdir()
        env = broker_env(var_dir, database_url=database_url, redis_url=stack.redis_url, **LOAD_CEILINGS)
        manage(env, "migrate", "--noinput", "-v", "0")
        project_id = f"bench-{uuid.uuid4().hex[:8]}"  # its own groups on a Redis others may share
        key = new_key(env, "broker_project", "create", "--id", project_id, "--name", f"Bench {project_id}")
        manage(env, "shell", "-c", "from projects.models import Project; from projects.services import project_update; "
               f"project_update(Project.objects.get(pk='{project_id}'), {{'rate_limit_per_minute': 1_000_000, "
               "'max_sessions': 10_000, 'max_queue_size': 1_000_000})")
        log = logs / f"broker-{stack.name}-{server_name}-{processes}.log"
        server = resources.enter_context(running(BrokerProcess(env, log, command=ServerCommand(
            server_name, workers=processes))))
        yield server, key


@contextmanager
def echo_server(redis_url: str, redis_layer: str, server_name: str, work_dir: Path, logs: Path):
    env = broker_env(work_dir, redis_url=redis_url, DJANGO_SETTINGS_MODULE="bench.echo_settings",
                     BENCH_ECHO_REDIS_LAYER=redis_layer)
    log = logs / f"echo-{'redis' if redis_url else 'in-memory'}-{server_name}.log"
    with running(BrokerProcess(env, log, command=ServerCommand(server_name, ECHO_APP))) as server:
        yield server, ECHO_KEY


# -- the phases of one measurement


def connect_phase(pool: ClientPool, sessions: int, server: BrokerProcess) -> tuple[dict, list[str]]:
    started = time.monotonic()
    replies = pool.ask_all("connect")
    peers = [session_id for reply in replies for session_id in reply["session_ids"]]
    failures, frames = Counter(), Counter()
    for reply in replies:
        failures.update(reply["failures"])
        frames.update(reply["frames"])
    figures = {"requested": sessions, "connected": len(peers), "connect_seconds": round(time.monotonic() - started, 1),
               "connect_failures": dict(failures), "frames_received_while_connecting": dict(frames)}
    say(f"{len(peers)}/{sessions} sessions connected in {figures['connect_seconds']} s")
    figures["settled"] = wait_until_quiet(server.process.pid, SETTLE_MAX_S)
    figures["server_rss_mb_idle"] = rss_mb(process_group(server.process.pid))
    return figures, peers


def idle_phase(pool: ClientPool, server: BrokerProcess, seconds: float, options, profile: Path | None) -> dict:
    """The server's CPU with every session connected and nothing sent: the cost of keeping them."""
    with CpuWatch(server.process.pid, pool.pids()) as cpu, py_spy(server.process.pid, seconds, profile, options.profile_gil):
        time.sleep(seconds)
    say(f"idle with every session connected: server {cpu.figures['server_percent']} % of a core")
    return {"seconds": seconds, "server_percent": cpu.figures["server_percent"],
            "server_cpu_ms_per_s": round(1000 * cpu.figures["server_cpu_s"] / cpu.figures["seconds"], 1)}


def load_phase(pool: ClientPool, peers: list[str], server: BrokerProcess, options, profile: Path | None,
               rate: float, seconds: float) -> dict:
    """Offer `rate` msg/s for `seconds`, drain, and merge what the workers saw."""
    pool.ask_all("reset")
    workers = len(pool.pids())
    start_at = time.time() + 0.5
    plan = {"peers": peers, "rate": rate / workers, "seconds": seconds, "start_at": start_at}
    say(f"load: {rate} msg/s for {seconds} s")
    pgid = server.process.pid
    with RssPeak(pgid) as rss, CpuWatch(pgid, pool.pids()) as cpu, py_spy(pgid, seconds, profile, options.profile_gil):
        offered = pool.ask_all("load", [plan] * workers)
    rss_end_of_load = rss_mb(process_group(pgid))
    drained = drain(pool, options.drain_seconds)
    report = merge_reports(pool.ask_all("report"), seconds)
    report["offered"] = {"per_s": rate, "per_session_per_s": round(rate / max(1, len(peers)), 3),
                         "made": sum(o["offered"] for o in offered)}
    report["delivery_check"]["drain"] = drained
    report["cpu_during_load"] = cpu.figures
    # The server's CPU over the load window, over the messages delivered in it (the idle cost included).
    delivered = report["deliveries_per_s"] * seconds
    report["server_cpu_ms_per_delivery"] = round(1000 * cpu.figures["server_cpu_s"] / delivered, 2) if delivered else None
    report["saturated"] = saturated_side(cpu.figures, report["deliveries_per_s"], rate)
    report["server_rss_mb_peak_load"] = max(rss.peak, rss_end_of_load)
    report["server_rss_mb_end_of_load"] = rss_end_of_load
    say(f"delivered {report['deliveries_per_s']} msg/s, p50 {report['push_latency'].get('p50_ms')} ms, "
        f"p99 {report['push_latency'].get('p99_ms')} ms, {report['server_cpu_ms_per_delivery']} ms CPU each, "
        f"not pushed after the drain {report['delivery_check']['missing_after_drain']}; saturated: {report['saturated']}")
    return report


def drain(pool: ClientPool, limit_s: float) -> dict:
    """Wait until every accepted send was pushed and every send answered, nothing moves for DRAIN_STALL_S,
    or `limit_s` is up; says which (messages missing after a time limit may still be on their way)."""
    started = last_progress = time.monotonic()
    seen, ended = -1, "time limit"
    while time.monotonic() - started < limit_s:
        statuses = pool.ask_all("status")
        accepted, received = sum(s["accepted"] for s in statuses), sum(s["received"] for s in statuses)
        if received >= accepted and not any(s["in_flight"] for s in statuses):
            ended = "all pushed and answered"
            break
        if received + accepted != seen:
            seen, last_progress = received + accepted, time.monotonic()
        elif time.monotonic() - last_progress > DRAIN_STALL_S:
            ended = f"nothing arrived for {DRAIN_STALL_S} s"
            break
        time.sleep(0.25)
    return {"seconds": round(time.monotonic() - started, 1), "ended": ended}


def merge_reports(reports: list[dict], seconds: float) -> dict:
    accepted = {i for r in reports for i in r["accepted_ids"]}
    received = {i for r in reports for i in r["received_ids"]}
    by_second, errors, frames = Counter(), Counter(), Counter()
    for r in reports:
        by_second.update({int(k): v for k, v in r["deliveries_by_second"].items()})
        errors.update(r["errors"])
        frames.update(r["frames"])
    in_window = sum(n for second, n in by_second.items() if 0 <= second < seconds)
    return {
        "sent": sum(r["sent"] for r in reports),
        "skipped_at_in_flight_cap": sum(r["skipped"] for r in reports),
        "accepted": len(accepted),
        "accepted_per_s": round(len(accepted) / seconds, 1),
        "deliveries_per_s": round(in_window / seconds, 1),
        "deliveries_by_second": [by_second.get(s, 0) for s in range(int(max(by_second, default=-1)) + 1)],
        "push_latency": latency_summary([ms for r in reports for ms in r["push_latency_ms"]]),
        # The slowest pushes, (seconds into the load when sent, ms): spikes that come at a period have a cause.
        "slowest_pushes": sorted((p for r in reports for p in r["slow_pushes"]), key=lambda p: -p[1])[:20],
        "send_result_latency": latency_summary([ms for r in reports for ms in r["send_rtt_ms"]]),
        "errors": dict(errors),
        "timeouts": sum(r["timeouts"] for r in reports),
        "frames_received": frames,
        "delivery_check": {"accepted": len(accepted), "received_unique": len(received),
                           "missing_after_drain": len(accepted - received), "unexpected": len(received - accepted),
                           "duplicates": sum(r["duplicates"] for r in reports),
                           "all_delivered": accepted <= received},
    }


def broadcast_phase(pool: ClientPool, rounds: int) -> dict:
    """One session broadcasts `rounds` times; a round's time is its send -> the last recipient's push.

    A round not complete within BROADCAST_TIMEOUT_S has no time (None) and the figures say so.
    """
    workers = len(pool.pids())
    times_ms, arrived, expected, counts = [], [], 0, None
    for number in range(rounds):
        plans = [{"round_number": number, "sender": n == 0, "timeout": BROADCAST_TIMEOUT_S} for n in range(workers)]
        replies = pool.ask_all("broadcast", plans)
        expected = sum(r["expected"] for r in replies)
        arrived.append(sum(r["arrived"] for r in replies))
        last = max(r["last"] for r in replies) if arrived[-1] == expected else None
        times_ms.append(round((last - replies[0]["sent_at"]) * 1000, 1) if last else None)
        counts = (replies[0].get("result") or {}).get("counts", counts)
        time.sleep(0.5)
    complete = [ms for ms in times_ms if ms is not None]
    figures = {"rounds": rounds, "recipients": expected, "arrived_per_round": arrived, "last_push_ms": times_ms,
               "all_arrived": len(complete) == rounds, "timeout_s": BROADCAST_TIMEOUT_S, "result_counts": counts,
               "p50_ms": percentile(complete, 50) if complete else None,
               "max_ms": max(complete) if len(complete) == rounds else None}
    late = f" (None: not every copy within {BROADCAST_TIMEOUT_S} s)" if None in times_ms else ""
    say(f"broadcast to {expected}: last push {times_ms} ms{late}")
    return figures


def reconnect_storm(pool: ClientPool, server: BrokerProcess, sessions: int) -> dict:
    """Restart the server (SIGTERM, start) and have every session resume at once: time until all are welcomed."""
    server.stop(signal.SIGTERM)
    stopped = time.perf_counter()
    server.start()
    started = time.perf_counter()
    replies = pool.ask_all("reconnect", [{"concurrency": sessions}] * len(pool.pids()))
    welcomed = sum(r["welcomed"] for r in replies)
    failures = Counter()
    for reply in replies:
        failures.update(reply["failures"])
    figures = {"sessions": sessions, "welcomed": welcomed, "restart_s": round(started - stopped, 2),
               "all_welcomed_s": round(time.perf_counter() - started, 2), "failures": dict(failures)}
    say(f"reconnect storm: {welcomed}/{sessions} resumed {figures['all_welcomed_s']} s after the restart")
    return figures


def measure(server: BrokerProcess, key: str, options, profile: Path | None = None) -> dict:
    """Connect, load, drain, broadcast against one running server."""
    run = uuid.uuid4().hex[:6]  # names (and the echo's groups) never meet a previous run's
    names = [f"bench-{run}-{n}" for n in range(options.sessions)]
    client_options = {"connect_concurrency": max(1, options.connect_concurrency // options.client_processes),
                      "max_in_flight": options.max_in_flight, "connect_deadline": options.connect_deadline,
                      "presence": options.presence}
    with ClientPool(options.client_processes, server.ws_url, key, names, client_options) as pool:
        sessions, peers = connect_phase(pool, options.sessions, server)
        if len(peers) < 2:
            raise RuntimeError(f"only {len(peers)} sessions connected; see {server.log_path}")
        idle = (idle_phase(pool, server, options.idle_seconds, options, suffixed(profile, "idle"))
                if options.idle_seconds else None)
        low = {}
        for rate in options.low_rates:
            low[f"{rate:g}"] = below_saturation(load_phase(pool, peers, server, options, suffixed(profile, f"{rate:g}"),
                                                           rate, options.low_seconds))
        load = load_phase(pool, peers, server, options, profile, options.rate, options.seconds)
        load["frames_received_during_load_and_drain"] = dict(load.pop("frames_received"))
        half = None
        if options.half_capacity_seconds and load["deliveries_per_s"]:
            # The latency of one push, not of a backlog: half of what the server just carried.
            half = below_saturation(load_phase(pool, peers, server, options, suffixed(profile, "half"),
                                               load["deliveries_per_s"] / 2, options.half_capacity_seconds))
        broadcast = broadcast_phase(pool, options.broadcasts) if options.broadcasts else None
        sessions["open_at_end"] = sum(s["open"] for s in pool.ask_all("status"))
        storm = reconnect_storm(pool, server, len(peers)) if options.reconnect_storm and key != ECHO_KEY else None
        server_figures = {"rss_mb_idle": sessions.pop("server_rss_mb_idle"),
                          "rss_mb_peak_load": load.pop("server_rss_mb_peak_load"),
                          "rss_mb_end_of_load": load.pop("server_rss_mb_end_of_load"),
                          "rss_mb_end": rss_mb(process_group(server.process.pid)), "log": str(server.log_path)}
    return {"sessions": sessions, "idle": idle, "below_saturation": low, "load": load,
            "half_capacity": half, "broadcast": broadcast, "reconnect_storm": storm, "server": server_figures}


def suffixed(profile: Path | None, phase: str) -> Path | None:
    return profile.with_name(f"{profile.stem}-{phase}{profile.suffix}") if profile else None


def below_saturation(report: dict) -> dict:
    """What a low-rate phase is for: latency and CPU per message when rounds hold one request each."""
    return {key: report[key] for key in ("offered", "deliveries_per_s", "push_latency", "slowest_pushes", "send_result_latency",
                                         "server_cpu_ms_per_delivery", "cpu_during_load", "errors", "timeouts",
                                         "delivery_check")}


# -- the run


def reachable(database_url: str, redis_url: str) -> bool:
    """Whether the PostgreSQL server and Redis answer."""
    import psycopg
    import redis

    try:
        psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
    except Exception as exc:
        say(f"PostgreSQL/Redis not reachable ({type(exc).__name__}: {exc}); the postgres stack is skipped")
        return False
    return True


def echo_layer_name(stack: Stack, options) -> str:
    if not stack.redis_url:
        return "broker_site.channel_layers.ThrottledInMemoryChannelLayer"
    return {"core": "channels_redis.core.RedisChannelLayer",
            "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer"}[options.echo_redis_layer]


def chosen_stacks(options) -> list[Stack]:
    postgres = Stack("postgres", options.database_url, options.redis_url)
    default = Stack("default", "", "")
    if options.stack == "default":
        return [default]
    if options.stack == "postgres":
        return [postgres]
    return [default, postgres] if reachable(options.database_url, options.redis_url) else [default]


def targets_met(result: dict) -> dict:
    """SPEC section 5 side by side with this stack's figures."""
    sessions, load, broadcast, server = result["sessions"], result["load"], result["broadcast"] or {}, result["server"]
    p99 = load["push_latency"].get("p99_ms")
    peak_rss = max(server["rss_mb_idle"], server["rss_mb_peak_load"], server["rss_mb_end"])
    held = min(sessions["connected"], sessions["open_at_end"])
    return {
        "sessions_held": {"target": ">= 1000", "measured": held, "met": held >= TARGETS["sessions_held"]},
        "deliveries": {"target": ">= 2000 msg/s sustained with p99 <= 50 ms",
                       "measured": {"per_s": load["deliveries_per_s"], "p99_ms": p99},
                       "met": load["deliveries_per_s"] >= TARGETS["deliveries_per_s"] and p99 is not None
                       and p99 <= TARGETS["delivery_p99_ms"] and load["delivery_check"]["all_delivered"]},
        "broadcast_to_1000": {"target": "<= 250 ms send -> last push (judged on the slowest round)",
                              "measured": {"recipients": broadcast.get("recipients"), "max_ms": broadcast.get("max_ms")},
                              "met": broadcast_met(broadcast)},
        "server_rss": {"target": "<= 300 MB per process with 1000 sessions", "measured_mb": peak_rss,
                       "processes": result.get("processes", 1),
                       "met": held >= TARGETS["sessions_held"]
                       and peak_rss / result.get("processes", 1) <= TARGETS["rss_mb"]},
        **half_capacity_met(result["half_capacity"]),
        **storm_met(result["reconnect_storm"]),
        **cost_targets_met(result, held),
    }


def storm_met(storm: dict | None) -> dict:
    if not storm:
        return {}
    return {"reconnect_storm": {"target": "<= 5 s from the restart until every session is welcomed again",
                                "measured_s": storm["all_welcomed_s"], "welcomed": storm["welcomed"],
                                "met": storm["welcomed"] == storm["sessions"]
                                and storm["all_welcomed_s"] <= TARGETS["reconnect_storm_s"]}}


def half_capacity_met(half: dict | None) -> dict:
    if not half:
        return {}
    p99 = half["push_latency"].get("p99_ms")
    return {"p99_at_half_capacity": {"target": "send -> push p99 <= 50 ms at half the deliveries/s reached",
                                     "measured": {"offered_per_s": half["offered"]["per_s"], "p99_ms": p99},
                                     "met": p99 is not None and p99 <= TARGETS["delivery_p99_ms"]
                                     and half["delivery_check"]["all_delivered"]}}


def cost_targets_met(result: dict, held: int) -> dict:
    """The cost-per-message targets, where this run measured them (--low-rates with 2 and 40, --idle-seconds)."""
    met, low, idle = {}, result["below_saturation"], result["idle"]
    enough = held >= TARGETS["sessions_held"]
    if "40" in low:
        cpu = low["40"]["server_cpu_ms_per_delivery"]
        met["cpu_per_delivery_at_40_per_s"] = {"target": "<= 3 ms of server CPU per delivered message", "measured_ms": cpu,
                                               "met": enough and cpu is not None and cpu <= TARGETS["cpu_ms_per_delivery_at_40"]}
    if "2" in low:
        latency = low["2"]["push_latency"]
        p50, p99 = latency.get("p50_ms"), latency.get("p99_ms")
        met["push_latency_at_2_per_s"] = {"target": "send -> push p50 <= 5 ms, p99 <= 20 ms",
                                          "measured": {"p50_ms": p50, "p99_ms": p99},
                                          "met": enough and p50 is not None and p50 <= TARGETS["push_p50_ms_at_2"]
                                          and p99 <= TARGETS["push_p99_ms_at_2"]}
    if idle:
        met["idle_server_cpu"] = {"target": "<= 3 % of a core with 1000 sessions connected",
                                  "measured_percent": idle["server_percent"],
                                  "met": enough and idle["server_percent"] <= TARGETS["idle_server_percent"]}
    return met


def broadcast_met(broadcast: dict) -> bool:
    slowest = broadcast.get("max_ms")
    return bool(broadcast.get("recipients", 0) >= TARGETS["sessions_held"] - 1 and broadcast.get("all_arrived")
                and slowest is not None and slowest <= TARGETS["broadcast_1000_last_push_ms"])


def ratio_to_ceiling(result: dict, ceiling: dict) -> dict:
    """The broker's deliveries/s over the echo's, under the same offered load; says when the echo itself fell short."""
    broker, echo = result["load"]["deliveries_per_s"], ceiling["load"]["deliveries_per_s"]
    ratio = {"ceiling_layer": ceiling["layer"], "broker_per_s": broker, "ceiling_per_s": echo,
             "deliveries_per_s": round(broker / echo, 3) if echo else None}
    check = ceiling["load"]["delivery_check"]
    if not check["all_delivered"] or echo < 0.95 * ceiling["load"]["offered"]["per_s"]:
        ratio["note"] = (f"the echo did not carry the offered load itself ({echo} of {ceiling['load']['offered']['per_s']} "
                         f"msg/s, {check['missing_after_drain']} accepted messages not pushed): the layer is the limit there")
    return ratio


def parse_options(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--stack", choices=["default", "postgres", "both"], default="both",
                        help="both: default and postgres, the latter only if PostgreSQL and Redis answer")
    parser.add_argument("--sessions", type=int, default=1000, help="WebSocket sessions held at once")
    parser.add_argument("--rate", type=float, default=2000, help="messages/s offered, in total over all sessions")
    parser.add_argument("--seconds", type=float, default=10, help="how long the load lasts")
    parser.add_argument("--low-rates", type=lambda text: [float(r) for r in text.split(",") if r], default=[2.0, 40.0],
                        help="comma-separated msg/s offered first, below saturation (empty: none)")
    parser.add_argument("--low-seconds", type=float, default=20, help="how long each low-rate load lasts")
    parser.add_argument("--idle-seconds", type=float, default=10,
                        help="server CPU measured this long with every session connected and nothing sent (0: not)")
    parser.add_argument("--half-capacity-seconds", type=float, default=10,
                        help="after the load, offer half the deliveries/s it reached for this long (0: not)")
    parser.add_argument("--reconnect-storm", action=argparse.BooleanOptionalAction, default=True,
                        help="at the end, restart the broker and have every session resume at once")
    parser.add_argument("--drain-seconds", type=float, default=15,
                        help="after the load, how long to wait for every accepted message to be pushed")
    parser.add_argument("--broadcasts", type=int, default=3, help="broadcast rounds after the load (0: none)")
    parser.add_argument("--client-processes", type=int, default=2, help="load generator processes sharing the sessions")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in progress at once, in total")
    parser.add_argument("--max-in-flight", type=int, default=2, help="unanswered sends per session before it skips a turn")
    parser.add_argument("--connect-deadline", type=float, default=30,
                        help="seconds for all sessions to connect; the ones still trying then count as failures")
    parser.add_argument("--presence", action="store_true",
                        help="sessions ask for session_joined/left frames (N sessions joining then cost N^2 frames)")
    parser.add_argument("--servers", type=lambda text: [s for s in text.split(",") if s], default=list(SERVERS),
                        help=f"comma-separated ASGI servers to run the broker and the echo on: {', '.join(SERVERS)}")
    parser.add_argument("--processes", type=int, default=1,
                        help="also run the postgres stack as this many worker processes on one port (uvicorn, granian), "
                             "spreading the sessions over them: random peers are on another process most of the time")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare Channels echo")
    parser.add_argument("--echo-redis-layer", choices=["core", "pubsub"], default="pubsub",
                        help="the echo's Redis layer: pubsub (RedisPubSubChannelLayer, the broker's) or core (RedisChannelLayer)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="PostgreSQL server for the postgres stack (a throwaway database is made on it)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the postgres stack and its ceiling")
    parser.add_argument("--profile-dir", type=Path, help="py-spy record the broker during the load into DIR/<stack>.txt")
    parser.add_argument("--profile-gil", action="store_true",
                        help="sample only the thread holding the GIL (the process's Python CPU) instead of every busy thread")
    return parser.parse_args(argv)


def bench_stacks(stacks: list[Stack], options, work: Path, logs: Path) -> dict:
    """Each stack under each server, keyed "<stack>/<server>"; with --processes, also the postgres stack as that
    many worker processes of each server that has them, keyed "<stack>/<server>/<n> processes"."""
    results = {}
    for stack in stacks:
        for server_name in options.servers:
            counts = [1] + ([options.processes] if options.processes > 1 and stack.redis_url
                            and server_name != "daphne" else [])
            for processes in counts:
                name = f"{stack.name}/{server_name}" + (f"/{processes} processes" if processes > 1 else "")
                say(f"stack {stack.name} ({stack.description}) under {server_name}, {processes} process(es)")
                profile = (options.profile_dir / f"{stack.name}-{server_name}-{processes}.txt"
                           if options.profile_dir else None)
                with broker_server(stack, server_name, work, logs, processes) as (server, key):
                    results[name] = {"stack": stack.description, "server": server_name, "processes": processes,
                                     **measure(server, key, options, profile)}
                results[name]["targets"] = targets_met(results[name])
    return results


def bench_ceilings(stacks: list[Stack], options, work: Path, logs: Path) -> dict:
    """The echo once per channel layer the stacks used and server, keyed "<in-memory|redis>/<server>"."""
    ceilings = {}
    for stack in stacks:
        for server_name in options.servers:
            name = f"{stack.layer}/{server_name}"
            if name not in ceilings:
                say(f"ceiling: bare Channels echo on the {stack.layer} layer under {server_name}")
                with echo_server(stack.redis_url, options.echo_redis_layer, server_name, work, logs) as (server, key):
                    ceilings[name] = {"layer": echo_layer_name(stack, options), "server": server_name,
                                      **measure(server, key, options)}
    return ceilings


def main() -> None:
    options = parse_options()
    started = time.monotonic()
    machine = {**report_machine(),
               "load_average_at_start": [round(n, 2) for n in os.getloadavg()]}
    stacks = chosen_stacks(options)
    if options.profile_dir:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="ws-bench-logs-"))  # the servers' logs outlive the run
    say(f"server logs in {logs}")
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as work:
        results = bench_stacks(stacks, options, Path(work), logs)
        ceilings = {} if options.no_ceiling else bench_ceilings(stacks, options, Path(work), logs)
    for stack in stacks:
        for server_name in options.servers:
            ceiling = ceilings.get(f"{stack.layer}/{server_name}")
            for name, result in results.items():
                if ceiling and name.startswith(f"{stack.name}/{server_name}"):
                    result["ratio_to_ceiling"] = ratio_to_ceiling(result, ceiling)
    document = {
        "benchmark": "websocket_sessions",
        "machine": machine,
        "git_revision": git_revision(),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
        "results": results,
        "ceilings": ceilings,
        "targets": TARGETS,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
