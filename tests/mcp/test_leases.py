"""File leases through the MCP tools on a live server (both protocols), a session's end freeing its leases with
the waiter told, and the contrib pre-commit hook refusing a commit of a file another session leases."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcp.helpers import acting_as, call

MODES = ["legacy", "auto"]
HOOK = Path(__file__).resolve().parents[2] / "contrib" / "pre-commit-leases"


@pytest.mark.parametrize("mode", MODES)
async def test_lease_conflict_release_and_the_waiter_told_through_the_tools(live_broker, mode):
    async with live_broker.client(mode=mode) as ann, live_broker.client(mode=mode) as ben:
        a = await call(ann, "connect_session", name=f"lease-ann-{mode}")
        b = await call(ben, "connect_session", name=f"lease-ben-{mode}")
        as_a, as_b = acting_as(a, mode), acting_as(b, mode)
        workspace = f"ws-{mode}"
        granted = await call(ann, "lease_files", paths=["web/*.ts"], reason="new login form", workspace=workspace,
                             **as_a)
        assert granted["granted"] and granted["leases"][0]["session_name"] == f"lease-ann-{mode}"
        refused = await call(ben, "lease_files", paths=["web/login.ts"], workspace=workspace, **as_b)
        assert not refused["granted"] and refused["conflicts"][0]["held_by"]["reason"] == "new login form"
        held = await call(ben, "list_leases", path="web/login.ts", workspace=workspace)
        assert [x["session_name"] for x in held["leases"]] == [f"lease-ann-{mode}"]

        assert (await call(ann, "release_files", workspace=workspace, **as_a))["released"] == ["web/*.ts"]
        inbox = await call(ben, "receive_messages", wait_seconds=10, auto_ack=True, **as_b)
        [news] = [m for m in inbox["messages"] if "lease_freed" in m["payload"]]
        assert news["payload"]["lease_freed"]["paths"] == ["web/login.ts"] and news["sender_id"] == a["session_id"]
        assert (await call(ben, "lease_files", paths=["web/login.ts"], workspace=workspace, **as_b))["granted"]


async def test_a_session_that_disconnects_frees_its_leases_and_the_waiter_hears_within_the_sweep(live_broker):
    async with live_broker.client() as ann, live_broker.client() as ben:
        await call(ann, "connect_session", name="gone-ann")
        await call(ben, "connect_session", name="gone-ben")
        assert (await call(ann, "lease_files", paths=["infra/main.tf"], workspace="gone"))["granted"]
        assert not (await call(ben, "lease_files", paths=["infra/main.tf"], workspace="gone"))["granted"]
        await call(ann, "disconnect_session")
        assert (await call(ben, "list_leases", workspace="gone"))["leases"] == []  # at once
        inbox = await call(ben, "receive_messages", wait_seconds=15, auto_ack=True)  # the sweeper's next pass
        assert [m["payload"]["lease_freed"]["why"] for m in inbox["messages"]] == ["ended"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _hook(repo: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HOOK)], cwd=repo, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


async def test_the_pre_commit_hook_refuses_a_file_another_session_leases(live_broker, tmp_path):
    async with live_broker.client() as holder:
        await call(holder, "connect_session", name="hook-holder")
        await call(holder, "lease_files", paths=["src/*.py"], reason="mid-refactor")
        repo = tmp_path / "repo"
        repo.mkdir()
        _git(repo, "init", "-q")
        (repo / "src").mkdir()
        (repo / "src" / "app.py").write_text("print('hi')\n")
        (repo / "notes.txt").write_text("notes\n")
        base = live_broker.process.http_url
        key = live_broker.agent_key

        _git(repo, "add", "notes.txt")
        assert _hook(repo, BROKER_URL=base, BROKER_KEY=key).returncode == 0
        _git(repo, "add", "src/app.py")
        refused = _hook(repo, BROKER_URL=base, BROKER_KEY=key)
        assert refused.returncode == 1
        assert "src/app.py: leased (exclusive) by hook-holder" in refused.stderr and "mid-refactor" in refused.stderr
        assert _hook(repo, BROKER_URL=base, BROKER_KEY=key, BROKER_SESSION="hook-holder").returncode == 0
        # Another project's key sees none of these leases.
        assert _hook(repo, BROKER_URL=base, BROKER_KEY=live_broker.other_project_key).returncode == 0
        # A broker that cannot be reached does not stop work, unless asked to.
        down = _hook(repo, BROKER_URL="http://127.0.0.1:9", BROKER_KEY=key)
        assert down.returncode == 0 and "could not ask the broker" in down.stderr
        assert _hook(repo, BROKER_URL="http://127.0.0.1:9", BROKER_KEY=key, BROKER_LEASES_STRICT="1").returncode == 1
