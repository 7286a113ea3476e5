"""The README's run command, as a newcomer runs it: install, migrate, bootstrap, serve, use the key."""

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from devtools.live import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"agent key[^:]*:\s+(\S+)")


def test_run_script_serves_the_broker_with_the_printed_key(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    # The embedded default, in a directory of its own so the test leaves the checkout alone.
    env.update(BROKER_VAR_DIR=str(tmp_path), PORT=str(port))
    server = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True).start()
    try:
        output = ""
        deadline = time.monotonic() + 180
        while "Ctrl-C stops" not in output and time.monotonic() < deadline:
            try:
                output += lines.get(timeout=1)
            except queue.Empty:
                assert server.poll() is None, output
        agent_key = KEY.search(output).group(1)
        assert f"claude mcp add --transport http broker http://127.0.0.1:{port}/mcp" in output

        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server)
        headers = {"Authorization": f"Bearer {agent_key}"}
        connected = httpx.post(f"{base}/api/v1/sessions/", json={"name": "newcomer"}, headers=headers)
        assert connected.status_code == 201, connected.text
        listed = httpx.get(f"{base}/api/v1/sessions/", headers=headers).json()
        assert [s["name"] for s in listed["sessions"]] == ["newcomer"]
        assert httpx.get(f"{base}/api/v1/sessions/").status_code == 401
        assert httpx.get(f"{base}/static/admin/css/base.css").status_code == 200
        assert httpx.get(f"{base}/admin/login/").status_code == 200
        assert (tmp_path / "broker.sqlite3").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
