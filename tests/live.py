"""A live broker of a test's own (on the live tests' server: daphne unless BROKER_LIVE_SERVER says) with its
keys, on the run's stack.

For tests that need the server started with settings of their own (small limits, short
retentions). `sql` reads the server's database directly, to measure what it stored, and
moves timestamps back, to stand in for days passing; it never sets up state (services and
the faces do that).
"""

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from devtools.live import BrokerProcess, broker_env, four_keys, throwaway_database


@dataclass
class Live:
    server: BrokerProcess
    database_url: str
    var_dir: Path
    alpha_admin: str
    alpha_agent: str
    beta_admin: str
    operator: str

    @property
    def url(self) -> str:
        return self.server.http_url

    def rest(self, key: str, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=60,
                            headers={"Authorization": f"Bearer {key}", **headers})

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        return server_sql(self.database_url, self.var_dir, statement, params)


def server_sql(database_url: str, var_dir: Path, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on a live server's database (`%s` placeholders) and return its rows.

    Parameters are written as Django stores them: on SQLite, a UUID as 32 hex digits and a
    time as UTC text.
    """
    if database_url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    stored = tuple(_as_sqlite(value) for value in params)
    with sqlite3.connect(Path(var_dir) / "broker.sqlite3", timeout=30) as conn:
        return conn.execute(statement.replace("%s", "?"), stored).fetchall()


def _as_sqlite(value):
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@contextmanager
def live_broker(tmp_path: Path, **settings: str) -> Iterator[Live]:
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        with throwaway_database(database_url, prefix="broker_live") as url:
            yield from _serve(tmp_path, url, os.environ.get("REDIS_URL", ""), settings)
    else:
        yield from _serve(tmp_path, "", "", settings)


def _serve(tmp_path: Path, database_url: str, redis_url: str, settings: dict) -> Iterator[Live]:
    env = broker_env(tmp_path, database_url=database_url, redis_url=redis_url, **settings)
    alpha_admin, alpha_agent, beta_admin, operator = four_keys(env, ("team-b", "Team B"))
    server = BrokerProcess(env, tmp_path / "daphne.log").start()
    try:
        yield Live(server, database_url, tmp_path, alpha_admin, alpha_agent, beta_admin, operator)
    finally:
        server.stop()
    log_text = server.log_text()
    assert "Traceback" not in log_text, log_text[-5000:]
