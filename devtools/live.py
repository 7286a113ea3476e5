"""Plumbing for live broker processes (tests and benchmarks): ports, databases, keys, daphne itself."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_database(url: str, prefix: str = "broker_live") -> Iterator[str]:
    """A fresh PostgreSQL database on the server `url` names, dropped afterwards; yields its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_url = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until_healthy(base_url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    """Poll /healthz until it answers 200; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the broker exited with code {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url}/healthz did not answer within {timeout} s")
        time.sleep(0.1)


ROOT = Path(__file__).resolve().parents[1]
# For a server under load tests and benchmarks: quota ceilings high enough for a project no load can fill.
LOAD_CEILINGS = {"BROKER_CEILING_RATE_LIMIT_PER_MINUTE": "1000000", "BROKER_CEILING_MAX_SESSIONS": "10000",
                 "BROKER_CEILING_MAX_QUEUE_SIZE": "1000000"}
SHOWN_ONCE = re.compile(r"\(shown once\):\s+(\S+)")


def broker_env(var_dir: Path | str, *, database_url: str = "", redis_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a broker process: this one's, minus its stack, plus the given stack."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="broker_site.settings", SECRET_KEY="live-test-secret",
               BROKER_VAR_DIR=str(var_dir), LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args[:2])} failed:\n{done.stderr}")
    return done.stdout


def new_key(env: dict[str, str], *args: str) -> str:
    """Run a management command that prints a key once, and return that key."""
    return SHOWN_ONCE.search(manage(env, *args)).group(1)


# Several management commands in one interpreter: a broker's set-up (migrate, then projects and keys)
# costs one Django start-up instead of one per command.
_MANAGE_MANY = """
import io, json, sys
import django
from django.core.management import call_command
django.setup()
outputs = []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    call_command(*args, stdout=out)
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


def manage_many(env: dict[str, str], *commands: list[str]) -> list[str]:
    """Run each command (its arguments, as for manage.py) in order in one process; what each printed."""
    done = subprocess.run([sys.executable, "-c", _MANAGE_MANY, json.dumps(commands)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"manage_many failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def keys_made(env: dict[str, str], *commands: list[str], migrate: bool = True) -> list[str]:
    """Migrate (unless told not to), then run commands that each print a key once; the keys, in order."""
    outputs = manage_many(env, *([["migrate", "--noinput", "-v", "0"]] if migrate else []), *commands)
    return [SHOWN_ONCE.search(out).group(1) for out in outputs[1 if migrate else 0:]]


BROKER_APP = "broker_site.asgi:application"
# The ASGI servers the broker is run and measured on, each as it is run in production (README, "Running it in production"):
# daphne (the default run), uvicorn with uvloop, httptools and the websockets library's sans-I/O protocol, and granian.
SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "daphne": lambda app, port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
    "uvicorn": lambda app, port: [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                                  "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                                  "--lifespan", "on", "--no-access-log"],
    "granian": lambda app, port: [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                                  "--port", str(port), "--loop", "uvloop", app],
}


@dataclass(frozen=True)
class ServerCommand:
    """The command that serves `app` under `server` on a given port."""

    server: str
    app: str = BROKER_APP
    workers: int = 1  # processes on the one port (uvicorn's and granian's --workers; daphne has none)

    def __call__(self, port: int) -> list[str]:
        if self.workers == 1:
            return SERVERS[self.server](self.app, port)
        if self.server == "daphne":
            raise ValueError("daphne runs one process per port; start several on several ports")
        return [*SERVERS[self.server](self.app, port), "--workers", str(self.workers)]

    @property
    def sigterm_exit_code(self) -> int:
        """How the server ends after a clean stop on SIGTERM: uvicorn re-raises the signal it caught, once its
        shutdown is complete (so the process ends by it); the others exit with 0."""
        return -signal.SIGTERM if self.server == "uvicorn" else 0


def live_server_command() -> ServerCommand:
    """The server live tests run their brokers on: BROKER_LIVE_SERVER (daphne, uvicorn or granian), daphne unless set."""
    name = os.environ.get("BROKER_LIVE_SERVER") or "daphne"
    if name not in SERVERS:
        raise RuntimeError(f"BROKER_LIVE_SERVER={name!r}: not one of {', '.join(SERVERS)}")
    return ServerCommand(name)


class BrokerProcess:
    """One server process serving the broker (on the live tests' server, live_server_command, unless
    `command` says otherwise); restartable on the same port."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None,
                 command: ServerCommand | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.port = port or free_port()
        self.command = command or live_server_command()
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sessions/"

    def start(self) -> "BrokerProcess":
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(self.command(self.port), cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_healthy(self.http_url, self.process)
        except (RuntimeError, TimeoutError) as exc:
            self.stop(signal.SIGKILL)
            raise RuntimeError(self.log_path.read_text()[-5000:]) from exc
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the process group (once) and wait for it; its exit code, or the signal that killed it (negative)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def four_keys(env: dict[str, str], other_project: tuple[str, str]) -> tuple[str, str, str, str]:
    """The live tests' usual broker, migrated: project alpha (its admin and an agent key), another project
    (`other_project`: id and name; its admin key) and an operator key (in project ops)."""
    alpha_admin, alpha_agent, other_admin, _, operator = keys_made(
        env, ["broker_project", "create", "--id", "alpha", "--name", "Alpha"],
        ["broker_key", "create", "--project", "alpha", "--role", "agent"],
        ["broker_project", "create", "--id", other_project[0], "--name", other_project[1]],
        ["broker_project", "create", "--id", "ops", "--name", "Ops"],
        ["broker_key", "create", "--project", "ops", "--role", "operator"])
    return alpha_admin, alpha_agent, other_admin, operator
