"""A Claude-Code-style client configured once with two headers (the agent key and X-Session-Token) and
nothing else: every session tool acts as that session, with no connect_session and no session_token
argument, on both protocol generations, across agent restarts and time away.

The sessions are made as an operator would, with `manage.py broker_session create`.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devtools.live import manage
from tests.mcp.helpers import call, fails

MODES = ["legacy", "auto"]


def provision(broker, name: str, project: str = "alpha") -> tuple[str, str]:
    """A named session made by the command line: (its session id, its token)."""
    out = manage(broker.env, "broker_session", "create", "--project", project, "--name", name)
    token = out.split("(shown once):", 1)[1].split()[0]
    session_id = out.split(f"'{name}' (", 1)[1].split(")", 1)[0]
    return session_id, token


def configured(broker, token: str, mode: str, key: str | None = None):
    """An SDK client configured as Claude Code is by `claude mcp add ... --header`: two headers, no more."""
    return broker.client(key, mode=mode, **{"X-Session-Token": token})


async def statuses(broker) -> dict[str, str]:
    async with broker.client() as client:
        listed = await call(client, "list_sessions", status_filter="all", include_capabilities=False)
    return {s["name"]: s["status"] for s in listed["sessions"]}


def names(mode: str, *roles: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{role}-{mode}-{tag}" for role in roles]


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_with_only_the_two_headers_uses_every_session_tool(live_broker, mode):
    frontend, backend = names(mode, "frontend", "backend")
    frontend_id, frontend_token = provision(live_broker, frontend)
    backend_id, backend_token = provision(live_broker, backend)
    assert (await statuses(live_broker))[frontend] == "disconnected"  # not shown live before its first call
    async with configured(live_broker, frontend_token, mode) as fe, configured(live_broker, backend_token, mode) as be:
        beat = await call(fe, "heartbeat")
        assert (beat["session_id"], beat["status"]) == (frontend_id, "active")
        assert (await call(be, "heartbeat"))["session_id"] == backend_id
        negotiated = await call(fe, "negotiate_capabilities", target_session_id=backend)
        assert (negotiated["session_a"], negotiated["session_b"]) == (frontend_id, backend_id)
        sent = await call(fe, "send_message", recipient_id=backend, payload={"text": "hello"})
        received = await call(be, "receive_messages", wait_seconds=10)
        [message] = received["messages"]
        assert (message["message_id"], message["sender_id"]) == (sent["message_id"], frontend_id)
        assert (await call(be, "ack_messages", message_ids=[sent["message_id"]]))["acked"] == [sent["message_id"]]
        assert (await call(fe, "get_message_status", message_id=sent["message_id"]))["state"] == "acked"
        broadcast = await call(fe, "broadcast_message", payload={"text": "all"})
        assert backend_id in str(broadcast["pushing"] + broadcast["queued"]), broadcast
        assert (await call(fe, "disconnect_session"))["status"] == "disconnected"
    assert (await statuses(live_broker))[frontend] == "disconnected"


@pytest.mark.parametrize("mode", MODES)
async def test_a_restarted_agent_keeps_its_identity_and_gets_the_mail_sent_while_it_was_away(live_broker, mode):
    frontend, backend = names(mode, "frontend", "backend")
    frontend_id, frontend_token = provision(live_broker, frontend)
    _, backend_token = provision(live_broker, backend)
    async with configured(live_broker, frontend_token, mode) as first_run:
        assert (await call(first_run, "heartbeat"))["session_id"] == frontend_id
    # The agent has exited; its peer writes to it meanwhile.
    async with configured(live_broker, backend_token, mode) as be:
        sent = await call(be, "send_message", recipient_id=frontend, payload={"while": "away"})
    async with configured(live_broker, frontend_token, mode) as second_run:
        received = await call(second_run, "receive_messages", wait_seconds=10)
        assert [m["message_id"] for m in received["messages"]] == [sent["message_id"]]
        assert (await call(second_run, "heartbeat"))["session_id"] == frontend_id


@pytest.mark.parametrize("mode", MODES)
async def test_after_disconnect_session_the_next_call_resumes_and_unacked_mail_comes_again(live_broker, mode):
    frontend, backend = names(mode, "frontend", "backend")
    _, frontend_token = provision(live_broker, frontend)
    _, backend_token = provision(live_broker, backend)
    async with configured(live_broker, backend_token, mode) as be, \
            configured(live_broker, frontend_token, mode) as fe:
        sent = await call(be, "send_message", recipient_id=frontend, payload={"n": 1})
        [taken] = (await call(fe, "receive_messages", wait_seconds=10))["messages"]  # handed over, never acked
        assert (await call(fe, "disconnect_session"))["status"] == "disconnected"
        assert (await statuses(live_broker))[frontend] == "disconnected"
        again = await call(fe, "receive_messages", wait_seconds=10)
        assert [m["message_id"] for m in again["messages"]] == [taken["message_id"]] == [sent["message_id"]]
    assert (await statuses(live_broker))[frontend] == "active"


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_that_timed_out_comes_back_on_its_next_call(live_broker, mode):
    [frontend] = names(mode, "frontend")
    frontend_id, token = provision(live_broker, frontend)
    async with configured(live_broker, token, mode) as fe:
        assert (await call(fe, "heartbeat"))["status"] == "active"
        # Ten minutes of silence pass for this session (disconnect_after is 60 s).
        live_broker.sql("UPDATE sessions_app_agentsession SET last_heartbeat_at = %s WHERE id = %s",
                        (datetime.now(UTC) - timedelta(minutes=10), uuid.UUID(frontend_id)))
        assert (await statuses(live_broker))[frontend] == "disconnected"
        sent = await call(fe, "send_message", recipient_id=frontend, payload={"note": "to self"})
        assert sent["message_id"]
    assert (await statuses(live_broker))[frontend] == "active"


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_token_argument_on_a_disconnected_session_is_still_refused(live_broker, mode):
    [frontend] = names(mode, "frontend")
    _, token = provision(live_broker, frontend)
    async with live_broker.client(mode=mode) as plain:  # no header: the token comes as an argument
        refused = await fails(plain, "heartbeat", session_token=token)
    assert refused["error"] == "conflict" and "connect_session" in refused["message"]
    assert (await statuses(live_broker))[frontend] == "disconnected"


@pytest.mark.parametrize("mode", MODES)
async def test_another_projects_key_with_a_valid_token_gets_nothing(live_broker, mode):
    [frontend] = names(mode, "frontend")
    _, token = provision(live_broker, frontend)
    async with configured(live_broker, token, mode, key=live_broker.other_project_key) as outsider:
        refused = await fails(outsider, "heartbeat")
        assert refused["error"] == "unauthorized"
        assert (await fails(outsider, "receive_messages"))["error"] == "unauthorized"
        assert (await fails(outsider, "connect_session"))["error"] == "unauthorized"
    assert (await statuses(live_broker))[frontend] == "disconnected"  # nothing resumed it


async def test_connect_session_on_a_configured_client_resumes_its_session_rather_than_making_another(live_broker):
    # The server's instructions tell agents to connect first; a configured one must not end up as someone new.
    [frontend] = names("legacy", "frontend")
    frontend_id, token = provision(live_broker, frontend)
    async with configured(live_broker, token, "legacy") as fe:
        connected = await call(fe, "connect_session")
        assert (connected["session_id"], connected["resumed"], connected["bound"]) == (frontend_id, True, True)
        assert "session_token" not in connected
        assert (await call(fe, "heartbeat"))["session_id"] == frontend_id
    async with configured(live_broker, token, "auto") as fe:
        connected = await call(fe, "connect_session", name=frontend)
        assert connected["session_id"] == frontend_id and "hint" not in connected
