"""Management commands go through the same services as the API."""

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from devtools.live import broker_env, manage
from projects.keys import digest, parse_key
from projects.models import ApiKey, AuditEvent, Project
from sessions_app.models import AgentSession
from tests.conftest import api_client

KEY = re.compile(r"\b([a-z][a-z0-9-]*[a-z0-9]_[a-z0-9-]{1,32}_[A-Za-z0-9]{40})\b")


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_creates_default_project_once_and_prints_working_keys(db):
    first = run("broker_bootstrap")
    keys = KEY.findall(first)
    assert len(set(keys)) == 2
    assert "claude mcp add --transport http" in first
    roles = {ApiKey.objects.get(project_id="default", key_id=parse_key(k).key_id).role for k in set(keys)}
    assert roles == {"admin", "agent"}
    for key in set(keys):
        assert api_client(key).get("/api/v1/sessions/").status_code == 200
    second = run("broker_bootstrap")
    assert KEY.findall(second) == []
    assert Project.objects.filter(pk="default").count() == 1
    assert ApiKey.objects.filter(project_id="default").count() == 2


def test_broker_key_create_rotate_revoke_list(alpha):
    created = run("broker_key", "create", "--project", "alpha", "--role", "admin", "--label", "ops")
    raw = KEY.findall(created)[0]
    key_id = parse_key(raw).key_id
    assert api_client(raw).get("/api/v1/projects/alpha/keys/").status_code == 200
    rotated = KEY.findall(run("broker_key", "rotate", "--project", "alpha", "--key-id", key_id, "--grace", "0"))[0]
    assert api_client(raw).get("/api/v1/sessions/").status_code == 401
    assert api_client(rotated).get("/api/v1/sessions/").status_code == 200
    run("broker_key", "revoke", "--project", "alpha", "--key-id", parse_key(rotated).key_id)
    assert api_client(rotated).get("/api/v1/sessions/").status_code == 401
    listing = run("broker_key", "list", "--project", "alpha")
    assert key_id in listing and raw not in listing


def test_broker_key_errors_are_clear(alpha):
    with pytest.raises(CommandError, match="No project"):
        run("broker_key", "create", "--project", "ghost")
    with pytest.raises(CommandError, match="not_found"):
        run("broker_key", "revoke", "--project", "alpha", "--key-id", "nope")


def test_broker_project_create_list_deactivate(db):
    out = run("broker_project", "create", "--id", "team-x", "--name", "Team X", "--discoverable")
    raw = KEY.findall(out)[0]
    assert api_client(raw).get("/api/v1/projects/team-x/").status_code == 200
    assert "team-x" in run("broker_project", "list")
    run("broker_project", "deactivate", "--id", "team-x")
    assert Project.objects.get(pk="team-x").status == "inactive"
    assert api_client(raw).get("/api/v1/sessions/").status_code == 403
    with pytest.raises(CommandError, match="validation_error"):
        run("broker_project", "create", "--id", "Bad_Id", "--name", "Bad")


def test_broker_key_rotate_all_rotates_every_active_key(alpha):
    out = run("broker_key", "rotate", "--project", "alpha", "--all", "--grace", "0")
    new_keys = set(KEY.findall(out))
    assert len(new_keys) == 2 and "Replaces" in out
    assert {ApiKey.objects.get(project_id="alpha", key_id=parse_key(k).key_id).role for k in new_keys} == \
        {"admin", "agent"}
    assert api_client(alpha.agent_key).get("/api/v1/sessions/").status_code == 401
    assert all(api_client(k).get("/api/v1/sessions/").status_code == 200 for k in new_keys)
    with pytest.raises(CommandError):
        run("broker_key", "rotate", "--project", "alpha")  # neither --key-id nor --all


def test_broker_session_create_prints_the_token_once_with_ready_lines_and_the_token_works(alpha):
    out = run("broker_session", "create", "--project", "alpha", "--name", "frontend", "--url", "http://broker.test:9000",
              "--capabilities", '{"supported_protocols": {"chat": ["1.0.0"]}}')
    token = re.search(r"\(shown once\):\s+(\S+)", out).group(1)
    session = AgentSession.objects.get(project_id="alpha", name="frontend")
    assert session.token_digest == digest(token) and session.provisioned
    assert session.supported_protocols == {"chat": ["1.0.0"]}
    assert (session.status, session.disconnect_reason) == ("disconnected", "provisioned")  # not live until it calls
    assert ('claude mcp add --transport http broker http://broker.test:9000/mcp --header "Authorization: Bearer '
            f'YOUR_AGENT_KEY" --header "X-Session-Token: {token}"') in out
    snippet = json.loads(out[out.index("{"):])
    assert snippet["mcpServers"]["broker"] == {
        "type": "http", "url": "http://broker.test:9000/mcp",
        "headers": {"Authorization": "Bearer ${BROKER_KEY}", "X-Session-Token": "${BROKER_SESSION_TOKEN}"}}
    assert token not in out[out.index("{"):]  # the committable snippet names the variable, not the secret
    event = AuditEvent.objects.get(action="session_provision")
    assert (event.actor_key_id, event.target_project) == ("cli", "alpha")
    client = alpha.client(HTTP_X_SESSION_TOKEN=token)
    assert client.post("/api/v1/sessions/me/heartbeat/").json()["status"] == "active"


def test_broker_session_create_refuses_a_taken_name_and_an_unknown_or_inactive_project(alpha, capsys):
    run("broker_session", "create", "--project", "alpha", "--name", "frontend")
    with pytest.raises(CommandError, match="conflict: A session named 'frontend' exists"):
        run("broker_session", "create", "--project", "alpha", "--name", "frontend")
    with pytest.raises(CommandError, match="No project 'ghost'"):
        run("broker_session", "create", "--project", "ghost", "--name", "frontend")
    run("broker_project", "deactivate", "--id", "alpha")
    with pytest.raises(CommandError, match="forbidden: Project alpha is inactive"):
        run("broker_session", "create", "--project", "alpha", "--name", "backend")
    with pytest.raises(CommandError, match="not JSON"):
        run("broker_session", "create", "--project", "alpha", "--name", "backend", "--capabilities", "{nope")
    assert AgentSession.objects.filter(project_id="alpha").count() == 1


def test_broker_session_create_exits_non_zero_with_the_reason(tmp_path):
    # As an operator runs it: a process of its own, on a database of its own (an embedded default).
    env = broker_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "broker_project", "create", "--id", "team-a", "--name", "Team A")
    assert "(shown once)" in manage(env, "broker_session", "create", "--project", "team-a", "--name", "frontend")
    with pytest.raises(RuntimeError, match="conflict: A session named 'frontend' exists"):  # manage(): exit code != 0
        manage(env, "broker_session", "create", "--project", "team-a", "--name", "frontend")
    with pytest.raises(RuntimeError, match="No project 'ghost'"):
        manage(env, "broker_session", "create", "--project", "ghost", "--name", "frontend")
