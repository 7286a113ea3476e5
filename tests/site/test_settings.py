"""Settings come from the environment; bad or missing values stop the start with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker_site.settings import database_from_url

ROOT = Path(__file__).resolve().parents[2]


def start_django(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}}
    clean.update(env, DJANGO_SETTINGS_MODULE="broker_site.settings")
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_missing_secret_key_with_debug_off_refuses_to_start(tmp_path):
    result = start_django(BROKER_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_on_starts_without_secret_key(tmp_path):
    result = start_django(DEBUG="true", BROKER_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize(("env", "named"), [
    ({"DEBUG": "maybe"}, "DEBUG"),
    ({"DATABASE_URL": "mysql://root@localhost/db"}, "DATABASE_URL"),
    ({"DATABASE_POOL_MAX": "0", "DATABASE_URL": "postgres://u@h/db"}, "DATABASE_POOL_MAX"),
    ({"CHANNEL_CAPACITY": "lots"}, "CHANNEL_CAPACITY"),  # the in-memory layer's (Redis pub/sub has none)
])
def test_bad_values_name_the_variable(tmp_path, env, named):
    result = start_django(SECRET_KEY="s", BROKER_VAR_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert named in result.stderr


def test_database_url_parsing():
    pg = database_from_url("postgres://user:p%40ss@db.example:6543/broker")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql", "broker", "user", "p@ss", "db.example", "6543")
    lite = database_from_url("sqlite:////tmp/broker-test.sqlite3")
    assert lite["ENGINE"] == "django.db.backends.sqlite3" and str(lite["NAME"]) == "/tmp/broker-test.sqlite3"
