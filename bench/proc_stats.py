"""Memory and CPU of processes on this machine, read from /proc (Linux), and py-spy profiles of them: what the benchmarks report.

Server figures are taken over daphne's process group (it was started in a session of its own),
so a server that forks is still counted whole. CPU figures are in percent of one core.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_CPU_PERCENT = 10


def process_group(pgid: int) -> list[int]:
    """Every process whose process group is `pgid` (daphne and anything it started)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def processes_named(*names: str) -> list[int]:
    """Processes whose command is one of `names` (PostgreSQL's and Redis's servers run on this machine)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names:
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuWatch:
    """CPU used over an interval, in % of one core: the server, each client process, PostgreSQL and
    Redis (every process of theirs on the machine, whoever it serves), and the whole machine."""

    def __init__(self, server_pgid: int, client_pids: list[int]) -> None:
        self.groups = {"server_percent": lambda: process_group(server_pgid),
                       "postgres_percent": lambda: processes_named("postgres"),
                       "redis_percent": lambda: processes_named("redis-server")}
        self.client_pids = client_pids

    def __enter__(self) -> "CpuWatch":
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        self.clients_before = [cpu_seconds([pid]) for pid in self.client_pids]
        self.machine_before = machine_cpu()
        return self

    def __exit__(self, *exc_info) -> None:
        elapsed = time.monotonic() - self.started
        busy, total = (after - before for after, before in zip(machine_cpu(), self.machine_before, strict=True))
        used = {name: cpu_seconds(pids()) - self.before[name] for name, pids in self.groups.items()}
        self.figures = {name: round(100 * seconds / elapsed) for name, seconds in used.items()}
        self.figures.update(
            seconds=round(elapsed, 2), server_cpu_s=round(used["server_percent"], 3),
            client_processes_percent=[round(100 * (cpu_seconds([pid]) - before) / elapsed)
                                      for pid, before in zip(self.client_pids, self.clients_before, strict=True)],
            machine_busy_percent=round(100 * busy / total) if total else None, machine_cores=os.cpu_count())
        # Whatever the machine did besides this run (other test suites on a shared box skew every figure).
        accounted = sum(self.figures[name] for name in self.groups) + sum(self.figures["client_processes_percent"])
        if self.figures["machine_busy_percent"] is not None:
            self.figures["other_percent"] = max(0, self.figures["machine_busy_percent"] * (os.cpu_count() or 1) - accounted)


class RssPeak:
    """Samples the server group's RSS twice a second in a thread; keeps the highest."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop.wait(0.5):
            self.peak = max(self.peak, rss_mb(process_group(self.pgid)))

    def __enter__(self) -> "RssPeak":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


def wait_until_quiet(pgid: int, limit_s: float) -> dict:
    """Wait until the server uses under QUIET_CPU_PERCENT of a core (the connect storm is over), at most `limit_s`."""
    started = time.monotonic()
    quiet = False
    while not quiet and time.monotonic() - started < limit_s:
        before = cpu_seconds(process_group(pgid))
        time.sleep(0.5)
        quiet = 100 * (cpu_seconds(process_group(pgid)) - before) / 0.5 < QUIET_CPU_PERCENT
    return {"after_s": round(time.monotonic() - started, 1), "quiet": quiet}


@contextmanager
def py_spy(pid: int, seconds: float, output: Path | None, gil_only: bool = False):
    """py-spy record on `pid` for the load window when --profile-dir is given (raw collapsed stacks)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if output is None or not Path(binary).exists():
        if output is not None:
            print("py-spy not found; no profile (pip install py-spy, locally)", file=sys.stderr)
        yield
        return
    recorder = subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                                 "--format", "raw", "--nonblocking", "--output", str(output), *(["--gil"] if gil_only else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        try:
            _, errors = recorder.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            errors = "timed out"
        print(f"profile written to {output}" if output.exists() else f"py-spy failed: {errors[-500:]}", file=sys.stderr)
