"""The checked-in deployment: docker-compose.yml, deploy/haproxy.cfg, deploy/prometheus.yml, deploy/alerts.yml.

There is no Docker Compose on this machine, so the compose file is checked for what `docker
compose up` relies on: the services, their order (migrations once, after the database and
Redis are healthy; brokers after them; the balancer after healthy brokers), the stack each
broker is given, and the settings wired to .env.example. The balancer's config is checked by
HAProxy itself with the addresses compose gives it; the alert rules may name only metrics the
broker exports.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.live import BROKER_APP, ROOT, SERVERS
from routing.contracts import SendIn
from routing.sending import message_send
from tests.site.test_metrics import scraped

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BROKERS = ("broker1", "broker2")


def _example_settings() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {re.match(r"#?\s*([A-Z][A-Z0-9_]+)=", line).group(1) for line in lines
            if re.match(r"#?\s*([A-Z][A-Z0-9_]+)=", line)}


def test_compose_runs_migrations_once_before_two_brokers_and_the_balancer_after_them():
    assert set(SERVICES) == {"postgres", "redis", "migrate", *BROKERS, "balancer"}
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                 "redis": {"condition": "service_healthy"}}
    assert "migrate --noinput" in " ".join(SERVICES["migrate"]["command"])
    assert SERVICES["migrate"]["restart"] == "no"
    for name in BROKERS:
        broker = SERVICES[name]
        assert broker["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert "migrate" not in " ".join(broker["command"])  # once, not per replica
        assert "/readyz" in " ".join(broker["healthcheck"]["test"])
    assert SERVICES["balancer"]["depends_on"] == {name: {"condition": "service_healthy"} for name in BROKERS}
    for name in ("postgres", "redis", *BROKERS):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_every_broker_shares_the_one_database_and_redis_and_reads_env_example_settings():
    postgres = SERVICES["postgres"]["environment"]
    expected_db = (f"postgres://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
                   f"{postgres['POSTGRES_DB']}")
    settings = _example_settings()
    for name in ("migrate", *BROKERS):
        service = SERVICES[name]
        assert service["env_file"] == ".env"
        assert service["environment"]["DATABASE_URL"] == expected_db
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert set(service["environment"]) <= settings, set(service["environment"]) - settings
        hosts = service["environment"]["ALLOWED_HOSTS"].split(",")
        assert "localhost" in hosts  # the health checks' Host


def test_the_balancer_config_is_valid_for_the_addresses_compose_gives_it():
    balancer = SERVICES["balancer"]
    assert balancer["volumes"] == ["./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert balancer["ports"] == [f"{balancer['environment']['BALANCER_BIND'].lstrip(':')}:8080"]
    assert {balancer["environment"][f"BROKER_{n}"] for n in (1, 2)} == {f"{name}:8000" for name in BROKERS}
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        if os.environ.get("BROKER_REQUIRE_TOOLS") == "1":
            raise AssertionError("BROKER_REQUIRE_TOOLS=1 but HAProxy is not installed")
        pytest.skip("HAProxy is not installed (apt-get install -y haproxy); .ci/run installs it")
    env = {**os.environ, **balancer["environment"]}
    checked = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env=env,
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_scrapes_each_broker_and_loads_the_alert_rules():
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    assert job["static_configs"][0]["targets"] == [f"{name}:8000" for name in BROKERS]
    assert prometheus["rule_files"] == ["alerts.yml"]
    assert (ROOT / "deploy" / "alerts.yml").exists()


def test_alert_rules_name_only_metrics_the_broker_exports(alpha, operator_key):
    sender, _ = alpha.connect("someone")  # so the per-project series exist
    alpha.connect("else")
    message_send(sender, SendIn(recipient_id="else", payload={}))
    exported = {name for name, _ in scraped(operator_key)}
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} >= {"BrokerDeadLettersRising", "BrokerQueueNearCapacity",
                                                 "BrokerPushFallback"}
    for rule in rules:
        named = set(re.findall(r"\bbroker_[a-z_]+\b", rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)


def test_the_readme_describes_the_deployment():
    readme = (ROOT / "README.md").read_text()
    for piece in ("docker compose up", "deploy/haproxy.cfg", "deploy/prometheus.yml", "PROMETHEUS_MULTIPROC_DIR"):
        assert piece in readme, piece


def test_nothing_in_deploy_is_unexplained():
    described = (ROOT / "README.md").read_text()
    for path in Path(ROOT / "deploy").iterdir():
        assert f"deploy/{path.name}" in described, path.name


def test_the_image_and_the_brokers_run_the_server_command_the_benchmarks_measure():
    # README "Running it in production": uvicorn as devtools.live.SERVERS runs it, on 0.0.0.0:8000.
    measured = SERVERS["uvicorn"](BROKER_APP, 8000)[2:]  # without "python -m"
    production = [("0.0.0.0" if part == "127.0.0.1" else part) for part in measured]
    for name in BROKERS:
        assert SERVICES[name]["command"] == production, name
    assert f"exec {' '.join(production)}" in (ROOT / "Dockerfile").read_text()


def test_what_the_production_command_loads_is_a_runtime_requirement():
    # The image installs requirements.txt alone: uvicorn's loop, parser and WebSocket protocol must be there.
    # (websockets was a dev requirement once, and the image's uvicorn could not start.)
    pinned = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    command = SERVERS["uvicorn"](BROKER_APP, 8000)
    chosen = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
    needs = {"--loop": {"uvloop": "uvloop"}, "--http": {"httptools": "httptools"},
             "--ws": {"websockets-sansio": "websockets", "websockets": "websockets", "wsproto": "wsproto"}}
    for option, packages in needs.items():
        assert packages[chosen[option]] in pinned, (option, chosen[option])
    assert "uvicorn" in pinned
